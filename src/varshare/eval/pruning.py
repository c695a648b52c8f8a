"""Post-training pruning of the variational residuals: how much of each task's residual matters.

For a threshold ``ε``, every residual mean with ``|μ| < ε`` is set to 0 — weights and biases, in
every :class:`~varshare.nn.layers.VariationalResidualLinear` (actor and critic) — and σ is dropped:
the pruned model is evaluated with the *mean* strategy (``W = θ + μ``, greedy policy), which never
reads σ. An entry is *kept* when ``|μ| ≥ ε``, so ``ε = 0`` keeps everything and is the unpruned
model (exactly: nothing is modified).

Bytes a task needs (beyond the shared θ, which every task reuses). The pruned residual of task
``m`` is stored sparsely: each kept μ entry costs 4 bytes (float32 value) + 4 bytes (int32 index
into its layer's flattened weight or bias), so ``task_bytes_sparse = 8 · kept_m``; the table reports
the mean over tasks. For comparison ``task_bytes_dense = 4 · n`` (``n`` residual entries per task,
float32 μ only, σ dropped): the sparse form pays off below a kept fraction of 1/2. Both are
reported for the whole model (actor and critic) and, with the suffix ``_actor``, for the actor
alone — all that acting needs.

Evaluation: the greedy mean-weight policy, one episode on each of ``episodes`` copies per task,
with the same env seed for every ε. By default that seed and episode count are the ones of the
run's final evaluation, so the ``ε = 0`` row reproduces the run's last ``eval_return`` values.

Output (:func:`write_csv`): a tidy table ``run, algo, method, seed, eps, task, metric, value``; ``task`` is
a task name or ``"all"``. Per task: ``kept_fraction``, ``task_bytes_sparse``, ``eval_return``,
``eval_length``, ``eval_success``. For ``all``: ``kept_fraction`` (over all tasks' residual
entries), ``kept_fraction_actor``, ``task_bytes_sparse``, ``task_bytes_sparse_actor`` (means over
tasks), ``task_bytes_dense``, ``task_bytes_dense_actor``, ``eval_return_mean`` (mean over tasks).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from torch import nn

from varshare.envs import make_vec_env
from varshare.eval.evaluate import evaluate, mean_or_nan
from varshare.io import atomic_write_text
from varshare.nn import VariationalResidualLinear, named_layers
from varshare.run_loading import LoadedRun, load_run

#: bytes of one kept residual entry in the sparse encoding: float32 value + int32 index
SPARSE_ENTRY_BYTES = 8
#: bytes of one residual entry in the dense encoding: float32 value
DENSE_ENTRY_BYTES = 4
PRUNING_COLUMNS = ("run", "algo", "method", "seed", "eps", "task", "metric", "value")


class PruningError(ValueError):
    """The run cannot be pruned (e.g. its method has no variational residuals)."""


def variational_layers(model: nn.Module) -> dict[str, VariationalResidualLinear]:
    """Every :class:`VariationalResidualLinear` of a trained model's networks, by
    ``"<network>.layers.<index>"``."""
    return {name: layer for name, layer in named_layers(model.networks()).items()
            if isinstance(layer, VariationalResidualLinear)}


@dataclass
class ResidualCounts:
    """Per-task residual entries ``[M]`` (int64) that a threshold keeps, and how many there are."""

    kept: Tensor
    total: int
    kept_actor: Tensor
    total_actor: int


def residual_counts(model: nn.Module, eps: float) -> ResidualCounts:
    """Entries with ``|μ| ≥ eps`` per task, over weights and biases of every variational layer."""
    num_tasks = model.num_tasks
    kept, kept_actor = torch.zeros(num_tasks, dtype=torch.long), torch.zeros(num_tasks, dtype=torch.long)
    total = total_actor = 0
    for name, layer in variational_layers(model).items():
        for mu in (layer.mu_weight, layer.mu_bias):
            per_task = (mu.detach().abs() >= eps).reshape(num_tasks, -1).sum(dim=1).cpu()
            size = mu[0].numel()
            kept += per_task
            total += size
            if name.startswith("actor."):
                kept_actor += per_task
                total_actor += size
    return ResidualCounts(kept, total, kept_actor, total_actor)


@torch.no_grad()
def prune_residuals(model: nn.Module, eps: float) -> ResidualCounts:
    """Set ``μ = 0`` where ``|μ| < eps`` (in place, weights and biases of every variational layer);
    returns what is kept. ``eps = 0`` changes nothing."""
    layers = variational_layers(model)
    if not layers:
        raise PruningError("the model has no VariationalResidualLinear layers: nothing to prune")
    if eps < 0 or not math.isfinite(eps):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    counts = residual_counts(model, eps)
    for layer in layers.values():
        for mu in (layer.mu_weight, layer.mu_bias):
            mu.masked_fill_(mu.abs() < eps, 0.0)
    return counts


def final_eval_seed(run: LoadedRun) -> int:
    """The env seed of the run's final evaluation (``metrics.csv`` counts the evaluations)."""
    from varshare.run_io import MetricsTable
    from varshare.train import derived_seed

    metrics = run.directory / "metrics.csv"
    count = len({r[5] for r in MetricsTable.load_rows(metrics) if r[6] == "eval_return"}) if metrics.is_file() else 1
    return derived_seed(run.seed, 1, max(count, 1) - 1)


def prune_sweep(directory: str | Path, eps_values: list[float], episodes: int | None = None,
                eval_seed: int | None = None, device="cpu") -> list[tuple]:
    """Prune the run's final model at every ``ε`` (0 is always included: the unpruned model) and
    evaluate it; returns the tidy rows of :data:`PRUNING_COLUMNS`, ``ε`` ascending.

    Args:
        episodes: evaluation copies per task (default: the run's ``eval.episodes``).
        eval_seed: env seed of every evaluation (default: the run's final evaluation's).
    """
    run = load_run(directory, device)
    if not variational_layers(run.model):
        raise PruningError(
            f"run {run.directory} uses method {run.method!r}, whose model has no variational residuals "
            "(VariationalResidualLinear layers): pruning zeroes residual means μ, so it needs a method "
            "with them, e.g. varshare")
    episodes = run.config.eval.episodes if episodes is None else episodes
    eval_seed = final_eval_seed(run) if eval_seed is None else eval_seed
    original = {key: value.clone() for key, value in run.model.state_dict().items()}
    rows: list[tuple] = []
    for eps in sorted({0.0, *map(float, eps_values)}):
        run.model.load_state_dict(original)
        counts = prune_residuals(run.model, eps)
        log = evaluate(run.model, lambda n: make_vec_env(run.specs, n, seed=eval_seed), episodes, device=device)

        def add(task: str, metric: str, value: float) -> None:
            rows.append((run.name, run.algo, run.method, run.seed, eps, task, metric, float(value)))

        for m, spec in enumerate(run.specs):
            add(spec.name, "kept_fraction", counts.kept[m].item() / counts.total)
            add(spec.name, "task_bytes_sparse", SPARSE_ENTRY_BYTES * counts.kept[m].item())
            add(spec.name, "eval_return", mean_or_nan(log.returns[m]))
            add(spec.name, "eval_length", mean_or_nan(log.lengths[m]))
            add(spec.name, "eval_success", mean_or_nan(log.successes[m]))
        add("all", "kept_fraction", counts.kept.sum().item() / (counts.total * run.model.num_tasks))
        actor_entries = counts.total_actor * run.model.num_tasks
        add("all", "kept_fraction_actor", counts.kept_actor.sum().item() / actor_entries if actor_entries else math.nan)
        add("all", "task_bytes_sparse", SPARSE_ENTRY_BYTES * counts.kept.double().mean().item())
        add("all", "task_bytes_sparse_actor", SPARSE_ENTRY_BYTES * counts.kept_actor.double().mean().item())
        add("all", "task_bytes_dense", DENSE_ENTRY_BYTES * counts.total)
        add("all", "task_bytes_dense_actor", DENSE_ENTRY_BYTES * counts.total_actor)
        add("all", "eval_return_mean", float(np.mean([mean_or_nan(r) for r in log.returns])))
    run.model.load_state_dict(original)
    return rows


def rows_to_csv(rows: list[tuple]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PRUNING_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(rows: list[tuple], path: str | Path) -> None:
    """Write the sweep's rows as CSV, atomically."""
    atomic_write_text(path, rows_to_csv(rows))
