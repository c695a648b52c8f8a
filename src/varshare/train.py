"""One training run: an algorithm, a method and a seed on every task of a suite, in a run directory.

The run directory holds everything needed to trust the run:

* ``config.yaml`` — the fully resolved experiment config;
* ``manifest.json`` — algorithm, method, seed, package versions, git commit, task-spec hash, protocol
  (evaluation rule);
* ``tasks.json`` — the task specs trained on;
* ``metrics.csv`` — tidy table (run, algo, method, seed, task, step, metric, value), with periodic
  deterministic, mean-weight evaluation returns per task (``eval_return``); only quantities that
  the config and seed determine, so a rerun reproduces it exactly;
* ``progress.log`` — the progress lines also printed to stdout, with wall-clock speed (SPS);
* ``tensorboard/`` — the metrics (and SPS) as TensorBoard event files
  (:mod:`varshare.tensorboard_log`);
* ``resume.pt`` — the latest resume checkpoint, while the run is unfinished;
* ``checkpoint.pt`` — the agent's final state (model, optimisers, random generators, ...);
* ``done.json`` — completion marker with a summary, written last.

Every file is written atomically, so a crash never leaves a file that looks complete.

**Leave-one-out.** With ``config.holdout`` set, the run trains on the suite's other tasks; the
held-out task's name is recorded as ``holdout`` in ``config.yaml``, ``manifest.json``,
``done.json`` and ``checkpoint.pt``, and the run is named ``<suite>/<algo>/<method>/seed<s>/holdout-<task>``.
Adaptation runs (:mod:`varshare.loo`) pass their own ``record`` (held-out task, regime, pretrained
run) and an ``init_model`` that loads the pretrained weights; both survive a resume.

**The algorithm** is the config's ``algo``: :class:`Run` builds ``varshare.algos.<algo>.AGENT`` and
drives it through the :class:`~varshare.algos.agent.Agent` protocol only (iterate, episodes, state),
so every algorithm gets the same evaluation, logging, checkpoints and resume.

**Resume.** Every ``checkpoint.every_steps`` env steps per task the run saves ``resume.pt``: the
agent's state (model, optimisers, all random-generator states, the method's own state, counters),
the metrics so far and the environment. Rerunning the same command after a kill continues from it and ends with the same
``metrics.csv`` as an uninterrupted run. CartPole's state is saved exactly; LunarLander and MT10
simulators cannot be snapshotted, so at every checkpoint those envs are reseeded and reset (the
unfinished episodes are cut there, with the usual value bootstrap) — in uninterrupted runs too,
which is what makes both identical. A NaN/inf loss stops the run with the last good ``resume.pt``
kept.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from varshare.algos import agent_class
from varshare.config import ExperimentConfig
from varshare.envs import TaskSpec, make_vec_env, specs_hash, specs_to_json
from varshare.eval.evaluate import evaluate, mean_or_nan
from varshare.eval.strategies import metric_suffix
from varshare.io import atomic_output, atomic_write_text
from varshare.methods import make_method
from varshare.run_io import MetricsTable, versions_manifest
from varshare.tensorboard_log import TensorBoardLog

EVAL_PROTOCOL = ("deterministic policy (argmax / mean action), mean weights; eval.episodes episodes per task, "
                 "back to back on eval.envs_per_task copies (default: one per episode); an episode succeeds if "
                 "the env's success flag fired at any step; scores are means over tasks")


class RunDirectoryConflict(RuntimeError):
    """The output directory holds a different run."""


class RunSetupError(ValueError):
    """The run cannot start as asked (e.g. its held-out task is not among its tasks); nothing is written."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_name(suite: str, algo: str, method_name: str, seed: int, record: dict | None = None) -> str:
    """``<suite>/<algo>/<method>/seed<s>``, extended by the leave-one-out ``record``:
    ``/holdout-<task>``, then ``/<regime>`` for an adaptation run."""
    name = f"{suite}/{algo}/{method_name}/seed{seed}"
    record = record or {}
    if "holdout" in record:
        name += f"/holdout-{record['holdout']}"
    if "adaptation" in record:
        name += f"/{record['adaptation']['regime']}"
    return name


def without_holdout(specs: list[TaskSpec], holdout: str) -> list[TaskSpec]:
    """``specs`` less the task named ``holdout``; a :class:`RunSetupError` names the allowed tasks if absent."""
    names = [spec.name for spec in specs]
    if holdout not in names:
        raise RunSetupError(f"holdout task {holdout!r} is not among the tasks to train; allowed: {', '.join(names)}")
    return [spec for spec in specs if spec.name != holdout]


def budget_warning(total_steps: int, steps_per_iteration: int, iterations: int) -> str | None:
    """Why the steps a run trains differ from its budget (whole iterations only), or None."""
    trained = steps_per_iteration * iterations
    if trained == total_steps:
        return None
    if total_steps < steps_per_iteration:
        return (f"total_steps_per_task = {total_steps} is less than one iteration ({steps_per_iteration} env steps "
                f"per task): training one whole iteration, {trained} steps per task")
    return (f"total_steps_per_task = {total_steps} is not a whole number of iterations of {steps_per_iteration} "
            f"steps: training {trained} steps per task")


def derived_seed(seed: int, purpose: int, index: int) -> int:
    """An independent seed for the ``index``-th use of ``purpose`` (1: evaluation, 2: env reseed)."""
    return int(np.random.SeedSequence([seed, purpose, index]).generate_state(1)[0])


class Progress:
    """Prints progress lines and appends them to ``progress.log``."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, line: str) -> None:
        print(line, flush=True)
        with self.path.open("a") as handle:
            handle.write(line + "\n")


class Run:
    """The state of one training run that a resume checkpoint captures.

    ``record`` (leave-one-out: held-out task, adaptation) names the run and is saved with the final
    checkpoint; ``init_model`` is the agent's (:class:`~varshare.algos.agent.Agent`)."""

    def __init__(self, config: ExperimentConfig, specs: list[TaskSpec], method_name: str, seed: int,
                 out: Path, env_mode: str, record: dict | None = None,
                 init_model: Callable[[nn.Module], None] | None = None):
        self.config, self.specs, self.seed, self.out, self.env_mode = config, specs, seed, out, env_mode
        self.record = record or {}
        self.name = run_name(config.suite, config.algo, method_name, seed, self.record)
        self.device = resolve_device(config.device)
        self.log = Progress(out / "progress.log")
        self.metrics = MetricsTable(self.name, config.algo, method_name, seed)
        self.evaluations: list[int] = []  # env steps per task at which evaluations ran
        #: the latest evaluation's per-task means of the mean-weight policy: metric ("return",
        #: "success") → task name → value
        self.last_evaluation: dict[str, dict[str, float]] = {}
        self.env = make_vec_env(specs, config.envs_per_task, seed=seed, mode=env_mode)
        self.method = make_method(method_name, config, len(specs), seed)
        self.agent = agent_class(config.algo)(config, self.method, self.env, seed=seed, device=self.device,
                                              init_model=init_model)
        self.iterations_per_checkpoint = math.ceil(config.checkpoint.every_steps / self.agent.steps_per_iteration)

    # -- evaluation and logging ----------------------------------------------------------------
    def evaluate(self) -> float:
        """Evaluate the deterministic mean-weight policy; record and save the metrics.

        Stochastic-weight models are also evaluated with ``eval.sample_strategies`` (by default
        sample-1 and sample-5, :mod:`varshare.eval.strategies`) on the same env seed, logged as ``eval_return_sample1``,
        ``eval_length_sample1``, ``eval_success_sample1`` per task and ``eval_return_mean_sample1``,
        ``eval_success_mean_sample1`` (the mean over tasks: Meta-World's score) for ``all``
        (likewise ``_sample5``); the weight draws are seeded from the run's seed and the
        evaluation's index, so reruns and resumed runs log the same numbers. Returns the mean
        strategy's mean return over tasks."""
        agent, specs = self.agent, self.specs
        index = len(self.evaluations)
        eval_seed = derived_seed(self.seed, 1, index)
        strategies = ["mean"] + (list(self.config.eval.sample_strategies) if agent.model.actor.stochastic else [])
        results = {
            strategy: evaluate(agent.model, lambda n: make_vec_env(specs, n, seed=eval_seed, mode=self.env_mode),
                               self.config.eval.episodes, device=self.device, strategy=strategy,
                               seed=derived_seed(self.seed, 3, index), copies=self.config.eval.envs_per_task)
            for strategy in strategies
        }
        self.evaluations.append(agent.steps_per_task)
        mean_returns, mean_success = {}, {}
        for strategy, episodes in results.items():
            suffix = metric_suffix(strategy)
            for m, spec in enumerate(specs):
                self.metrics.add_many(spec.name, agent.steps_per_task, {
                    f"eval_return{suffix}": mean_or_nan(episodes.returns[m]),
                    f"eval_length{suffix}": mean_or_nan(episodes.lengths[m]),
                    f"eval_success{suffix}": mean_or_nan(episodes.successes[m]),
                })
            if strategy == "mean":
                self.last_evaluation = {
                    "return": {spec.name: mean_or_nan(r) for spec, r in zip(specs, episodes.returns)},
                    "success": {spec.name: mean_or_nan(r) for spec, r in zip(specs, episodes.successes)},
                }
            mean_returns[strategy] = float(np.mean([mean_or_nan(r) for r in episodes.returns]))
            mean_success[strategy] = float(np.mean([mean_or_nan(r) for r in episodes.successes]))
            self.metrics.add_many("all", agent.steps_per_task, {
                f"eval_return_mean{suffix}": mean_returns[strategy],
                f"eval_success_mean{suffix}": mean_success[strategy],
            })
        self.metrics.save(self.out / "metrics.csv")
        others = "".join(f", {s} {r:.1f}" for s, r in mean_returns.items() if s != "mean")
        self.log(f"[{self.name}] eval @ {agent.steps_per_task} steps/task: "
                 f"mean return {mean_returns['mean']:.1f}{others}; mean success {mean_success['mean']:.2f}")
        return mean_returns["mean"]

    def record_task_diagnostics(self) -> None:
        """The method's per-task diagnostics (e.g. VarShare's |μ|, σ, KL per layer) at this step."""
        for metric, values in self.method.task_diagnostics(self.agent.model.networks()).items():
            for spec, value in zip(self.specs, values.tolist()):
                self.metrics.add(spec.name, self.agent.steps_per_task, metric, value)

    def record_iteration(self, stats: dict[str, float]) -> float:
        """Add an iteration's update statistics (over all tasks and per task) and finished training
        episodes; returns the mean training return over tasks (NaN if no episode finished)."""
        step = self.agent.steps_per_task
        self.metrics.add_many("all", step, stats)
        for metric, values in self.agent.task_statistics().items():
            for spec, value in zip(self.specs, values, strict=True):
                self.metrics.add(spec.name, step, metric, value)
        episodes = self.agent.pop_episodes()
        for m, spec in enumerate(self.specs):
            if episodes.returns[m]:
                self.metrics.add_many(spec.name, step, {
                    "train_return": float(np.mean(episodes.returns[m])),
                    "train_length": float(np.mean(episodes.lengths[m])),
                    "train_success": float(np.mean(episodes.successes[m])),
                })
        returns = [np.mean(r) for r in episodes.returns if r]
        return float(np.mean(returns)) if returns else math.nan

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint_boundary(self) -> None:
        """Save ``resume.pt``; simulator-backed envs are reseeded first (see the module docstring)."""
        agent = self.agent
        if not self.env.supports_state:
            agent.reset_observations(self.env.reseed(derived_seed(self.seed, 2, agent.iteration)))
        with atomic_output(self.out / "resume.pt") as tmp:
            torch.save(self.state_dict(), tmp)

    def state_dict(self) -> dict:
        """The agent's state (``model`` among its keys) plus the env's, the metrics and evaluations."""
        return {
            **self.agent.state_dict(),
            "env": self.env.state_dict() if self.env.supports_state else None,
            "metrics": self.metrics.rows,
            "evaluations": self.evaluations,
        }

    def load_state_dict(self, state: dict) -> None:
        self.agent.load_state_dict(state)
        if self.env.supports_state:
            self.env.load_state_dict(state["env"])
        else:  # the envs as the checkpoint left them; the agent's saved observations are theirs
            self.env.reseed(derived_seed(self.seed, 2, self.agent.iteration))
        self.metrics.rows = [tuple(row) for row in state["metrics"]]
        self.evaluations = list(state["evaluations"])

    def save_final(self) -> None:
        state = {key: value for key, value in self.state_dict().items() if key not in ("metrics", "evaluations")}
        state.update(self.record)
        with atomic_output(self.out / "checkpoint.pt") as tmp:
            torch.save(state, tmp)


#: what a run writes into its directory (removed when a stale run is replaced)
RUN_FILES = ("config.yaml", "tasks.json", "manifest.json", "metrics.csv", "progress.log", "resume.pt",
             "checkpoint.pt", "done.json")


def prepare_run_directory(out: Path, config: ExperimentConfig, specs: list[TaskSpec], method_name: str,
                          seed: int, device: torch.device, replace_stale: bool = False,
                          record: dict | None = None) -> None:
    """Write config, tasks and manifest (unless the run finished). A directory holding a run with a
    different config, task set or leave-one-out ``record`` (see :func:`train`) is refused, or, with
    ``replace_stale``, cleared (its resume checkpoint included)."""
    record = record or {}
    resolved = yaml.safe_dump(config.to_dict(), sort_keys=False)
    tasks = specs_to_json(specs)
    stale = [name for name, text in (("config.yaml", resolved), ("tasks.json", tasks))
             if (out / name).exists() and (out / name).read_text() != text]
    if (out / "manifest.json").exists():
        recorded = json.loads((out / "manifest.json").read_text())
        if any(recorded.get(key) != record.get(key) for key in ("holdout", "adaptation")):
            stale.append("leave-one-out record (manifest.json)")
    if stale and not replace_stale:
        raise RunDirectoryConflict(
            f"{out} holds a run with a different {' and '.join(stale)}; choose another --out or delete it")
    if stale:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "tensorboard", ignore_errors=True)
    if (out / "done.json").exists():
        return  # a finished run: its files stay as they were
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", resolved)
    atomic_write_text(out / "tasks.json", tasks)
    manifest = versions_manifest(specs_hash(specs), {
        "run": run_name(config.suite, config.algo, method_name, seed, record), "algo": config.algo,
        "method": method_name, "seed": seed,
        "device": str(device), "eval_protocol": EVAL_PROTOCOL, "step_unit": "env steps per task", **record,
    })
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")


def train(config: ExperimentConfig, specs: list[TaskSpec], method_name: str, seed: int, out: str | Path,
          env_mode: str = "sync", replace_stale: bool = False, record: dict | None = None,
          init_model: Callable[[nn.Module], None] | None = None,
          on_evaluation: Callable[[int, dict[str, dict[str, float]], bool], None] | None = None) -> dict:
    """Train ``method_name`` with ``seed`` on ``specs`` with the config's algorithm into ``out``
    (resuming if it holds a ``resume.pt`` of the same run); returns the summary also written to
    ``done.json``.

    Args:
        replace_stale: clear a directory that holds a different run instead of refusing it.
        record: leave-one-out facts written into ``manifest.json``, ``done.json`` and
            ``checkpoint.pt`` (keys ``holdout``, ``adaptation``); ``config.holdout`` adds
            ``holdout`` and drops that task from ``specs`` (:class:`RunSetupError` if it is not there).
        init_model: see :class:`~varshare.algos.agent.Agent` (leave-one-out adaptation).
        on_evaluation: called after every evaluation of this session with the env steps per task,
            :attr:`Run.last_evaluation` and whether it is the final one; an exception it raises
            stops the run there (the envs are closed; hyperparameter studies prune trials this way).
    """
    out = Path(out)
    if config.holdout is not None:
        specs = without_holdout(specs, config.holdout)
        record = {"holdout": config.holdout, **(record or {})}
    prepare_run_directory(out, config, specs, method_name, seed, resolve_device(config.device), replace_stale,
                          record)
    if (out / "done.json").exists():
        summary = json.loads((out / "done.json").read_text())
        print(f"[{summary['run']}] already finished: {out / 'done.json'}")
        return summary
    torch.set_num_threads(config.num_threads)
    run = Run(config, specs, method_name, seed, out, env_mode, record, init_model)
    agent = run.agent
    tensorboard = None
    try:
        if (out / "resume.pt").exists():
            run.load_state_dict(torch.load(out / "resume.pt", map_location=run.device, weights_only=False))
            run.log(f"[{run.name}] resumed from {out / 'resume.pt'} at iteration {agent.iteration}")
            tensorboard = TensorBoardLog(out / "tensorboard", run.metrics, resume_step=agent.steps_per_task)
        else:  # a fresh start: events of an earlier session that reached no checkpoint go
            shutil.rmtree(out / "tensorboard", ignore_errors=True)
            tensorboard = TensorBoardLog(out / "tensorboard", run.metrics)
            run.log(f"[{run.name}] {len(specs)} tasks × {config.envs_per_task} envs, {agent.num_iterations} "
                    f"iterations of {agent.steps_per_iteration} steps per task, device {run.device}")
            warning = budget_warning(config.total_steps_per_task, agent.steps_per_iteration, agent.num_iterations)
            if warning:
                run.log(f"[{run.name}] warning: {warning}")
            run.record_task_diagnostics()
            run.evaluate()
            tensorboard.sync()
            if on_evaluation is not None:
                on_evaluation(agent.steps_per_task, run.last_evaluation, agent.num_iterations == 0)
        start, last_print = time.perf_counter(), -math.inf
        final_return = math.nan
        while agent.iteration < agent.num_iterations:
            stats = agent.iterate()
            # wall-clock rates: printed, kept out of the (reproducible) metrics
            speed = {key: stats.pop(key) for key in agent.wall_clock_metrics}
            train_return = run.record_iteration(stats)
            tensorboard.rates(agent.steps_per_task, speed)
            is_last = agent.iteration == agent.num_iterations
            if time.perf_counter() - last_print > 5 or is_last:
                last_print = time.perf_counter()
                details = "".join(f" {key} {stats[key]:.4g}" for key in agent.progress_metrics if key in stats)
                rates = "".join(f" {key} {value:.0f}" for key, value in speed.items())
                run.log(f"[{run.name}] iter {agent.iteration}/{agent.num_iterations} step {agent.steps_per_task}"
                        f"{rates} train_return {train_return:.1f}{details}")
            if agent.steps_per_task - run.evaluations[-1] >= config.eval.every_steps or is_last:
                run.record_task_diagnostics()
                final_return = run.evaluate()
                tensorboard.sync()
                if on_evaluation is not None:
                    on_evaluation(agent.steps_per_task, run.last_evaluation, is_last)
            tensorboard.sync()
            if agent.iteration % run.iterations_per_checkpoint == 0 and not is_last:
                run.checkpoint_boundary()
    finally:
        run.env.close()
        if tensorboard is not None:
            tensorboard.close()

    run.save_final()
    summary = {
        "run": run.name, "algo": config.algo, "method": method_name, "seed": seed,
        "steps_per_task": agent.steps_per_task, "iterations": agent.iteration,
        "final_eval_return_mean": final_return, "wall_seconds_this_session": round(time.perf_counter() - start, 2),
        **run.record,
    }
    atomic_write_text(out / "done.json", json.dumps(summary, indent=2) + "\n")
    (out / "resume.pt").unlink(missing_ok=True)
    run.log(f"[{run.name}] done: final mean eval return {summary['final_eval_return_mean']:.1f}")
    return summary
