"""What defines a hyperparameter study, written once to ``<study dir>/study.yaml``.

A study is one (suite, algo, method): an Optuna study whose trials train the trial config (the
suite's experiment config with the preset's trial budget, one seed) with sampled values of the
search space, scored by the suite's :class:`~varshare.hpo.objective.ScoreRange`. Its
:class:`StudySpec` holds everything that decides the trials; the spec's hash names the journal
(the Optuna storage) and the trial runs, so a changed spec starts a fresh study and never mixes
trials of two specs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from varshare.config import AlgoName, ConfigError, ExperimentConfig, MethodName, Section, SuiteName, load_config
from varshare.hpo.objective import ScoreRange
from varshare.hpo.space import Dimension, check_space, space_to_dict
from varshare.io import atomic_write_text


class PrunerSettings(Section):
    """The pruner: it stops trials whose intermediate scores fall behind (Optuna's pruners)."""

    type: Literal["median", "successive_halving", "none"] = Field(
        "median", description="median: MedianPruner; successive_halving: SuccessiveHalvingPruner; none: no pruning.")
    startup_trials: int = Field(
        3, ge=0, description="median: finished trials before any trial is pruned.")
    warmup_steps: int = Field(
        0, ge=0, description="median: a trial is not pruned before this many env steps per task.")
    min_resource: int | None = Field(
        None, ge=1, description="successive_halving: env steps per task of the first rung (null: Optuna's auto).")
    reduction_factor: int = Field(3, ge=2, description="successive_halving: rung reduction factor.")


class StudySettings(Section):
    """How a study searches (shared by every study of a preset: ``hpo`` in the preset)."""

    n_trials: int = Field(20, ge=1, description="Finished (complete or pruned) trials of the study, over all workers.")
    seed: int = Field(0, ge=0, description="Seed of the TPE sampler (each trial's sampler is seeded from it "
                                           "and the number of trials before it).")
    trial_seed: int = Field(0, ge=0, description="Training seed of every trial (common random numbers).")
    startup_trials: int = Field(
        5, ge=1, description="TPE: trials sampled at random before the model-based proposals (the first trial "
                             "is always the default hyperparameters).")
    pruner: PrunerSettings = Field(default_factory=PrunerSettings)
    heartbeat_seconds: float = Field(
        30.0, gt=0, description="A worker records a heartbeat of its running trial this often [s].")
    grace_seconds: float = Field(
        300.0, gt=0, description="A running trial without a heartbeat for this long [s] belongs to a killed "
                                 "worker: it is failed and its parameters are retried.")


class StudySpec(Section):
    """One study: what it tunes, how its trials train, the search space and the objective."""

    suite: SuiteName
    algo: AlgoName
    method: MethodName
    settings: StudySettings
    config: dict[str, Any] = Field(description="The resolved trial config (trial budget, one seed).")
    space: dict[str, dict[str, Any]] = Field(description="Dotted config key → dimension (varshare.hpo.space).")
    score_range: dict[str, Any] = Field(description="varshare.hpo.objective.ScoreRange as a mapping.")

    @property
    def name(self) -> str:
        return f"{self.suite}/{self.algo}/{self.method}"

    def text(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def digest(self) -> str:
        """12 hex digits of the spec's sha256: the name of its journal and trials directory."""
        return hashlib.sha256(self.text().encode()).hexdigest()[:12]

    def write(self, path: str | Path) -> None:
        atomic_write_text(path, self.text())

    @classmethod
    def read(cls, path: str | Path) -> StudySpec:
        return cls.model_validate(yaml.safe_load(Path(path).read_text()))


def study_files(study_dir: str | Path, spec: StudySpec) -> tuple[Path, Path]:
    """``(journal file, trials directory)`` of ``spec`` inside ``study_dir``: ``<hash>/journal.log`` and
    ``<hash>/trials/``."""
    root = Path(study_dir) / spec.digest()
    return root / "journal.log", root / "trials"


def build_study_spec(trial_config: ExperimentConfig, method: str, settings: StudySettings,
                     space: Mapping[str, Dimension], scores: ScoreRange, where: str = "hpo") -> StudySpec:
    """The spec of a study tuning ``method`` on ``trial_config`` (resolved, trial budget applied;
    its methods and seeds become ``[method]`` and ``[settings.trial_seed]``). Raises
    :class:`ConfigError` naming every problem of the space (:func:`~varshare.hpo.space.check_space`)."""
    config = load_config(trial_config.to_dict(), {"methods": [method], "seeds": [settings.trial_seed]})
    problems = check_space(space, config, f"{where}.space")
    if scores.suite != config.suite:
        problems.append(f"{where}: the score range is of suite {scores.suite}, the trial config of {config.suite}")
    if problems:
        raise ConfigError(problems, what="hyperparameter study")
    return StudySpec(suite=config.suite, algo=config.algo, method=method, settings=settings, config=config.to_dict(),
                     space=space_to_dict(space), score_range=asdict(scores))
