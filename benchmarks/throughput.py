"""Full-training throughput on one thread: PPO across methods, or multi-task vs single-task SAC.

``--algo ppo`` (default) uses the cartpole10 PPO config (CleanRL hyperparameters, M = 10 tasks) and
reports each method's env-steps/s of rollout + update and its time per env-step relative to
hard_sharing's. ``--algo sac`` uses the cartpole10 SAC config and, for each method, compares one
multi-task agent (M = 10) with ten single-task agents (M = 1 each, same method, network and
``batch_per_task``): gradient steps/s (an M = 10 step updates all ten tasks; for the single-task
agents one "step" is one gradient step of each of the ten, the same work) and env-steps/s of all
tasks (``env_step()``: policy acting + stepping). Run:

    python benchmarks/throughput.py [--iterations 2] [--rounds 30] [--config configs/cartpole10_ppo.yaml]
    python benchmarks/throughput.py --algo sac [--steps 20] [--env-steps 100] [--rounds 20]
        [--methods hard_sharing varshare] [--config configs/cartpole10_sac.yaml]

Every agent is built and warmed up first (SAC: its buffers filled past ``sac.learning_starts`` with
random actions, then a few gradient and policy env steps). Then, ``--rounds`` times, every agent
runs its share, hard_sharing (PPO) or the M = 10 agent (SAC) first: a round is a paired comparison
made within a short time, so drift in the machine's speed (other processes, CPU frequency, memory
bandwidth shared with neighbours) affects both sides of a ratio alike. A speed is from the median
round; a ratio is the median over rounds of the per-round ratios, printed with their interquartile
range. SAC's speed-up is (time of the ten single-task agents) / (time of the M = 10 agent); each
single-task agent runs its ``--steps`` gradient steps (or ``--env-steps`` env steps) in a row.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from contextlib import ExitStack

import torch

from varshare.algos.ppo import PPO
from varshare.algos.sac import SAC
from varshare.config import METHODS, load_config
from varshare.envs import build_suite, make_vec_env
from varshare.methods import make_method

OVERRIDES = {"total_steps_per_task": 10**9}  # no annealing (learning rate, KL β) mid-benchmark


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


def median_iqr(values: list[float]) -> tuple[float, float, float]:
    q1, q3 = statistics.quantiles(values, n=4)[::2] if len(values) > 1 else (values[0], values[0])
    return statistics.median(values), q1, q3


def run_ppo(args: argparse.Namespace) -> None:
    methods = ["hard_sharing"] + [m for m in args.methods if m != "hard_sharing"]
    with ExitStack() as stack:
        agents = {m: build_agent(args.config, m, OVERRIDES, stack) for m in methods}
        seconds = {m: [] for m in methods}
        for _ in range(args.rounds):
            for method, agent in agents.items():
                seconds[method].append(timed_seconds(agent, args.iterations))
    steps = args.iterations * next(iter(agents.values())).batch_per_task * next(iter(agents.values())).num_tasks
    base = seconds["hard_sharing"]
    width = max(len(m) for m in ["method", *methods])
    print(f"{'method':<{width}} {'env-steps/s':>12} {'ratio IQR':>13} {'time/step vs hard_sharing':>27}")
    for method in methods:
        median, q1, q3 = median_iqr([mine / theirs for mine, theirs in zip(seconds[method], base)])
        print(f"{method:<{width}} {steps / statistics.median(seconds[method]):>12,.0f} "
              f"{f'{q1:.2f}-{q3:.2f}':>13} {median:>26.2f}x")


# ------------------------------------------------------------------------------------------------
# SAC: one M = 10 agent against ten M = 1 agents
def build_sac_agents(config_path: str, method: str, stack: ExitStack) -> tuple[SAC, list[SAC]]:
    """The multi-task agent and one single-task agent per task, buffers filled and warmed up."""
    config = load_config(config_path, {"methods": [method], "seeds": [0], **OVERRIDES})
    specs = build_suite(config.suite)

    def make(task_specs) -> SAC:
        env = stack.enter_context(make_vec_env(task_specs, config.envs_per_task, seed=0))
        agent = SAC(config, make_method(method, config, len(task_specs), 0), env, seed=0)
        while agent.steps_per_task < config.sac.learning_starts:  # random actions, no updates
            agent.env_step()
        for _ in range(5):  # warm up the policy's acting and the gradient step
            agent.env_step()
            agent.gradient_step()
        return agent

    return make(specs), [make(specs[m:m + 1]) for m in range(len(specs))]


def seconds_of(agents: list[SAC], work: str, count: int) -> float:
    """Wall-clock seconds of ``count`` calls of ``work`` on each agent, one agent after another."""
    start = time.perf_counter()
    for agent in agents:
        step = getattr(agent, work)
        for _ in range(count):
            step()
    return time.perf_counter() - start


def run_sac(args: argparse.Namespace) -> None:
    columns = ("gradient_step", args.steps), ("env_step", args.env_steps)
    rows = []
    with ExitStack() as stack:
        agents = {m: build_sac_agents(args.config, m, stack) for m in args.methods}
        num_tasks = len(next(iter(agents.values()))[1])
        times = {key: [] for key in itertools.product(agents, ("gradient_step", "env_step"), ("multi", "single"))}
        for _ in range(args.rounds):
            for method, (multi, singles) in agents.items():
                for work, count in columns:
                    times[method, work, "multi"].append(seconds_of([multi], work, count))
                    times[method, work, "single"].append(seconds_of(singles, work, count))
        for method in agents:
            row = [method]
            for work, count in columns:
                per_vector_step = count * (num_tasks if work == "env_step" else 1)  # env steps: all tasks
                multi_t, single_t = times[method, work, "multi"], times[method, work, "single"]
                median, q1, q3 = median_iqr([s / m for s, m in zip(single_t, multi_t)])
                row += [f"{per_vector_step / statistics.median(multi_t):,.0f}",
                        f"{per_vector_step / statistics.median(single_t):,.0f}",
                        f"{median:.2f}x ({q1:.2f}-{q3:.2f})"]
            rows.append(row)
    header = ["method", "grad-steps/s M=10", f"{num_tasks}xM=1", "speed-up (IQR)",
              "env-steps/s M=10", f"{num_tasks}xM=1", "speed-up (IQR)"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(f"{cell:<{w}}" if i == 0 else f"{cell:>{w}}" for i, (cell, w) in enumerate(zip(row, widths))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=("ppo", "sac"), default="ppo")
    parser.add_argument("--config", help="default: configs/cartpole10_<algo>.yaml")
    parser.add_argument("--iterations", type=int, default=2, help="PPO: iterations per method per round")
    parser.add_argument("--steps", type=int, default=20, help="SAC: gradient steps per agent per round")
    parser.add_argument("--env-steps", type=int, default=100, help="SAC: vector env steps per agent per round")
    parser.add_argument("--rounds", type=int, help="default: 30 (PPO), 20 (SAC)")
    parser.add_argument("--methods", nargs="+", help="default: all (PPO), hard_sharing varshare (SAC)")
    args = parser.parse_args()
    args.config = args.config or f"configs/cartpole10_{args.algo}.yaml"
    args.rounds = args.rounds or (30 if args.algo == "ppo" else 20)
    args.methods = args.methods or (list(METHODS) if args.algo == "ppo" else ["hard_sharing", "varshare"])
    torch.set_num_threads(1)
    (run_ppo if args.algo == "ppo" else run_sac)(args)


if __name__ == "__main__":
    main()
