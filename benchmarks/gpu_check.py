"""Does MT10 training run on CUDA as it runs on the CPU? A short check to run on a GPU machine.

For every device of ``--devices`` (default ``cuda cpu``), algorithm of ``--algos`` (``sac ppo``:
``configs/mt10_<algo>.yaml``, 3 x 400 networks) and method of ``--methods`` (``hard_sharing
varshare``):

1. **A tiny training run** through :func:`varshare.train.train` (what ``varshare train`` runs) into
   ``<out>/<device>/<algo>/<method>``: two iterations of about ``--steps-per-task / 2`` env steps per
   task each (SAC: ``sac.learning_starts = --learning-starts``, so real gradient steps follow the
   random warm-up; PPO: ``ppo.num_steps`` shortened, epochs and minibatch count the config's), one
   evaluation episode per task at the start and at the end, episodes cut to ``--episode-steps``.
   Checks: the run finished (``done.json``); ``manifest.json`` records the device; every loss in
   ``metrics.csv`` (metrics named ``*loss``: SAC's critic, actor and temperature losses per task,
   PPO's total, policy and value losses) is finite and there is at least one (gradient steps ran);
   every parameter and buffer of the trained model (handed over by ``train``'s ``init_model`` hook)
   is on the device; and, across devices, ``metrics.csv`` names the same (task, metric) pairs (one
   code path: nothing logged on one device only).
2. **Speed**: a fresh agent on full 500-step episodes, set up as ``benchmarks/throughput.py
   --mt10`` does (warm-up, then one timed ``iterate()`` of ``--steps-per-task`` env steps per
   task): env-steps/s (all tasks counted) and gradient steps/s (SAC gradient steps, PPO minibatch
   steps), per device, and cuda/cpu ratios.
3. **Host-device traffic** (CUDA only), counted with ``torch.profiler`` (CUDA activity: the CUPTI
   memcpy records named ``Memcpy HtoD ...`` / ``Memcpy DtoH ...``), on the same agent after a
   fresh reset (no episode ends inside the window): per env step (SAC: ``env_step()``; PPO: one
   ``collect_rollout()``), one upload (the observation, with anything else the step sends packed
   into it) and one download (the actions) are expected; more fail the check. For information:
   device-to-host copies per gradient step over one ``iterate()`` (each is a synchronisation:
   ``.item()``, ``float(tensor)``, a branch on a tensor), less one per env step.

The traffic count relies on the profiler reporting CUPTI memcpy records under those names (torch
2.x with Kineto). A window in which it records no download at all cannot be judged and fails the
check; this script was written on a machine without CUDA, so its CUDA path has not been run yet.

Without CUDA (and ``cuda`` among ``--devices``) it prints that CUDA is not available and exits 0;
``--devices cpu`` runs every CPU-side check (what the tests do, with tiny networks and M = 2). Exit
status 1 if any check fails. Run:

    python benchmarks/gpu_check.py [--devices cuda cpu] [--algos sac ppo]
        [--methods hard_sharing varshare] [--steps-per-task 40] [--learning-starts 10]
        [--episode-steps 50] [--num-tasks 10] [--env-mode sync|async] [--out DIR]
        [--set KEY=VALUE ...]

Cost: the CPU side dominates: 3 x 400 gradient steps over ten tasks on one core (VarShare's
are several times hard_sharing's, for PPO nearly whatever the minibatch size), and PPO's ten copies
per task are built for training and again for the speed agent. The defaults aim at one device
command well under 10 minutes (an estimate: not yet run on a GPU machine).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import math
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from varshare.config import ExperimentConfig, load_config, parse_yaml
from varshare.envs import TaskSpec, build_suite, make_vec_env
from varshare.train import train

from throughput import build_mt10_agent, gradient_steps_done, mt10_config, print_table, timed_iteration


@dataclasses.dataclass
class Report:
    """Check results (``(case, check, passed, detail)``) and measurements (speeds, traffic)."""

    checks: list[tuple[str, str, bool, str]] = dataclasses.field(default_factory=list)
    speeds: dict[tuple[str, str, str], tuple[float, float]] = dataclasses.field(default_factory=dict)
    traffic: list[list[str]] = dataclasses.field(default_factory=list)
    metric_names: dict[tuple[str, str, str], set] = dataclasses.field(default_factory=dict)

    def check(self, case: str, name: str, passed: bool, detail: str = "") -> None:
        """Record a check and print it at once (a run stopped at a time limit keeps what it found)."""
        self.checks.append((case, name, bool(passed), detail))
        print(f"check  {case}  {name}  {'ok' if passed else 'FAIL'}" + (f"  {detail}" if detail else ""), flush=True)


def iteration_steps(config: ExperimentConfig) -> int:
    """Env steps per task of one ``iterate()``."""
    return config.sac.steps_per_iteration if config.algo == "sac" else config.envs_per_task * config.ppo.num_steps


def run_config(algo: str, method: str, device: str, args: argparse.Namespace) -> ExperimentConfig:
    """The tiny training run's config: two iterations of about half ``--steps-per-task``, one
    evaluation episode per task at the start and at the end, no checkpoint before the end."""
    short = {"eval.episodes": 1, "eval.envs_per_task": 1, **args.set}
    config = mt10_config(algo, method, args.steps_per_task // 2, args.learning_starts, device, short)
    total = 2 * iteration_steps(config)
    return load_config(config.to_dict(), {"total_steps_per_task": total, "eval.every_steps": total,
                                          "checkpoint.every_steps": total})


def losses(path: Path) -> dict[str, list[float]]:
    """Every ``*loss`` metric of ``metrics.csv``: ``task/metric`` → its values."""
    found: dict[str, list[float]] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            if row["metric"].endswith("loss"):
                found.setdefault(f"{row['task']}/{row['metric']}", []).append(float(row["value"]))
    return found


def metric_names(path: Path) -> set[tuple[str, str]]:
    """The (task, metric) pairs of ``metrics.csv``."""
    with path.open() as handle:
        return {(row["task"], row["metric"]) for row in csv.DictReader(handle)}


def misplaced(model: nn.Module, device: str) -> list[str]:
    """Names of the model's parameters and buffers that are not on ``device`` (a device type)."""
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    return [name for name, tensor in tensors if tensor.device.type != device]


def check_training_run(report: Report, algo: str, method: str, device: str, specs: list[TaskSpec],
                       out: Path, args: argparse.Namespace) -> None:
    """Train the tiny run and check its directory and model."""
    case = f"{device}/{algo}/{method}"
    models: list[nn.Module] = []
    train(run_config(algo, method, device, args), specs, method, seed=0, out=out, env_mode=args.env_mode,
          init_model=models.append)
    report.check(case, "run finished (done.json)", (out / "done.json").exists())
    recorded = json.loads((out / "manifest.json").read_text())["device"]
    report.check(case, "manifest records the device", recorded.split(":")[0] == device, f"manifest: {recorded}")
    found = losses(out / "metrics.csv")
    bad = [key for key, values in found.items() if not all(math.isfinite(v) for v in values)]
    report.check(case, "losses in metrics.csv, all finite", found and not bad,
                 f"{sum(map(len, found.values()))} values" + (f"; not finite: {', '.join(bad)}" if bad else ""))
    wrong = misplaced(models[0], device)
    report.check(case, f"model parameters and buffers on {device}", not wrong, ", ".join(wrong[:5]))
    report.metric_names[device, algo, method] = metric_names(out / "metrics.csv")


def copies(fn) -> Counter:
    """Host-to-device (``HtoD``) and device-to-host (``DtoH``) memcpy records of the CUDA profiler
    while ``fn()`` runs."""
    torch.cuda.synchronize()
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as profiler:
        fn()
        torch.cuda.synchronize()
    counts = Counter()
    for event in profiler.events():
        for kind in ("HtoD", "DtoH"):
            if f"Memcpy {kind}" in event.name:
                counts[kind] += 1
    return counts


def env_step_window(agent):
    """A callable that takes a few env steps of ``agent`` as training does, and their number."""
    if agent.config.algo == "sac":
        steps = 10

        def window():
            for _ in range(steps):
                agent.env_step()

        return window, steps
    return agent.collect_rollout, agent.ppo.num_steps


def check_traffic(report: Report, agent, env, algo: str, method: str) -> None:
    """Count the copies per env step (checked) and per gradient step (reported)."""
    case = f"cuda/{algo}/{method}"
    agent.reset_observations(env.reset())
    window, steps = env_step_window(agent)
    per_step = copies(window)
    up, down = per_step["HtoD"] / steps, per_step["DtoH"] / steps
    report.check(case, "one upload and one download per env step", per_step["DtoH"] and up == 1 and down == 1,
                 f"{up:g} uploads, {down:g} downloads per env step" if per_step["DtoH"] else
                 "the profiler recorded no memcpy: cannot judge")
    before = gradient_steps_done(agent)
    per_iteration = copies(agent.iterate)
    gradient_steps = gradient_steps_done(agent) - before
    vector_steps = agent.steps_per_iteration // env.envs_per_task
    syncs = (per_iteration["DtoH"] - vector_steps) / max(gradient_steps, 1)
    report.traffic.append([algo, method, f"{up:g}", f"{down:g}", f"{syncs:.1f}"])


def measure(report: Report, algo: str, method: str, device: str, args: argparse.Namespace) -> None:
    """Time one iteration of a fresh agent (and, on CUDA, count its host-device copies)."""
    config = mt10_config(algo, method, args.steps_per_task, args.learning_starts, device, args.set)
    specs = build_suite("mt10")[:args.num_tasks]
    torch.set_num_threads(config.num_threads)
    with make_vec_env(specs, config.envs_per_task, seed=0, mode=args.env_mode) as env:
        agent = build_mt10_agent(config, method, env)
        report.speeds[device, algo, method] = timed_iteration(agent)
        if device == "cuda":
            check_traffic(report, agent, env, algo, method)


def check_same_metrics(report: Report, devices: list[str], algos: list[str], methods: list[str]) -> None:
    """The runs of one (algo, method) log the same (task, metric) pairs on every device."""
    if len(devices) < 2:
        return
    for algo, method in itertools.product(algos, methods):
        names = [report.metric_names.get((device, algo, method), set()) for device in devices]
        differ = set.union(*names) - set.intersection(*names)
        report.check(f"{'+'.join(devices)}/{algo}/{method}", "same metrics.csv names on every device", not differ,
                     ", ".join(sorted(f"{t}/{m}" for t, m in differ)[:5]))


def print_report(report: Report, devices: list[str], algos: list[str], methods: list[str]) -> None:
    """The speed table (with a ratio column per quantity for two devices), the CUDA traffic table
    and the failed checks."""
    header, rows = ["algo", "method"], []
    for quantity in ("env-steps/s", "grad-steps/s"):
        header += [f"{device} {quantity}" for device in devices]
        if len(devices) == 2:
            header.append(f"{devices[0]}/{devices[1]}")
    for algo, method in itertools.product(algos, methods):
        row = [algo, method]
        for index in range(2):
            values = [report.speeds.get((device, algo, method), (math.nan, math.nan))[index] for device in devices]
            row += [f"{v:,.1f}" for v in values] + ([f"{values[0] / values[1]:.2f}x"] if len(devices) == 2 else [])
        rows.append(row)
    print("Speed of one training iteration (env-steps/s of all tasks; gradient steps/s)")
    print_table(2, header, rows)
    if report.traffic:
        print("\nHost-device copies on CUDA (per env step: expected 1 and 1; per gradient step: for information)")
        print_table(2, ["algo", "method", "uploads/env step", "downloads/env step", "syncs/gradient step"],
                    report.traffic)
    failed = [f"FAILED  {case}  {name}  {detail}".strip() for case, name, passed, detail in report.checks if not passed]
    print("", *failed, f"{len(report.checks) - len(failed)} of {len(report.checks)} checks passed", sep="\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", nargs="+", choices=("cuda", "cpu"), default=["cuda", "cpu"])
    parser.add_argument("--algos", nargs="+", choices=("sac", "ppo"), default=["sac", "ppo"])
    parser.add_argument("--methods", nargs="+", default=["hard_sharing", "varshare"])
    parser.add_argument("--steps-per-task", type=int, default=40,
                        help="env steps per task of the training run and of the timed iteration")
    parser.add_argument("--learning-starts", type=int, default=10, help="SAC random warm-up steps per task")
    parser.add_argument("--episode-steps", type=int, default=50, help="episode length of the training runs")
    parser.add_argument("--num-tasks", type=int, help="MT10's first M tasks (default: all ten)")
    parser.add_argument("--env-mode", choices=("sync", "async"), default="sync")
    parser.add_argument("--out", type=Path, help="new or empty directory for the runs (default: a temporary one)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override the experiment configs (dotted key, YAML value), e.g. envs_per_task=2")
    args = parser.parse_args()
    if "cuda" in args.devices and not torch.cuda.is_available():
        print("CUDA is not available: nothing checked (--devices cpu runs the CPU path alone)")
        return 0
    if args.out and args.out.exists() and any(args.out.iterdir()):
        parser.error(f"--out {args.out} is not empty")
    args.set = {key: parse_yaml(value) for key, _, value in (item.partition("=") for item in args.set)}
    specs = [dataclasses.replace(spec, parameters={**spec.parameters, "max_episode_steps": args.episode_steps})
             for spec in build_suite("mt10")[:args.num_tasks]]
    report = Report()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        for device, algo, method in itertools.product(args.devices, args.algos, args.methods):
            print(f"== {device} {algo} {method}", flush=True)
            try:
                check_training_run(report, algo, method, device, specs, root / device / algo / method, args)
                measure(report, algo, method, device, args)
            except Exception as error:  # recorded as a failed check; the other cases still run
                traceback.print_exc()
                report.check(f"{device}/{algo}/{method}", "ran without an error", False, repr(error))
    check_same_metrics(report, args.devices, args.algos, args.methods)
    print()
    print_report(report, args.devices, args.algos, args.methods)
    return 0 if all(passed for _, _, passed, _ in report.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
