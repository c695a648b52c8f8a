"""Single-task sanity check of PPO: CleanRL's CartPole hyperparameters on the default CartPole.

hard_sharing with M = 1 is plain PPO. The check passes when the mean return of the last 20
training episodes reaches 475 within 500k steps in at least 2 of 3 seeds. Run:

    python benchmarks/sanity_single_task.py [--steps 500000] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from varshare.algos.ppo import PPO
from varshare.config import load_config
from varshare.envs import build_suite, make_vec_env
from varshare.methods import make_method

THRESHOLD = 475.0


def run(seed: int, steps: int) -> tuple[float, int | None]:
    """Returns (mean of the last 20 episodes at the end, first step where it reached the threshold)."""
    config = load_config("configs/cartpole10_ppo.yaml", {
        "methods": ["hard_sharing"], "seeds": [seed], "total_steps_per_task": steps,
    })
    specs = [s for s in build_suite("cartpole10") if s.name == "default"]
    env = make_vec_env(specs, config.envs_per_task, seed=seed)
    agent = PPO(config, make_method("hard_sharing", config, 1, seed), env, seed=seed)
    recent: list[float] = []
    reached = None
    while agent.iteration < agent.num_iterations:
        agent.iterate()
        recent = (recent + agent.pop_episodes().returns[0])[-20:]
        if reached is None and len(recent) == 20 and np.mean(recent) >= THRESHOLD:
            reached = agent.steps_per_task
    return float(np.mean(recent)), reached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    passed = 0
    for seed in args.seeds:
        start = time.perf_counter()
        final, reached = run(seed, args.steps)
        passed += reached is not None
        print(f"seed {seed}: last-20 mean return {final:.1f}; first reached {THRESHOLD:.0f} at "
              f"{reached if reached is not None else 'never'} steps ({time.perf_counter() - start:.0f} s)", flush=True)
    verdict = "PASS" if passed >= 2 else "FAIL"
    print(f"{verdict}: {passed}/{len(args.seeds)} seeds reached a last-20 mean of {THRESHOLD:.0f} within {args.steps} steps")


if __name__ == "__main__":
    main()
