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
