"""Rebuild a finished run directory (written by :mod:`varshare.train`): its config, tasks, method,
seed and final model. Used by everything that starts from a trained run (pruning, leave-one-out
adaptation)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from varshare.config import ExperimentConfig, load_config
from varshare.envs import TaskSpec, make_vec_env
from varshare.envs.specs import read_specs
from varshare.methods import make_method
from varshare.nn import ActorCritic
from varshare.train import run_name


class NotARunError(ValueError):
    """The directory is not a finished run directory."""


@dataclass
class LoadedRun:
    """A finished run directory, rebuilt: config, tasks, method, seed and the final model."""

    directory: Path
    name: str
    config: ExperimentConfig
    specs: list[TaskSpec]
    method: str
    seed: int
    model: ActorCritic


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
    method, seed = manifest["method"], int(manifest["seed"])
    probe = make_vec_env(specs, 1, seed=0)
    try:
        action_dim = probe.single_action_space.n if probe.is_discrete else probe.single_action_space.shape[0]
        obs_dim, discrete = probe.obs_dim, probe.is_discrete
    finally:
        probe.close()
    model = make_method(method, config, len(specs), seed).build_model(obs_dim, int(action_dim), discrete)
    state = torch.load(directory / "checkpoint.pt", map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    name = manifest.get("run") or run_name(config.suite, method, seed, manifest)
    return LoadedRun(directory, name, config, specs, method, seed, model)
