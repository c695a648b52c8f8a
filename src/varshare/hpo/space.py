"""Search spaces of hyperparameter optimisation: which config keys a study samples, and from what.

A search space maps dotted experiment-config keys (``ppo.learning_rate``) to a distribution, one of
the :data:`FORMS`::

    ppo.learning_rate: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    sac.batch_per_task: {type: categorical, choices: [64, 128, 256]}
    sac.policy_lr: {type: float, low: 1.0e-4, high: 1.0e-3, log: true, also: [sac.q_lr]}

``also`` ties further keys to the same sampled value (one learning rate for actor and critics).
The space file (``configs/hpo_space.yaml``) holds one space per algorithm (``algos``) and one per
method (``methods``); a study of (suite, algo, method) samples the union of its algorithm's and
its method's spaces, with the preset's per-study ``space`` entries replacing (or, ``null``,
removing) keys (:func:`study_space`).

:func:`check_space` validates a resolved space against the experiment config it tunes: every key
must be a hyperparameter of the config, every bound (and choice) must give a valid config, and the
config's own value must lie in the space — the study's first trial evaluates the default
hyperparameters (:func:`default_params`), which is how a study reports the default's objective
under the same protocol.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, ValidationError, model_validator

from varshare.config import (
    ALGOS,
    METHODS,
    ConfigError,
    ExperimentConfig,
    Section,
    describe_error,
    load_config,
    parse_yaml,
)

#: the allowed forms of one search dimension, as error messages state them
FORMS = ("{type: float, low: L, high: H, log: false|true, step: null|S}, "
         "{type: int, low: L, high: H, log: false|true, step: S} or {type: categorical, choices: [v1, v2, ...]}, "
         "each with an optional also: [tied dotted keys]")

#: config keys a study may not sample: they name the run, not a hyperparameter
NOT_TUNABLE = ("suite", "algo", "methods", "seeds", "holdout", "total_steps_per_task", "device", "num_threads")


class _Dimension(Section):
    also: list[str] = Field(default_factory=list, description="Further dotted keys set to the same value.")


class FloatDimension(_Dimension):
    """A real number in [low, high], log-uniform with ``log``, on a grid of ``step`` if given."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> FloatDimension:
        _check_bounds(self.low, self.high, self.log, self.step)
        return self


class IntDimension(_Dimension):
    """An integer in [low, high] (log-uniform with ``log``) on a grid of ``step``."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> IntDimension:
        _check_bounds(self.low, self.high, self.log, self.step if self.step != 1 else None)
        return self


class CategoricalDimension(_Dimension):
    """One of ``choices`` (numbers, strings or booleans)."""

    type: Literal["categorical"]
    choices: list[Union[bool, int, float, str]] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> CategoricalDimension:
        if len({repr(c) for c in self.choices}) != len(self.choices):
            raise ValueError(f"choices {self.choices} repeat a value")
        return self


Dimension = Annotated[Union[FloatDimension, IntDimension, CategoricalDimension], Field(discriminator="type")]
_DIMENSIONS = {"float": FloatDimension, "int": IntDimension, "categorical": CategoricalDimension}


def _check_bounds(low: float, high: float, log: bool, step: float | None) -> None:
    if low >= high:
        raise ValueError(f"low = {low:g} must be below high = {high:g}")
    if log and low <= 0:
        raise ValueError(f"log = true needs low > 0, got low = {low:g}")
    if log and step is not None:
        raise ValueError("log and step exclude each other (Optuna samples a log range without a grid)")


class SpaceFile(BaseModel):
    """The search-space file: per algorithm and per method, dotted config key → raw dimension
    (each dimension is checked by :func:`parse_dimension`, for messages that name its key)."""

    model_config = {"extra": "forbid", "strict": True}

    algos: dict[Literal[ALGOS], dict[str, Any]] = Field(default_factory=dict)  # type: ignore[valid-type]
    methods: dict[Literal[METHODS], dict[str, Any]] = Field(default_factory=dict)  # type: ignore[valid-type]


def parse_dimension(where: str, raw: Any) -> tuple[Dimension | None, list[str]]:
    """One dimension from its raw mapping; problems name ``where`` (its dotted location) and the
    allowed forms."""
    if not isinstance(raw, Mapping) or raw.get("type") not in _DIMENSIONS:
        got = raw.get("type") if isinstance(raw, Mapping) else raw
        return None, [f"{where}: got {got!r}; a dimension is one of {FORMS}"]
    model = _DIMENSIONS[raw["type"]]
    try:
        return model.model_validate(dict(raw)), []
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            if error["type"] == "value_error":
                lines.append(f"{where}: {error['ctx']['error']}")
            else:
                lines.append(f"{where}.{describe_error(error, model)}")
        return None, lines


def config_key_problem(key: str) -> str | None:
    """Why ``key`` is not a tunable hyperparameter of :class:`ExperimentConfig` (None if it is)."""
    if key in NOT_TUNABLE:
        return f"{key!r} is not a hyperparameter (it names the run or its budget)"
    model: type[BaseModel] = ExperimentConfig
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            prefix = ".".join(parts[:depth])
            known = [f"{prefix}.{name}" if prefix else name for name in fields]
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return f"{key!r} is not a key of the experiment config{hint}"
        annotation = fields[part].annotation
        last = depth == len(parts) - 1
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if last and is_section:
            return f"{key!r} is a section of the experiment config, not a value; name one of its keys"
        if not last:
            if not is_section:
                return f"{key!r} is not a key of the experiment config ({'.'.join(parts[:depth + 1])} is a value)"
            model = annotation
    return None


def study_space(space_file: SpaceFile, algo: str, method: str, replacements: Mapping[str, Any] | None = None,
                where: str = "hpo.space") -> tuple[dict[str, Dimension], list[str]]:
    """The space of a study of ``algo`` and ``method``: the algorithm's dimensions, then the method's,
    then ``replacements`` (a dimension replaces the key's; ``None`` removes it). Returns the parsed
    space and its problems (one line each, naming the key)."""
    raw: dict[str, tuple[str, Any]] = {}
    for section, name in (("algos", algo), ("methods", method)):
        for key, value in getattr(space_file, section).get(name, {}).items():
            raw[key] = (f"{where}.{section}.{name}[{key!r}]", value)
    for key, value in (replacements or {}).items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = (f"{where}[{key!r}]", value)
    space, problems = {}, []
    for key, (location, value) in raw.items():
        dimension, lines = parse_dimension(location, value)
        problems += lines
        for tied in [key, *(dimension.also if dimension else [])]:
            problem = config_key_problem(tied)
            if problem:
                problems.append(f"{location}: {problem}")
        if dimension is not None and not lines:
            space[key] = dimension
    return space, problems


def extremes(dimension: Dimension) -> list[Any]:
    """The values that bound a dimension: low and high, or every choice."""
    if isinstance(dimension, CategoricalDimension):
        return list(dimension.choices)
    return [dimension.low, dimension.high]


def overrides_of(space: Mapping[str, Dimension], params: Mapping[str, Any]) -> dict[str, Any]:
    """Config overrides (dotted keys) that sampled ``params`` (key → value) stand for, tied keys included."""
    overrides = {}
    for key, value in params.items():
        for tied in [key, *space[key].also]:
            overrides[tied] = value
    return overrides


def config_value(config: ExperimentConfig, key: str) -> Any:
    """The value of the dotted ``key`` in ``config``."""
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def default_params(config: ExperimentConfig, space: Mapping[str, Dimension]) -> dict[str, Any]:
    """The config's own values of the space's keys: the study's default trial."""
    return {key: config_value(config, key) for key in space}


def contains(dimension: Dimension, value: Any) -> bool:
    """Whether ``value`` is a value ``dimension`` can take (bounds and type; grids are not checked)."""
    if isinstance(dimension, CategoricalDimension):
        return any(type(value) is type(c) and value == c for c in dimension.choices)
    if isinstance(dimension, IntDimension) and (isinstance(value, bool) or not isinstance(value, int)):
        return False
    return isinstance(value, (int, float)) and not isinstance(value, bool) and dimension.low <= value <= dimension.high


def check_space(space: Mapping[str, Dimension], config: ExperimentConfig, where: str) -> list[str]:
    """Problems of ``space`` as a space of ``config`` (resolved, the trial budget applied): each
    bound or choice must give a valid config, tied keys must hold the key's value in ``config``, and
    the config's own values must lie in the space (the default trial)."""
    if not space:
        return [f"{where}: the search space is empty; give the algorithm or the method some dimensions"]
    problems, base = [], config.to_dict()
    for key, dimension in space.items():
        for value in extremes(dimension):
            try:
                load_config(base, overrides_of(space, {key: value}))
            except ConfigError as error:
                problems += [f"{where}[{key!r}] = {value!r}: {p}" for p in error.problems]
        default = config_value(config, key)
        if not contains(dimension, default):
            problems.append(f"{where}[{key!r}]: the experiment config's value {default!r} is outside the space "
                            f"({_describe(dimension)}); the first trial evaluates the defaults, so the space must "
                            f"contain them")
        for tied in dimension.also:
            if config_value(config, tied) != default:
                problems.append(f"{where}[{key!r}]: also ties {tied!r} = {config_value(config, tied)!r} to {key!r} = "
                                f"{default!r}; tied keys must start equal")
    return problems


def _describe(dimension: Dimension) -> str:
    if isinstance(dimension, CategoricalDimension):
        return f"choices {dimension.choices}"
    return f"[{dimension.low:g}, {dimension.high:g}]{' log' if dimension.log else ''}"


def load_space_file(path: str) -> SpaceFile:
    """Read and validate the search-space file's layout (:class:`ConfigError` naming the key)."""
    try:
        data = parse_yaml(open(path).read())
    except OSError as exc:
        raise ConfigError([f"cannot read the search-space file: {exc.strerror}"], path, "search space") from None
    try:
        return SpaceFile.model_validate(data or {})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = ".".join(map(str, error["loc"]))
            if loc.endswith("[key]"):
                lines.append(f"{loc[:-6]}: unknown key {error['input']!r}; allowed: {error['ctx']['expected']}")
            elif error["type"] == "extra_forbidden":
                lines.append(f"unknown key {loc!r}; allowed keys: algos, methods")
            else:
                lines.append(f"{loc}: {error['msg']}")
        raise ConfigError(lines, path, "search space") from None


def suggest(trial, space: Mapping[str, Dimension]) -> dict[str, Any]:
    """Sample every dimension of ``space`` with an Optuna ``trial``; returns key → value."""
    params = {}
    for key, dimension in space.items():
        if isinstance(dimension, FloatDimension):
            params[key] = trial.suggest_float(key, dimension.low, dimension.high, log=dimension.log, step=dimension.step)
        elif isinstance(dimension, IntDimension):
            params[key] = trial.suggest_int(key, dimension.low, dimension.high, log=dimension.log, step=dimension.step)
        else:
            params[key] = trial.suggest_categorical(key, dimension.choices)
    return params


def parse_space(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, Dimension]:
    """A space written by :func:`space_to_dict` (a study spec's) back as dimensions."""
    return {key: _DIMENSIONS[value["type"]].model_validate(dict(value)) for key, value in raw.items()}


def space_to_dict(space: Mapping[str, Dimension]) -> dict[str, dict[str, Any]]:
    return {key: dimension.to_dict() for key, dimension in space.items()}
