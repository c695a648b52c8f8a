"""Rebuild a finished run directory (written by :mod:`varshare.train`): its config, tasks, algorithm,
method, seed and final model. Used by everything that starts from a trained run (pruning, leave-one-out
adaptation)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from torch import nn

from varshare.algos import agent_class
from varshare.config import ExperimentConfig, load_config
from varshare.envs import TaskSpec, make_vec_env
from varshare.envs.specs import read_specs
from varshare.methods import make_method
from varshare.nn import MultiTaskLinear
from varshare.train import run_name


class NotARunError(ValueError):
    """The directory is not a finished run directory."""


@dataclass
class LoadedRun:
    """A finished run directory, rebuilt: config, tasks, algorithm, method, seed and the final model
    (the agent's :class:`~varshare.algos.agent.TrainedModel`)."""

    directory: Path
    name: str
    config: ExperimentConfig
    specs: list[TaskSpec]
    algo: str
    method: str
    seed: int
    model: nn.Module


def load_run(directory: str | Path, device="cpu") -> LoadedRun:
    """Rebuild the final model of a run directory (``config.yaml``, ``tasks.json``,
    ``manifest.json``, ``checkpoint.pt``)."""
    directory = Path(directory)
    for name in ("config.yaml", "tasks.json", "manifest.json", "checkpoint.pt"):
        if not (directory / name).is_file():
            raise NotARunError(f"{directory} is not a finished run directory: {name} is missing")
    config = load_config(directory / "config.yaml")
    specs = read_specs(directory / "tasks.json")
    manifest = json.loads((directory / "manifest.json").read_text())
    algo, method, seed = config.algo, manifest["method"], int(manifest["seed"])
    with make_vec_env(specs, 1, seed=0) as probe:  # the spaces the model is built for
        model = agent_class(algo).build_model(config, make_method(method, config, len(specs), seed), probe)
    state = torch.load(directory / "checkpoint.pt", map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    name = manifest.get("run") or run_name(config.suite, algo, method, seed, manifest)
    return LoadedRun(directory, name, config, specs, algo, method, seed, model)


def parameter_counts(directory: str | Path) -> dict[str, int]:
    """Parameter counts of the model a run directory trains (rebuilt from ``config.yaml``,
    ``tasks.json`` and ``manifest.json``; no checkpoint needed).

    Returns:
        ``{"total": ..., "per_task": ..., "shared": ...}``: every parameter of the model;
        ``per_task``, the parameters one task owns in the task-batched layers (VarShare's μ_m and
        ρ_m, LoRA's factors, Independent's copies), summed over layers; ``shared`` the rest.
    """
    directory = Path(directory)
    config = load_config(directory / "config.yaml")
    specs = read_specs(directory / "tasks.json")
    manifest = json.loads((directory / "manifest.json").read_text())
    with make_vec_env(specs, 1, seed=0) as probe:
        model = agent_class(config.algo).build_model(
            config, make_method(manifest["method"], config, len(specs), int(manifest["seed"])), probe)
    total = sum(p.numel() for p in model.parameters())
    per_task = sum(layer.parameter_count_per_task()[1] for layer in model.modules()
                   if isinstance(layer, MultiTaskLinear))
    return {"total": total, "per_task": per_task, "shared": total - per_task * len(specs)}
