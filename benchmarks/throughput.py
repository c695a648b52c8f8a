"""Full-training throughput of every method: env-steps/s of rollout + update, on one thread.

Uses the cartpole10 experiment config (CleanRL hyperparameters, M = 10 tasks) and reports each
method's time per env-step relative to hard_sharing's. Run:

    python benchmarks/throughput.py [--iterations 2] [--rounds 30] [--config configs/cartpole10_ppo.yaml]

Every method's agent is built and warmed up first. Then, ``--rounds`` times, each method runs
``--iterations`` PPO iterations, hard_sharing first: a round is a paired comparison made within a
few hundred milliseconds, so drift in the machine's speed (other processes, CPU frequency, memory
bandwidth shared with neighbours) affects both sides of a ratio alike. A method's env-steps/s is
its median round; its ratio is the median over rounds of (its time / hard_sharing's time in the
same round), printed with the interquartile range of those per-round ratios.
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


def timed_seconds(agent: PPO, iterations: int) -> float:
    """Wall-clock seconds of ``iterations`` PPO iterations."""
    start = time.perf_counter()
    for _ in range(iterations):
        agent.iterate()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/cartpole10_ppo.yaml")
    parser.add_argument("--iterations", type=int, default=2, help="PPO iterations per method per round")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {"total_steps_per_task": 10**9}  # no learning-rate annealing to zero mid-benchmark
    methods = ["hard_sharing"] + [m for m in args.methods if m != "hard_sharing"]
    with ExitStack() as stack:
        agents = {m: build_agent(args.config, m, overrides, stack) for m in methods}
        seconds = {m: [] for m in methods}
        for _ in range(args.rounds):
            for method, agent in agents.items():
                seconds[method].append(timed_seconds(agent, args.iterations))
    steps = args.iterations * next(iter(agents.values())).batch_per_task * next(iter(agents.values())).num_tasks
    base = seconds["hard_sharing"]
    width = max(len(m) for m in ["method", *methods])
    print(f"{'method':<{width}} {'env-steps/s':>12} {'ratio IQR':>13} {'time/step vs hard_sharing':>27}")
    for method in methods:
        ratios = [mine / theirs for mine, theirs in zip(seconds[method], base)]
        q1, q3 = (statistics.quantiles(ratios, n=4)[::2]) if len(ratios) > 1 else (ratios[0], ratios[0])
        median = statistics.median(ratios)
        print(f"{method:<{width}} {steps / statistics.median(seconds[method]):>12,.0f} "
              f"{f'{q1:.2f}-{q3:.2f}':>13} {median:>26.2f}x")


if __name__ == "__main__":
    main()
