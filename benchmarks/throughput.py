"""Full-training throughput of every method: env-steps/s of rollout + update, on one thread.

Uses the cartpole10 experiment config (CleanRL hyperparameters, M = 10 tasks) and reports the
ratio of each method's time per env-step to hard_sharing's. Run:

    python benchmarks/throughput.py [--iterations 20] [--config configs/cartpole10_ppo.yaml]
"""

from __future__ import annotations

import argparse
import time

import torch

from varshare.algos.ppo import PPO
from varshare.config import METHODS, load_config
from varshare.envs import build_suite, make_vec_env
from varshare.methods import make_method


def env_steps_per_second(config_path: str, method: str, iterations: int, overrides: dict) -> float:
    """Env-steps/s (all tasks) over ``iterations`` PPO iterations after one warm-up iteration."""
    config = load_config(config_path, {"methods": [method], "seeds": [0], **overrides})
    specs = build_suite(config.suite)
    with make_vec_env(specs, config.envs_per_task, seed=0) as env:
        agent = PPO(config, make_method(method, config, len(specs), 0), env, seed=0)
        agent.iterate()
        start = time.perf_counter()
        for _ in range(iterations):
            agent.iterate()
        elapsed = time.perf_counter() - start
    return iterations * agent.batch_per_task * len(specs) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/cartpole10_ppo.yaml")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {"total_steps_per_task": 10**9}  # no learning-rate annealing to zero mid-benchmark
    methods = ["hard_sharing"] + [m for m in args.methods if m != "hard_sharing"]
    results = {m: env_steps_per_second(args.config, m, args.iterations, overrides) for m in methods}
    base = results["hard_sharing"]
    width = max(len(m) for m in ["method", *results])
    print(f"{'method':<{width}} {'env-steps/s':>12} {'time/step vs hard_sharing':>27}")
    for method, sps in results.items():
        print(f"{method:<{width}} {sps:>12,.0f} {base / sps:>26.2f}x")


if __name__ == "__main__":
    main()
