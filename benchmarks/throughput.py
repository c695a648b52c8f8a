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

``--mt10`` measures what training costs on Meta-World MT10: for each algorithm of ``--algos``
(``configs/mt10_<algo>.yaml``: 3 x 400 networks; SAC one env per task, PPO ten) and each method, the
training env-steps/s of one ``iterate()`` (SAC: acting, stepping and one gradient step per vector
step; PPO: rollout and update) against the raw env-steps/s of random actions on the *same* env (same
``M x N`` copies, env mode, workers and cores) right after it. Speeds count the env steps of all
tasks (``M x N`` per vector step), as the agents' ``sps`` and ``benchmarks/envs.py`` do. One
iteration is ``--steps-per-task`` env steps per task (rounded up to whole vector steps and, for PPO,
equal minibatches: ``ppo.num_steps`` is shortened, epochs and minibatch count are the config's).
Before the rounds an SAC agent steps randomly up to ``sac.learning_starts = --learning-starts``
and takes two acting and gradient steps; a PPO agent runs one iteration. ``train/raw`` is the
median over rounds of (training env-steps/s) / (raw env-steps/s), with its interquartile range: the
fraction of the training time spent stepping the env; ``learner`` = 1 - train/raw is the share the
agent (acting and learning) costs. ``grad-steps/s``: SAC gradient steps or PPO minibatch steps per
second of the iteration. Run:

    python benchmarks/throughput.py --mt10 [--algos sac ppo] [--methods hard_sharing varshare]
        [--steps-per-task 200] [--learning-starts 100] [--rounds 3] [--envs-per-task N]
        [--env-mode sync|async] [--num-workers W] [--num-tasks M] [--device cpu|cuda|auto]
        [--set KEY=VALUE ...]

On one CPU core an SAC round costs ``--steps-per-task`` 3 x 400 gradient steps over ten tasks
(VarShare's several times hard_sharing's): there ``--steps-per-task 20`` keeps it to tens of seconds.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
from contextlib import ExitStack

import torch

from varshare.algos import agent_class
from varshare.algos.ppo import PPO
from varshare.algos.sac import SAC
from varshare.config import METHODS, ExperimentConfig, load_config, parse_yaml
from varshare.envs import build_suite, make_vec_env
from varshare.envs.base import MultiTaskVecEnv
from varshare.methods import make_method
from varshare.train import resolve_device

from envs import timed_random_steps  # benchmarks/envs.py, beside this script

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


def print_table(text_columns: int, header: list[str], rows: list[list[str]]) -> None:
    """``header`` and ``rows`` in aligned columns: the first ``text_columns`` left, the rest right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [cell.ljust(w) if i < text_columns else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        print("  ".join(cells), flush=True)


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
    print_table(1, header, rows)


# ------------------------------------------------------------------------------------------------
# MT10: training env-steps/s of SAC and PPO against the raw env-steps/s of the same env
MT10_CONFIGS = {"sac": "configs/mt10_sac.yaml", "ppo": "configs/mt10_ppo.yaml"}


def mt10_config(algo: str, method: str, steps_per_task: int, learning_starts: int, device: str,
                overrides: dict) -> ExperimentConfig:
    """``configs/mt10_<algo>.yaml`` for ``method`` with one iteration of at least ``steps_per_task``
    env steps per task (whole vector steps; PPO: equal minibatches of at least 2) and SAC's warm-up
    cut to ``learning_starts`` env steps per task; ``overrides`` (dotted keys) are applied last."""
    base = {"methods": [method], "seeds": [0], "device": device, **OVERRIDES}
    config = load_config(MT10_CONFIGS[algo], {**base, **overrides})
    n = config.envs_per_task
    if algo == "sac":
        unit = n * config.sac.train_freq
        sized = {"sac.steps_per_iteration": unit * math.ceil(steps_per_task / unit),
                 "sac.learning_starts": learning_starts}
    else:
        num_steps, minibatches = math.ceil(steps_per_task / n), config.ppo.num_minibatches
        while n * num_steps % minibatches or n * num_steps < 2 * minibatches:  # >= 2 per task per minibatch
            num_steps += 1
        sized = {"ppo.num_steps": num_steps}
    return load_config(MT10_CONFIGS[algo], {**base, **sized, **overrides})


def build_mt10_agent(config: ExperimentConfig, method: str, env: MultiTaskVecEnv):
    """The config's agent for ``method`` on ``env``, warmed up: SAC steps randomly up to
    ``sac.learning_starts``, then acts and takes a gradient step twice; PPO runs one iteration."""
    agent = agent_class(config.algo)(config, make_method(method, config, env.num_tasks, 0), env, seed=0,
                                     device=resolve_device(config.device))
    if config.algo == "sac":
        while agent.steps_per_task < config.sac.learning_starts:
            agent.env_step()
        for _ in range(2):
            agent.env_step()
            agent.gradient_step()
    else:
        agent.iterate()
    return agent


def gradient_steps_done(agent) -> int:
    """Gradient steps (SAC) or minibatch steps (PPO) the agent has taken."""
    if agent.config.algo == "sac":
        return agent.gradient_steps_done
    return agent.iteration * agent.ppo.update_epochs * agent.ppo.num_minibatches


def timed_iteration(agent) -> tuple[float, float]:
    """One ``iterate()``: (env-steps/s of all tasks, gradient steps/s)."""
    before = gradient_steps_done(agent)
    start = time.perf_counter()
    agent.iterate()
    seconds = time.perf_counter() - start
    return agent.steps_per_iteration * agent.num_tasks / seconds, (gradient_steps_done(agent) - before) / seconds


def mt10_rounds(agent, env: MultiTaskVecEnv, rounds: int) -> dict[str, list[float]]:
    """``rounds`` times: one training iteration, then the raw env-steps/s of as many random vector
    steps on the same env, from where training left it (the agent then acts on where they end)."""
    vector_steps = agent.steps_per_iteration // env.envs_per_task
    result = {"train": [], "raw": [], "gradient": []}
    for _ in range(rounds):
        train_sps, gradient_sps = timed_iteration(agent)
        raw_sps, obs = timed_random_steps(env, vector_steps)
        agent.reset_observations(obs)
        result["train"].append(train_sps)
        result["gradient"].append(gradient_sps)
        result["raw"].append(raw_sps)
    return result


def env_mode(env: MultiTaskVecEnv) -> str:
    """``sync``, or ``async:<workers>``."""
    processes = getattr(env.runner, "processes", None)
    return "sync" if processes is None else f"async:{len(processes)}"


def run_mt10(args: argparse.Namespace) -> None:
    specs = build_suite("mt10")[:args.num_tasks]
    rows = []
    for algo, method in itertools.product(args.algos, args.methods):
        config = mt10_config(algo, method, args.steps_per_task, args.learning_starts, args.device, args.set)
        with make_vec_env(specs, config.envs_per_task, seed=0, mode=args.env_mode,
                          num_workers=args.num_workers) as env:
            agent = build_mt10_agent(config, method, env)
            result = mt10_rounds(agent, env, args.rounds)
            mode = env_mode(env)
        ratio, q1, q3 = median_iqr([t / r for t, r in zip(result["train"], result["raw"])])
        rows.append([algo, method, f"{len(specs)}x{config.envs_per_task}", mode, str(agent.steps_per_iteration),
                     f"{statistics.median(result['train']):,.0f}", f"{statistics.median(result['raw']):,.0f}",
                     f"{ratio:.3f} ({q1:.3f}-{q3:.3f})", f"{1 - ratio:.0%}",
                     f"{statistics.median(result['gradient']):,.1f}"])
    print(f"MT10 training vs raw env (env-steps/s of all tasks; device {resolve_device(args.device)}; "
          f"median of {args.rounds} rounds)")
    print_table(2, ["algo", "method", "MxN", "mode", "steps/task", "train env-steps/s", "raw env-steps/s",
                 "train/raw (IQR)", "learner", "grad-steps/s"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=("ppo", "sac"), default="ppo")
    parser.add_argument("--config", help="default: configs/cartpole10_<algo>.yaml")
    parser.add_argument("--iterations", type=int, default=2, help="PPO: iterations per method per round")
    parser.add_argument("--steps", type=int, default=20, help="SAC: gradient steps per agent per round")
    parser.add_argument("--env-steps", type=int, default=100, help="SAC: vector env steps per agent per round")
    parser.add_argument("--rounds", type=int, help="default: 30 (PPO), 20 (SAC), 3 (--mt10)")
    parser.add_argument("--methods", nargs="+", help="default: all (PPO), hard_sharing varshare (SAC, --mt10)")
    parser.add_argument("--mt10", action="store_true", help="MT10 training vs raw env-steps/s (module docstring)")
    parser.add_argument("--algos", nargs="+", choices=("sac", "ppo"), default=["sac", "ppo"], help="--mt10 algorithms")
    parser.add_argument("--steps-per-task", type=int, default=200, help="--mt10: env steps per task per round")
    parser.add_argument("--learning-starts", type=int, default=100, help="--mt10: SAC random warm-up steps per task")
    parser.add_argument("--envs-per-task", type=int, help="--mt10: N (default: the config's, SAC 1, PPO 10)")
    parser.add_argument("--env-mode", choices=("sync", "async"), default="sync", help="--mt10")
    parser.add_argument("--num-workers", type=int, help="--mt10 async workers (default: the cores, at most MxN)")
    parser.add_argument("--num-tasks", type=int, help="--mt10: MT10's first M tasks (default: all ten)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="--mt10 torch device")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="--mt10: override both experiment configs (dotted key, YAML value)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.mt10:
        args.rounds = args.rounds or 3
        args.methods = args.methods or ["hard_sharing", "varshare"]
        args.set = {key: parse_yaml(value) for key, _, value in (item.partition("=") for item in args.set)}
        if args.envs_per_task:
            args.set = {"envs_per_task": args.envs_per_task, **args.set}
        run_mt10(args)
        return
    args.config = args.config or f"configs/cartpole10_{args.algo}.yaml"
    args.rounds = args.rounds or (30 if args.algo == "ppo" else 20)
    args.methods = args.methods or (list(METHODS) if args.algo == "ppo" else ["hard_sharing", "varshare"])
    (run_ppo if args.algo == "ppo" else run_sac)(args)


if __name__ == "__main__":
    main()
