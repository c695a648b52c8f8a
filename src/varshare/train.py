"""One training run: a method and a seed on every task of a suite, written to a run directory.

The run directory holds everything needed to trust the run:

* ``config.yaml`` — the fully resolved experiment config;
* ``manifest.json`` — package versions, git commit, task-spec hash, protocol (evaluation rule);
* ``tasks.json`` — the task specs trained on;
* ``metrics.csv`` — tidy table (run, method, seed, task, step, metric, value), with periodic
  deterministic, mean-weight evaluation returns per task (``eval_return``); only quantities that
  the config and seed determine, so a rerun reproduces it exactly;
* ``progress.log`` — the progress lines also printed to stdout, with wall-clock speed (SPS);
* ``checkpoint.pt`` — final model, optimiser and random-generator states;
* ``done.json`` — completion marker with a summary, written last.

Every file is written atomically, so a crash never leaves a file that looks complete.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from varshare.algos.ppo import PPO, evaluate, mean_or_nan
from varshare.config import ExperimentConfig, dump_config
from varshare.envs import TaskSpec, make_vec_env, specs_hash, specs_to_json
from varshare.io import atomic_write_text
from varshare.methods import make_method
from varshare.run_io import MetricsTable, versions_manifest

EVAL_PROTOCOL = "deterministic policy (argmax / mean action), mean weights, one episode on each of eval.episodes copies per task"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def eval_seed(seed: int, index: int) -> int:
    """Seed of the ``index``-th evaluation of a run: independent of the training env's streams."""
    return int(np.random.SeedSequence([seed, 1, index]).generate_state(1)[0])


class Progress:
    """Prints progress lines and appends them to ``progress.log``."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def __call__(self, line: str) -> None:
        print(line, flush=True)
        with self.path.open("a") as handle:
            handle.write(line + "\n")


def train(config: ExperimentConfig, specs: list[TaskSpec], method_name: str, seed: int, out: str | Path,
          env_mode: str = "sync") -> dict:
    """Train ``method_name`` with ``seed`` on ``specs`` and write the run directory ``out``.

    Returns the summary also written to ``done.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    run_name = f"{config.suite}/{method_name}/seed{seed}"
    dump_config(config, out / "config.yaml")
    atomic_write_text(out / "tasks.json", specs_to_json(specs))
    manifest = versions_manifest(specs_hash(specs), {
        "run": run_name, "method": method_name, "seed": seed, "device": str(device),
        "eval_protocol": EVAL_PROTOCOL, "step_unit": "env steps per task",
    })
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    log = Progress(out / "progress.log")
    metrics = MetricsTable(run_name, method_name, seed)
    names = [spec.name for spec in specs]

    env = make_vec_env(specs, config.envs_per_task, seed=seed, mode=env_mode)
    method = make_method(method_name, config, len(specs), seed)
    agent = PPO(config, method, env, seed=seed, device=device)
    log(f"[{run_name}] {len(specs)} tasks × {config.envs_per_task} envs, {agent.num_iterations} iterations "
        f"of {agent.batch_per_task} steps per task, device {device}")

    evaluations: list[int] = []  # steps per task at which evaluations ran

    def run_evaluation() -> float:
        episodes = evaluate(agent.model,
                            lambda n: make_vec_env(specs, n, seed=eval_seed(seed, len(evaluations)), mode=env_mode),
                            config.eval.episodes, device=device)
        evaluations.append(agent.steps_per_task)
        for m, name in enumerate(names):
            metrics.add_many(name, agent.steps_per_task, {
                "eval_return": mean_or_nan(episodes.returns[m]),
                "eval_length": mean_or_nan(episodes.lengths[m]),
                "eval_success": mean_or_nan(episodes.successes[m]),
            })
        mean_return = float(np.mean([mean_or_nan(r) for r in episodes.returns]))
        metrics.add("all", agent.steps_per_task, "eval_return_mean", mean_return)
        metrics.save(out / "metrics.csv")
        log(f"[{run_name}] eval @ {agent.steps_per_task} steps/task: mean return {mean_return:.1f}")
        return mean_return

    start = time.perf_counter()
    last_print = -float("inf")
    try:
        final_return = run_evaluation()
        while agent.iteration < agent.num_iterations:
            stats = agent.iterate()
            step = agent.steps_per_task
            sps = stats.pop("sps")  # wall-clock: logged, kept out of the (reproducible) metrics
            metrics.add_many("all", step, stats)
            episodes = agent.pop_episodes()
            for m, name in enumerate(names):
                if episodes.returns[m]:
                    metrics.add_many(name, step, {
                        "train_return": float(np.mean(episodes.returns[m])),
                        "train_length": float(np.mean(episodes.lengths[m])),
                        "train_success": float(np.mean(episodes.successes[m])),
                    })
            if time.perf_counter() - last_print > 5 or agent.iteration == agent.num_iterations:
                last_print = time.perf_counter()
                train_return = np.nanmean([mean_or_nan(r) for r in episodes.returns])
                log(f"[{run_name}] iter {agent.iteration}/{agent.num_iterations} step {step} "
                    f"sps {sps:.0f} train_return {train_return:.1f} "
                    f"approx_kl {stats['approx_kl']:.4f} clip {stats['clip_fraction']:.3f}")
            is_last = agent.iteration == agent.num_iterations
            if step - evaluations[-1] >= config.eval.every_steps or is_last:
                final_return = run_evaluation()
    finally:
        env.close()

    torch.save({
        "model": agent.model.state_dict(),
        "optimizer": agent.optimizer.state_dict(),
        "generator": agent.generator.get_state(),
        "method": method.state_dict(),
        "iteration": agent.iteration,
        "steps_per_task": agent.steps_per_task,
    }, out / "checkpoint.pt.tmp")
    (out / "checkpoint.pt.tmp").replace(out / "checkpoint.pt")
    summary = {
        "run": run_name, "steps_per_task": agent.steps_per_task, "iterations": agent.iteration,
        "final_eval_return_mean": final_return, "wall_seconds": round(time.perf_counter() - start, 2),
    }
    atomic_write_text(out / "done.json", json.dumps(summary, indent=2) + "\n")
    log(f"[{run_name}] done in {summary['wall_seconds']} s: final mean eval return {final_return:.1f}")
    return summary
