"""Leave-one-out generalisation (SCIENCE.md "Leave-one-out"): learn a task held out of training.

A pretrained run (``varshare train --holdout k``) trained a method on the suite's other ``M − 1``
tasks. :func:`adapt` learns task ``k`` alone — a model of the same method for one task (``M = 1``) —
with the same budget (``total_steps_per_task``) under each regime:

============  ====================================================================================
``scratch``   fresh initialisation; the pretrained weights are never read (the run equals
              ``varshare train`` on task ``k`` alone with the same config and seed)
``full``      θ (the shared parameters) copied from the pretrained model, task ``k``'s own
              parameters initialised as the method defines for an unseen task
              (:meth:`~varshare.methods.base.Method.unseen_task_parameters`); every parameter trains
``residual``  as ``full``, but θ frozen: ``requires_grad`` off, left out of the optimizer and of the
              per-task-gradient path (PCGrad/CAGrad), so only the task-specific parameters train
============  ====================================================================================

The **zero-shot return** is the run's step-0 evaluation (``eval_return`` at step 0, before any
update): for ``full`` and ``residual`` it is the pretrained model's return on task ``k`` under the
unseen-task initialisation.

**Skipped regimes.** ``residual`` needs shared parameters to freeze, and θ left alone: it is
skipped (exit 0, ``done.json`` with ``skipped``: the reason, no other file) for a method without
shared parameters (independent) and for a method that writes θ itself after each update phase —
one that declares :attr:`~varshare.methods.base.Method.writes_shared_parameters` (varshare_reptile,
which moves α·μ into θ after every update phase).

The adaptation run is an ordinary run directory (:mod:`varshare.train`: resume, atomic outputs,
``metrics.csv``), named ``<suite>/<algo>/<method>/seed<s>/holdout-<k>/<regime>``; ``manifest.json``,
``done.json`` and ``checkpoint.pt`` record ``holdout`` (= ``k``) and ``adaptation`` (regime,
pretrained run name and the sha256 of its ``checkpoint.pt``). It uses the pretrained run's algorithm.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from varshare.config import REGIMES, ExperimentConfig, load_config
from varshare.envs import TaskSpec, build_suite
from varshare.io import atomic_write_text
from torch import nn

from varshare.methods import REGISTRY, Method
from varshare.nn import shared_parameters
from varshare.run_loading import LoadedRun, NotARunError, load_run
from varshare.train import RUN_FILES, RunDirectoryConflict, RunSetupError, run_name, train

#: ``done.json``'s ``skipped`` for a method without shared parameters
NO_SHARED_PARAMETERS = "skipped: no shared parameters"


def skip_reason(regime: str, method_name: str, pretrained: nn.Module) -> str | None:
    """Why ``regime`` does not apply to ``method_name`` (see the module docstring), or None."""
    if regime != "residual":
        return None
    if not shared_parameters(pretrained.networks()):
        return NO_SHARED_PARAMETERS
    if REGISTRY[method_name].writes_shared_parameters:
        return (f"skipped: {method_name} writes θ itself (Method.writes_shared_parameters), "
                "which the residual regime freezes")
    return None


def initialiser(regime: str, method: Method, pretrained: nn.Module) -> Callable[[nn.Module], None] | None:
    """The ``init_model`` of the adaptation run (None for ``scratch``: fresh initialisation)."""
    if regime == "scratch":
        return None

    def initialise(model: nn.Module) -> None:
        method.unseen_task_parameters(pretrained.networks(), model.networks())
        if regime == "residual":
            for param in shared_parameters(model.networks()).values():
                param.requires_grad_(False)

    return initialise


def held_out_spec(source: LoadedRun, task: str, suite_specs: list[TaskSpec]) -> TaskSpec:
    """The spec of ``task``, which must be a task of the suite that ``source`` did not train on."""
    trained = {spec.name for spec in source.specs}
    unseen = [spec for spec in suite_specs if spec.name not in trained]
    for spec in unseen:
        if spec.name == task:
            return spec
    raise RunSetupError(f"task {task!r} is not a task that run {source.name} held out; allowed: "
                     f"{', '.join(spec.name for spec in unseen) or 'none (it trained on every task)'}")


def adapt(pretrained: str | Path, task: str, regime: str, out: str | Path, config: str | Path | None = None,
          overrides: dict | None = None, seed: int | None = None, specs: list[TaskSpec] | None = None,
          env_mode: str = "sync", replace_stale: bool = False) -> dict:
    """Learn the held-out ``task`` under ``regime`` into the run directory ``out``; returns ``done.json``.

    Args:
        pretrained: a finished run directory trained without ``task`` (``varshare train --holdout``).
        config: experiment config (YAML) of the adaptation run; default the pretrained run's
            ``config.yaml``. Its ``total_steps_per_task`` is the adaptation budget; ``holdout``,
            ``algo``, ``methods`` and ``seeds`` are set here (the pretrained run's algorithm). ``full``/``residual`` need the pretrained
            run's ``network``.
        overrides: merged over ``config`` (dotted keys), like ``--set``.
        seed: the adaptation run's seed (default: the pretrained run's).
        specs: the suite's task specs (default: built from the suite).

    Raises:
        RunSetupError: an unfinished pretrained run, a task it trained on (or not of its suite), an
            unknown regime, or a config of another suite or network; nothing is written then.
        ConfigError: an invalid config or override.
        RunDirectoryConflict: ``out`` holds another run (see :func:`varshare.train.train`).
    """
    if regime not in REGIMES:
        raise RunSetupError(f"unknown regime {regime!r}; allowed: {', '.join(REGIMES)}")
    pretrained, out = Path(pretrained), Path(out)
    try:
        source = load_run(pretrained)  # on the CPU: its weights are copied onto the run's device
    except NotARunError as error:
        raise RunSetupError(str(error)) from None
    seed = source.seed if seed is None else seed
    config = load_config(config or pretrained / "config.yaml",
                         {**(overrides or {}), "holdout": None, "algo": source.algo, "methods": [source.method],
                          "seeds": [seed]})
    if config.suite != source.config.suite:
        raise RunSetupError(f"config suite {config.suite!r} differs from the pretrained run's {source.config.suite!r}")
    if regime != "scratch" and config.network != source.config.network:
        raise RunSetupError(f"the {regime} regime copies the pretrained weights: config network "
                         f"{config.network.to_dict()} must equal the pretrained run's {source.config.network.to_dict()}")
    spec = held_out_spec(source, task, specs if specs is not None else build_suite(config.suite))
    record = {"holdout": task, "adaptation": {
        "regime": regime, "pretrained_run": source.name,
        "pretrained_checkpoint_sha256": hashlib.sha256((pretrained / "checkpoint.pt").read_bytes()).hexdigest(),
    }}
    reason = skip_reason(regime, source.method, source.model)
    if reason is not None:
        return write_skipped(out, config, source.method, seed, record, reason, replace_stale)
    method = REGISTRY[source.method](config, 1, seed)
    return train(config, [spec], source.method, seed, out, env_mode=env_mode, replace_stale=replace_stale,
                 record=record, init_model=initialiser(regime, method, source.model))


def write_skipped(out: Path, config: ExperimentConfig, method_name: str, seed: int, record: dict, reason: str,
                  replace_stale: bool) -> dict:
    """Mark ``out`` done with ``skipped: reason`` (it must hold no other run's files)."""
    leftovers = [name for name in RUN_FILES if name != "done.json" and (out / name).exists()]
    if leftovers and not replace_stale:
        raise RunDirectoryConflict(f"{out} holds a run ({', '.join(leftovers)}); choose another --out or delete it")
    for name in leftovers:
        (out / name).unlink()
    summary = {"run": run_name(config.suite, config.algo, method_name, seed, record), "algo": config.algo,
               "method": method_name, "seed": seed, "skipped": reason, **record}
    atomic_write_text(out / "done.json", json.dumps(summary, indent=2) + "\n")
    print(f"[{summary['run']}] {reason}")
    return summary
