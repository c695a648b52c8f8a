"""Raw environment throughput of each task family: env-steps per second, random actions.

A speed counts every one of the ``M × N`` copies (all tasks; divide by ``M`` for per task), as the
agents' ``sps`` does; it is the median of ``--repeats`` timings of ``--steps`` vector steps from a
reset. Random actions are drawn up front so only the environment is timed. One table
per suite, one row per case, the last column the speed relative to the suite's first row (sync at
the smallest ``N``: ``N = 1`` for the simulator suites by default):

* CartPole is one array program (one core): sync at several ``N``;
* LunarLander (Box2D) and MT10 (MuJoCo) hold one simulator per copy: at each ``N``, in this
  process ("sync") and in ``W`` worker processes ("async"), for every ``W`` of ``--workers``
  (default 1, 2, ... up to the cores this process may use; at most ``M × N``).

Run:

    python benchmarks/envs.py                  # every suite at its default sizes
    python benchmarks/envs.py --quick          # the two smallest N per suite, a fifth of the steps
    python benchmarks/envs.py --suites mt10 --envs-per-task 1 2 4 --workers 1 2 --steps 100 --repeats 3
    python benchmarks/envs.py --suites mt10 --num-tasks 2 --envs-per-task 1 2 --steps 10   # seconds

An MT10 copy takes ~0.15 s to build and ~20 MB; building the goal sets takes ~7 s once per process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from varshare.envs import build_suite, make_vec_env
from varshare.envs.base import MultiTaskVecEnv

#: suite: (default envs per task N, default vector steps per row)
DEFAULTS = {
    "cartpole10": ((16, 64, 256, 1024), 500),
    "lunarlander20": ((1, 4), 150),
    "mt10": ((1, 2, 4), 100),
}
#: suites whose copies are simulator objects (stepped sync or async)
SIMULATOR_SUITES = ("lunarlander20", "mt10")


def available_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def random_actions(env: MultiTaskVecEnv, steps: int, seed: int = 0) -> np.ndarray:
    """``steps`` vector actions ``[steps, M, N, ...]``, uniform over ``env``'s action space."""
    rng = np.random.default_rng(seed)
    shape = (steps, env.num_tasks, env.envs_per_task)
    space = env.single_action_space
    if env.is_discrete:
        return rng.integers(space.start, space.start + space.n, size=shape)
    return rng.uniform(space.low, space.high, size=(*shape, *space.shape)).astype(space.dtype)


def timed_random_steps(env: MultiTaskVecEnv, steps: int) -> tuple[float, np.ndarray]:
    """Env-steps/s of all ``M × N`` copies over ``steps`` random vector steps from where ``env`` is
    (one untimed warm-up step first), and the observations ``[M, N, obs_dim]`` it ends on."""
    actions = random_actions(env, steps + 1)
    env.step(actions[0])
    start = time.perf_counter()
    for t in range(1, steps + 1):
        obs = env.step(actions[t]).obs
    return steps * env.num_tasks * env.envs_per_task / (time.perf_counter() - start), obs


def median_steps_per_second(env: MultiTaskVecEnv, steps: int, repeats: int) -> float:
    """Median env-steps/s of ``repeats`` timings of ``steps`` random vector steps, each from a reset."""
    timings = []
    for _ in range(repeats):
        env.reset()
        timings.append(timed_random_steps(env, steps)[0])
    return statistics.median(timings)


def cases(suite: str, sizes: list[int], workers: list[int], num_tasks: int) -> list[tuple[int, str, int | None]]:
    """``(N, mode, workers)`` rows of ``suite``: sync at every ``N``, then (simulator suites) async
    with every worker count up to ``M × N``."""
    rows = []
    for n in sizes:
        rows.append((n, "sync", None))
        if suite in SIMULATOR_SUITES:
            rows += [(n, "async", w) for w in workers if w <= num_tasks * n]
    return rows


def benchmark_suite(suite: str, num_tasks: int | None, sizes: list[int], workers: list[int], steps: int,
                    repeats: int) -> None:
    """Print ``suite``'s table: env-steps/s of every case (median of ``repeats``) and its ratio to the first."""
    specs = build_suite(suite)[:num_tasks]
    m = len(specs)
    rows = cases(suite, sizes, workers, m)
    first_n, first_mode, _ = rows[0]
    print(f"{suite} (M = {m}; env-steps/s of all M x N copies, median of {repeats} x {steps} vector steps; "
          f"ratio against {first_mode} N={first_n})")
    print(f"{'N':>5}  {'mode':<5}  {'workers':>7}  {'env-steps/s':>12}  {'ratio':>7}")
    base = None
    for n, mode, w in rows:
        with make_vec_env(specs, n, seed=0, mode=mode, num_workers=w) as env:
            sps = median_steps_per_second(env, steps, repeats)
        if base is None:
            base = sps
        print(f"{n:>5}  {mode:<5}  {w or '-':>7}  {sps:>12,.0f}  {sps / base:>6.2f}x", flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", nargs="+", choices=list(DEFAULTS), default=list(DEFAULTS))
    parser.add_argument("--num-tasks", type=int, help="M: the suite's first M tasks (default: all)")
    parser.add_argument("--envs-per-task", type=int, nargs="+", metavar="N",
                        help="N values, for every suite (default: per suite, see DEFAULTS)")
    parser.add_argument("--workers", type=int, nargs="+",
                        help=f"async worker counts (default: 1 .. {available_cores()}, the cores available)")
    parser.add_argument("--steps", type=int, help="vector steps per row (default: per suite, see DEFAULTS)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per row (the median is printed)")
    parser.add_argument("--quick", action="store_true", help="the two smallest default N, a fifth of the steps")
    args = parser.parse_args()
    workers = args.workers or list(range(1, available_cores() + 1))
    for suite in args.suites:
        sizes, steps = DEFAULTS[suite]
        if args.quick:
            sizes, steps = sizes[:2], max(20, steps // 5)
        benchmark_suite(suite, args.num_tasks, args.envs_per_task or list(sizes), workers, args.steps or steps,
                        args.repeats)


if __name__ == "__main__":
    main()
