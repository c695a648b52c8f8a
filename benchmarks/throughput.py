"""Full-training throughput of every method: env-steps/s of rollout + update, on one thread.

Uses the cartpole10 experiment config (CleanRL hyperparameters, M = 10 tasks) and reports the
ratio of each method's time per env-step to hard_sharing's. Run:

    python benchmarks/throughput.py [--iterations 20] [--rounds 3] [--config configs/cartpole10_ppo.yaml]

Every method's agent is built and warmed up first; then the methods are timed in ``--rounds``
round-robin rounds of ``--iterations`` PPO iterations each, and each method's figure is its median
round. Interleaving spreads any drift in the machine's load (other processes, CPU frequency) over
all methods alike instead of biasing whichever ran during it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack

import torch

from varshare.algos.ppo import PPO
from varshare.config import METHODS, load_config
from varshare.envs import build_suite, make_vec_env
from varshare.methods import make_method


def build_agent(config_path: str, method: str, overrides: dict, stack: ExitStack) -> PPO:
    """A PPO agent for ``method`` on the config's suite, after one warm-up iteration."""
    config = load_config(config_path, {"methods": [method], "seeds": [0], **overrides})
    specs = build_suite(config.suite)
    env = stack.enter_context(make_vec_env(specs, config.envs_per_task, seed=0))
    agent = PPO(config, make_method(method, config, len(specs), 0), env, seed=0)
    agent.iterate()
    return agent


def timed_steps_per_second(agent: PPO, iterations: int) -> float:
    """Env-steps/s (all tasks) over ``iterations`` PPO iterations."""
    start = time.perf_counter()
    for _ in range(iterations):
        agent.iterate()
    elapsed = time.perf_counter() - start
    return iterations * agent.batch_per_task * agent.num_tasks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/cartpole10_ppo.yaml")
    parser.add_argument("--iterations", type=int, default=20, help="PPO iterations per method per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {"total_steps_per_task": 10**9}  # no learning-rate annealing to zero mid-benchmark
    methods = ["hard_sharing"] + [m for m in args.methods if m != "hard_sharing"]
    with ExitStack() as stack:
        agents = {m: build_agent(args.config, m, overrides, stack) for m in methods}
        rounds = {m: [] for m in methods}
        for _ in range(args.rounds):
            for method, agent in agents.items():
                rounds[method].append(timed_steps_per_second(agent, args.iterations))
    results = {m: statistics.median(sps) for m, sps in rounds.items()}
    base = results["hard_sharing"]
    width = max(len(m) for m in ["method", *results])
    print(f"{'method':<{width}} {'env-steps/s':>12} {'time/step vs hard_sharing':>27}")
    for method, sps in results.items():
        print(f"{method:<{width}} {sps:>12,.0f} {base / sps:>26.2f}x")


if __name__ == "__main__":
    main()
