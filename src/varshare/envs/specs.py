"""Task specifications: the task families of the study as validated data.

A task spec is ``{"name", "family", "parameters", "versions"}``. The pipeline's first step writes
each suite's specs to JSON (``varshare envs``) and every later step reads them back, so the exact
physics of every task travels with the results.

Families and their parameters (ranges are inclusive unless marked open):

* ``cartpole`` — gymnasium CartPole-v1 physics with per-task ``length`` (half the pole length, m),
  ``masscart`` (kg), ``masspole`` (kg) and ``gravity`` (m/s², positive, pointing down).
* ``lunarlander`` — gymnasium ``LunarLander-v3`` with ``gravity`` (m/s², in the open interval
  (−12, 0)), ``wind_power`` (0–20) and ``turbulence_power`` (0–2); wind is enabled when either is
  positive.
* ``metaworld`` — a Meta-World v3 MT10 task: ``env_name``, its ``task_index`` (position in MT10, the
  one-hot id), ``num_tasks`` (one-hot width), ``goal_seed`` (seed of the 50 goal positions),
  ``max_episode_steps`` (500) and ``reward_function_version`` ("v2").
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TaskSpecError(ValueError):
    """A task spec is malformed; the message names the task, the key, the value and what is allowed."""


@dataclass(frozen=True)
class NumberRange:
    """An allowed interval for a numeric parameter; ``open_low``/``open_high`` exclude the bound."""

    low: float
    high: float
    open_low: bool = False
    open_high: bool = False

    def contains(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below

    def __str__(self) -> str:
        return f"{'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"


@dataclass(frozen=True)
class Choice:
    """An allowed set of values for a categorical parameter."""

    values: tuple[Any, ...]

    def contains(self, value: Any) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


# The ten Meta-World MT10 tasks, in the benchmark's order (metaworld.MT10().train_classes).
MT10_TASKS: tuple[str, ...] = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)

#: Allowed parameters of each family: name -> allowed values. Every key is required.
FAMILY_PARAMETERS: dict[str, dict[str, NumberRange | Choice]] = {
    "cartpole": {
        "length": NumberRange(0.0, 3.0, open_low=True),
        "masscart": NumberRange(0.0, 10.0, open_low=True),
        "masspole": NumberRange(0.0, 2.0, open_low=True),
        "gravity": NumberRange(0.0, 30.0, open_low=True),
    },
    "lunarlander": {
        "gravity": NumberRange(-12.0, 0.0, open_low=True, open_high=True),
        "wind_power": NumberRange(0.0, 20.0),
        "turbulence_power": NumberRange(0.0, 2.0),
    },
    "metaworld": {
        "env_name": Choice(MT10_TASKS),
        "task_index": NumberRange(0, len(MT10_TASKS) - 1),
        "num_tasks": NumberRange(1, len(MT10_TASKS)),
        "goal_seed": NumberRange(0, 2**31 - 1),
        "max_episode_steps": NumberRange(1, 500),
        "reward_function_version": Choice(("v1", "v2")),
    },
}

_INTEGER_PARAMETERS = {"task_index", "num_tasks", "goal_seed", "max_episode_steps"}

#: The packages whose versions define a family's dynamics.
FAMILY_PACKAGES: dict[str, tuple[str, ...]] = {
    "cartpole": ("gymnasium",),
    "lunarlander": ("gymnasium", "box2d"),
    "metaworld": ("gymnasium", "metaworld", "mujoco"),
}


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``packages``, e.g. ``{"gymnasium": "1.4.0"}``."""
    return {name: importlib.metadata.version(name) for name in packages}


@dataclass(frozen=True)
class TaskSpec:
    """One task of a suite. Construct through :func:`TaskSpec.from_dict` or the suite builders,
    both of which validate.

    Attributes:
        name: unique, human-readable task name within its suite.
        family: one of :data:`FAMILY_PARAMETERS`.
        parameters: the family's parameters (see the module docstring for units).
        versions: package versions the spec was written with.
    """

    name: str
    family: str
    parameters: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_spec(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "parameters": dict(self.parameters),
            "versions": dict(self.versions),
        }

    @classmethod
    def from_dict(cls, data: Any) -> TaskSpec:
        if not isinstance(data, dict):
            raise TaskSpecError(f"a task spec must be a JSON object, got {type(data).__name__}")
        allowed = {"name", "family", "parameters", "versions"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise TaskSpecError(
                f"task spec has unknown key(s) {unknown}; allowed keys: {sorted(allowed)}"
            )
        missing = sorted({"name", "family", "parameters"} - set(data))
        if missing:
            raise TaskSpecError(f"task spec {data.get('name', '?')!r} is missing key(s) {missing}")
        return cls(
            name=data["name"],
            family=data["family"],
            parameters=dict(data["parameters"]) if isinstance(data["parameters"], dict) else data["parameters"],
            versions=dict(data.get("versions", {})),
        )


def validate_spec(spec: TaskSpec) -> None:
    """Raise :class:`TaskSpecError` naming the offending key, value and allowed range."""
    if not isinstance(spec.name, str) or not spec.name:
        raise TaskSpecError(f"task spec 'name' must be a non-empty string, got {spec.name!r}")
    where = f"task {spec.name!r}"
    if spec.family not in FAMILY_PARAMETERS:
        raise TaskSpecError(
            f"{where}: 'family' = {spec.family!r} is unknown; allowed: {sorted(FAMILY_PARAMETERS)}"
        )
    if not isinstance(spec.parameters, dict):
        raise TaskSpecError(f"{where}: 'parameters' must be a mapping, got {spec.parameters!r}")
    allowed = FAMILY_PARAMETERS[spec.family]
    unknown = sorted(set(spec.parameters) - set(allowed))
    if unknown:
        raise TaskSpecError(
            f"{where} ({spec.family}): unknown parameter(s) {unknown}; allowed: {sorted(allowed)}"
        )
    missing = sorted(set(allowed) - set(spec.parameters))
    if missing:
        raise TaskSpecError(f"{where} ({spec.family}): missing parameter(s) {missing}")
    for key, rule in allowed.items():
        value = spec.parameters[key]
        if isinstance(rule, NumberRange):
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key in _INTEGER_PARAMETERS:
                is_number = isinstance(value, int) and not isinstance(value, bool)
            if not is_number or (isinstance(value, float) and not math.isfinite(value)):
                kind = "an integer" if key in _INTEGER_PARAMETERS else "a finite number"
                raise TaskSpecError(
                    f"{where} ({spec.family}): parameter {key!r} = {value!r} must be {kind} in {rule}"
                )
        if not rule.contains(value):
            raise TaskSpecError(
                f"{where} ({spec.family}): parameter {key!r} = {value!r} is out of range; "
                f"allowed: {rule}"
            )
    if spec.family == "metaworld":
        p = spec.parameters
        if p["task_index"] >= p["num_tasks"]:
            raise TaskSpecError(
                f"{where} (metaworld): parameter 'task_index' = {p['task_index']} must be below "
                f"'num_tasks' = {p['num_tasks']}"
            )


def validate_suite(specs: list[TaskSpec]) -> None:
    """Suite-level checks: non-empty, one family, unique names."""
    if not specs:
        raise TaskSpecError("a suite needs at least one task spec")
    families = sorted({s.family for s in specs})
    if len(families) != 1:
        raise TaskSpecError(f"a suite must use one family, got {families}")
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TaskSpecError(f"task names must be unique within a suite; repeated: {duplicates}")


def read_specs(path: str | Path) -> list[TaskSpec]:
    """Load and validate a JSON list of task specs."""
    with open(path) as handle:
        data = json.load(handle)
    if not isinstance(data, list):
        raise TaskSpecError(f"{path}: expected a JSON list of task specs, got {type(data).__name__}")
    specs = [TaskSpec.from_dict(item) for item in data]
    validate_suite(specs)
    return specs


def specs_to_json(specs: list[TaskSpec]) -> str:
    """Canonical JSON text of a spec list (sorted keys, trailing newline)."""
    return json.dumps([s.to_dict() for s in specs], indent=2, sort_keys=True) + "\n"


def specs_hash(specs: list[TaskSpec]) -> str:
    """SHA-256 of the canonical JSON: identifies the exact task set a run used."""
    return hashlib.sha256(specs_to_json(specs).encode()).hexdigest()
