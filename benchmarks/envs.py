"""Raw environment throughput of each task family: env-steps per second at a few M×N sizes.

Random actions are drawn up front so only the environment is timed. Run:

    python benchmarks/envs.py            # all families
    python benchmarks/envs.py --quick    # fewer sizes and steps (what CI runs)

CartPole is one array program (one core). LunarLander (Box2D) and MT10 (MuJoCo) hold one
simulator per copy and are measured in-process ("sync") and in worker processes ("async").
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from varshare.envs import build_suite, make_vec_env


def steps_per_second(suite: str, num_tasks: int, envs_per_task: int, steps: int, mode: str) -> float:
    """Env-steps/s (counting every one of the M×N copies) over ``steps`` vectorised steps."""
    specs = build_suite(suite)[:num_tasks]
    with make_vec_env(specs, envs_per_task, seed=0, mode=mode) as env:
        env.reset()
        space = env.single_action_space
        rng = np.random.default_rng(0)
        shape = (steps, num_tasks, envs_per_task)
        if env.is_discrete:
            actions = rng.integers(0, space.n, size=shape)
        else:
            actions = rng.uniform(-1, 1, size=(*shape, *space.shape)).astype(np.float32)
        env.step(actions[0])  # warm-up
        start = time.perf_counter()
        for t in range(steps):
            env.step(actions[t])
        elapsed = time.perf_counter() - start
    return steps * num_tasks * envs_per_task / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and steps")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    cases = [
        ("cartpole10", 10, 16, 3000, "sync"),
        ("cartpole10", 10, 64, 3000, "sync"),
        ("cartpole10", 10, 256, 1000, "sync"),
        ("cartpole10", 10, 1024, 300, "sync"),
        ("lunarlander20", 20, 1, 300, "sync"),
        ("lunarlander20", 20, 4, 150, "sync"),
        ("lunarlander20", 20, 4, 150, "async"),
        ("mt10", 10, 1, 200, "sync"),
        ("mt10", 10, 2, 100, "sync"),
        ("mt10", 10, 2, 100, "async"),
    ]
    if args.quick:
        cases = [c for c in cases if c[2] <= 64 and not (c[0] == "mt10" and c[2] > 1)]
    print(f"{'suite':<14} {'M':>3} {'N':>5} {'mode':<6} {'env-steps/s':>14}")
    for suite, m, n, steps, mode in cases:
        sps = steps_per_second(suite, m, n, max(20, int(steps * scale)), mode)
        print(f"{suite:<14} {m:>3} {n:>5} {mode:<6} {sps:>14,.0f}", flush=True)


if __name__ == "__main__":
    main()
