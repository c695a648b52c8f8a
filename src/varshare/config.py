"""The experiment config: one validated, typed description of a run, loaded from YAML.

``load_config(path_or_dict, overrides)`` returns an :class:`ExperimentConfig` or raises
:class:`ConfigError` listing *every* problem, one per line, each with the full dotted key, the
offending value and what is allowed (for unknown keys: the section's keys and a "did you mean").
``dump_config`` writes the fully resolved config back to YAML; it loads to an equal object.

Conventions:

* Every section is a small pydantic model deriving from :class:`Section`: unknown keys are errors
  (``extra="forbid"``), types are strict (``"3"`` is not an int, ``1`` is not a bool; an int is
  accepted where a float is expected), floats must be finite, and the model is frozen.
* Step counts are environment steps *per task*; learning rates are per optimizer step.
* Names that code dispatches on live in one module-level tuple (:data:`METHODS`) or come from
  their registry (suites: :data:`varshare.envs.suites.SUITES`); the field types are built from them.

Extending (later issues add e.g. ``sac``, ``variants``, ``loo``): write one ``Section`` subclass
with documented, bounded fields and defaults, and register it as a field of
:class:`ExperimentConfig` with ``Field(default_factory=TheSection)``. New method names are appended
to :data:`METHODS`. Checks spanning fields raise ``PydanticCustomError("cross_field", ...)``
whose message names every key involved and its value; error reporting needs no other change.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from varshare.envs.suites import SUITES, build_suite
from varshare.io import atomic_write_text

#: The weight-sharing methods; append new ones here (the ``methods`` field is built from this).
METHODS: tuple[str, ...] = (
    "independent",
    "hard_sharing",
    "contextual",
    "l2_soft",
    "pcgrad",
    "cagrad",
    "varshare",
    # VarShare variants (SCIENCE.md "Variants"; sections reptile, lora, trust_region, horseshoe,
    # kl_anneal; the others read only ``varshare``)
    "varshare_reptile",
    "varshare_lora",
    "varshare_trust_region",
    "varshare_horseshoe",
    "varshare_shared_noise",
    "varshare_lrt",
    "varshare_adaptive_prior",
    "varshare_kl_anneal",
    "varshare_mean_rollout",
)

MethodName = Literal[METHODS]  # type: ignore[valid-type]

#: The study's roles (SCIENCE.md, "The claims"): the seven compared methods, the ten VarShare
#: variants (the first is the base) and the two methods claimed to beat the other baselines.
COMPARED_METHODS: tuple[str, ...] = METHODS[:7]
VARSHARE_VARIANTS: tuple[str, ...] = METHODS[6:]
CHALLENGERS: tuple[str, ...] = ("varshare", "l2_soft")

#: The base RL algorithms (``varshare.algos.<name>`` implements each; ``--algo`` / ``{algo}``).
ALGOS: tuple[str, ...] = ("ppo", "sac")
AlgoName = Literal[ALGOS]  # type: ignore[valid-type]

#: Leave-one-out adaptation regimes (``varshare adapt --regime``; SCIENCE.md "Leave-one-out").
REGIMES: tuple[str, ...] = ("scratch", "full", "residual")
RegimeName = Literal[REGIMES]  # type: ignore[valid-type]
SuiteName = Literal[tuple(SUITES)]  # type: ignore[valid-type]


class ConfigError(ValueError):
    """An invalid config; ``problems`` holds one line per problem, ``source`` the file (if any)."""

    def __init__(self, problems: list[str], source: str | None = None, what: str = "experiment config") -> None:
        self.problems = problems
        self.source = source
        where = f" ({source})" if source else ""
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid {what}{where}: {count}\n{lines}")


def _unique(values: list) -> list:
    """Reject repeated items (validator of list fields whose items must be distinct)."""
    duplicates = sorted({v for v in values if values.count(v) > 1}, key=str)
    if duplicates:
        raise ValueError(f"duplicates: {duplicates}")
    return values


class Section(BaseModel):
    """Base of every config section: unknown keys forbidden, strict types, finite floats, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved section as plain Python data (YAML-serialisable)."""
        return self.model_dump(mode="python")


class EvalConfig(Section):
    """Periodic evaluation during training."""

    every_steps: int = Field(10_000, ge=1, description="Evaluate every this many env steps per task.")
    episodes: int = Field(10, ge=1, description="Evaluation episodes per task and evaluation.")
    envs_per_task: int | None = Field(
        None, ge=1,
        description=(
            "Evaluation env copies per task; each runs episodes / envs_per_task episodes back to back "
            "(must divide episodes). None: one copy per episode. Meta-World's own evaluation steps one "
            "env per task; MuJoCo copies cost ~20 MB each, so MT10 uses a few."
        ),
    )

    sample_strategies: list[str] = Field(
        ["sample-1", "sample-5"],
        description=(
            "Sampled-weight evaluation strategies logged next to the mean weights for stochastic-weight "
            "models ('sample-K', K >= 1; Fig. 3). Each costs a full evaluation, sample-K materialises K "
            "weights per copy: MT10's 3×400 networks log none."
        ),
    )

    @field_validator("sample_strategies")
    @classmethod
    def _known_strategies(cls, value: list[str]) -> list[str]:
        for strategy in value:
            if not re.fullmatch(r"sample-[1-9][0-9]*", strategy):
                raise ValueError(f"{strategy!r} is not a sample strategy; use 'sample-K' with K >= 1, "
                                 f"e.g. ['sample-1', 'sample-5'], or [] for none")
        return _unique(value)

    @model_validator(mode="after")
    def _copies_divide_episodes(self) -> EvalConfig:
        if self.envs_per_task is not None and self.episodes % self.envs_per_task:
            raise ValueError(f"eval.envs_per_task = {self.envs_per_task} must divide eval.episodes = "
                             f"{self.episodes}")
        return self


class CheckpointConfig(Section):
    """Periodic resume checkpoints of a training run."""

    every_steps: int = Field(
        50_000, ge=1,
        description=(
            "Save a resume checkpoint every this many env steps per task (rounded up to whole "
            "iterations of the algorithm). Simulator-backed envs (LunarLander, MT10) cannot be snapshotted, so at each "
            "checkpoint they are reseeded and reset, in resumed and uninterrupted runs alike."
        ),
    )


class PPOConfig(Section):
    """PPO hyperparameters; defaults are CleanRL ``ppo.py`` (CartPole)."""

    learning_rate: float = Field(2.5e-4, gt=0, description="Adam step size (initial value if annealed).")
    num_steps: int = Field(128, ge=1, description="Rollout length per env per update [env steps].")
    update_epochs: int = Field(4, ge=1, description="Passes over each rollout batch.")
    num_minibatches: int = Field(4, ge=1, description="Minibatches per epoch; must divide the batch per task.")
    gamma: float = Field(0.99, ge=0, le=1, description="Discount factor per env step.")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE λ.")
    clip_coef: float = Field(0.2, gt=0, description="Surrogate (and value) clipping range ε.")
    ent_coef: float = Field(0.01, ge=0, description="Entropy bonus weight.")
    vf_coef: float = Field(0.5, ge=0, description="Value-loss weight.")
    max_grad_norm: float = Field(0.5, gt=0, description="Global gradient-norm clip (L2).")
    anneal_lr: bool = Field(True, description="Decay the learning rate linearly to 0 over training.")
    norm_adv: bool = Field(True, description="Normalise advantages per minibatch.")
    clip_vloss: bool = Field(True, description="Clip the value loss around the old value estimate.")
    normalize_obs: bool = Field(
        False,
        description=("Normalise observations per task by running mean and variance over the rollouts "
                     "seen so far, then clip to ±obs_clip (CleanRL ppo_continuous_action; MT10)."))
    obs_clip: float = Field(10.0, gt=0, description="Clip of normalised observations [standard deviations].")


class SACConfig(Section):
    """Multi-task SAC hyperparameters (SCIENCE.md "SAC"); defaults are the MT10 reference
    (multi-task multi-head SAC as Meta-World's baselines run it). One *vector step* steps every
    copy of every task once: ``envs_per_task`` new transitions per task."""

    policy_lr: float = Field(3e-4, gt=0, description="Adam step size of the actor.")
    q_lr: float = Field(3e-4, gt=0, description="Adam step size of the twin critics.")
    alpha_lr: float = Field(3e-4, gt=0, description="Adam step size of the per-task log-temperatures log α_m.")
    gamma: float = Field(0.99, ge=0, le=1, description="Discount factor per env step.")
    tau: float = Field(0.005, gt=0, le=1, description="Polyak rate: target ← τ·online + (1 − τ)·target.")
    target_update_interval: int = Field(1, ge=1, description="Gradient steps between Polyak updates of the targets.")
    batch_per_task: int = Field(128, ge=1, description="Transitions sampled from each task's buffer per gradient step.")
    buffer_size: int = Field(100_000, ge=1, description="Replay capacity per task [transitions]; FIFO once full.")
    learning_starts: int = Field(
        4000, ge=0,
        description="Env steps per task of uniformly random actions before the first gradient step (warm-up).")
    train_freq: int = Field(1, ge=1, description="Vector steps between gradient phases.")
    gradient_steps: int = Field(1, ge=1, description="Gradient steps per gradient phase.")
    steps_per_iteration: int = Field(
        1000, ge=1,
        description=(
            "Env steps per task of one training iteration (the unit of logging; evaluations and "
            "checkpoints fall on iteration boundaries); a multiple of envs_per_task × train_freq."
        ),
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient-norm clip (L2) of the actor's and of the critics' gradients.")
    init_log_alpha: float = Field(0.0, description="Initial log α_m of every task.")
    target_entropy_ratio: float = Field(
        0.7, gt=0, lt=1,
        description="Discrete actions: target entropy H̄ = ratio · log|A| (CleanRL's Atari value 0.89 is too high for |A| = 2).",
    )
    target_entropy_per_dim: float = Field(
        -1.0, description="Continuous actions: target entropy H̄ = this × action dims (−|A|: −4 on MT10).")
    log_std_min: float = Field(-5.0, description="Continuous actions: lower clamp of the policy's log-std.")
    log_std_max: float = Field(2.0, description="Continuous actions: upper clamp of the policy's log-std.")
    method_phase_steps: int = Field(
        1000, ge=1,
        description=(
            "Gradient steps of one method update phase: the method's begin_update / end_update hooks "
            "(Reptile re-centring, the trust region's snapshot, KL annealing) run around each phase."
        ),
    )
    sample_target_weights: bool = Field(
        False, description="Stochastic-weight methods: draw the target critics' weights (default: their mean weights).")


class NetworkConfig(Section):
    """Actor and critic MLPs (each has these hidden layers)."""

    hidden_sizes: list[Annotated[int, Ge(1)]] = Field(
        default_factory=lambda: [64, 64], min_length=1, description="Hidden-layer widths [units]."
    )
    activation: Literal["tanh", "relu"] = Field("tanh", description="Hidden-layer nonlinearity.")


class VarShareConfig(Section):
    """VarShare: W_m = θ + μ_m + σ_m ⊙ ε, loss = RL + β·KL(q_m ‖ N(0, σ_prior² I)) / N_data."""

    beta: float = Field(
        1.0,
        ge=0,
        description=(
            "KL weight β. Default 1 (our choice; the seeds give none): with the KL divided by the "
            "per-task update batch, β = 1 is the per-transition evidence lower bound."
        ),
    )
    sigma_prior: float = Field(0.1, gt=0, description="Prior std σ_prior of every residual element.")
    rho_init: float = Field(-5.0, description="Initial ρ; σ = softplus(ρ), so −5 gives σ ≈ 0.0067.")
    estimator: Literal["flipout", "shared_noise", "local_reparam"] = Field(
        "flipout", description="Gradient estimator of the weight noise."
    )


class ReptileConfig(Section):
    """varshare_reptile: after each update phase move part of the residual means into θ."""

    alpha: float = Field(
        0.1, gt=0, le=1,
        description="Fraction α of the residual mean moved into θ after each update phase.",
    )
    recenter: Literal["per_task", "mean"] = Field(
        "per_task",
        description=(
            "per_task: for each task m in order, s = α·μ_m; θ += s; μ_m −= s (the seed's pseudocode; "
            "keeps task m's function, moves the others'). mean: δ = α·mean_m μ_m; θ += δ; every "
            "μ_m −= δ (keeps every task's function)."
        ),
    )


class LoRAConfig(Section):
    """varshare_lora: residual φ_m = B_m A_m with Gaussian posteriors on A_m and B_m (prior
    N(0, varshare.sigma_prior²), initial ρ varshare.rho_init, weight varshare.beta)."""

    rank: int = Field(4, ge=1, description="Rank r of the residual (A_m ∈ R^{r×in}, B_m ∈ R^{out×r}).")


class TrustRegionConfig(Section):
    """varshare_trust_region: loss += coef · Σ_m KL(q_m ‖ q_m at the start of the update phase) / N_data."""

    coef: float = Field(
        1.0, ge=0,
        description=(
            "Weight of the trust-region KL (our choice); scaled like β: per-task KLs summed over "
            "tasks and divided by the per-task update batch."
        ),
    )


class HorseshoeConfig(Section):
    """varshare_horseshoe: group-horseshoe prior φ_{m,j,·} ~ N(0, τ0² λ_{m,j}²), λ ~ C⁺(0, 1), per
    output unit j, with q(λ) = LogNormal(ℓ, s²) (replaces varshare.sigma_prior)."""

    tau0: float = Field(
        0.1, gt=0,
        description="Global scale τ0 (our choice: equals varshare.sigma_prior's default at λ = 1).",
    )
    scale_loc_init: float = Field(0.0, description="Initial ℓ = log-median of q(λ) (0: λ ≈ 1).")
    scale_rho_init: float = Field(
        -2.0, description="Initial ρ_λ of q(λ); s = softplus(ρ_λ), so −2 gives s ≈ 0.13."
    )


class KLAnnealConfig(Section):
    """varshare_kl_anneal: β(progress) = varshare.beta · min(1, progress / warmup_fraction)."""

    warmup_fraction: float = Field(
        0.2, gt=0, le=1, description="Fraction of training over which β rises linearly from 0."
    )


class L2SoftConfig(Section):
    """L2 soft sharing: W_m = θ + φ_m, loss = RL + coef·Σ_m ‖φ_m‖²."""

    coef: float = Field(1e-3, ge=0, description="Weight λ of the summed squared residuals (our choice).")


class CAGradConfig(Section):
    """CAGrad on the shared parameters (Liu et al. 2021)."""

    c: float = Field(0.5, ge=0, description="Conflict-averse radius c (authors: 0.5; 0.9 on MT10).")
    rescale: Literal[0, 1, 2] = Field(1, description="0: none, 1: d/(1+c²), 2: d/(1+c).")


class ContextualConfig(Section):
    """Contextual sharing: one network whose input is [obs, e_m] with a learned task embedding."""

    embedding_dim: int = Field(32, ge=1, description="Task-embedding width (L2-normalised) [units].")


class ExperimentConfig(Section):
    """One experiment: every method × seed trained on every task of ``suite``."""

    suite: SuiteName = Field(description="Task suite (a key of varshare.envs.suites.SUITES).")
    algo: AlgoName = Field("ppo", description="Base RL algorithm (a module of varshare.algos).")
    methods: Annotated[list[MethodName], AfterValidator(_unique)] = Field(
        min_length=1, description="Sharing methods to train, each once per seed."
    )
    seeds: Annotated[list[Annotated[int, Ge(0)]], AfterValidator(_unique)] = Field(
        min_length=1, description="Random seeds, one run per method and seed."
    )
    # Declared after ``suite``: the check below reads it.
    holdout: str | None = Field(
        None,
        description=(
            "Leave-one-out: the task of the suite (by name) held out of training, which then trains "
            "on the other M − 1 tasks; null trains on every task."
        ),
    )
    total_steps_per_task: int = Field(ge=1, description="Training budget per task [env steps].")
    # Declared before ``ppo``: the batch check below reads it.
    envs_per_task: int = Field(4, ge=1, description="Parallel environments per task.")
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    sac: SACConfig = Field(default_factory=SACConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    varshare: VarShareConfig = Field(default_factory=VarShareConfig)
    reptile: ReptileConfig = Field(default_factory=ReptileConfig)
    lora: LoRAConfig = Field(default_factory=LoRAConfig)
    trust_region: TrustRegionConfig = Field(default_factory=TrustRegionConfig)
    horseshoe: HorseshoeConfig = Field(default_factory=HorseshoeConfig)
    kl_anneal: KLAnnealConfig = Field(default_factory=KLAnnealConfig)
    l2_soft: L2SoftConfig = Field(default_factory=L2SoftConfig)
    cagrad: CAGradConfig = Field(default_factory=CAGradConfig)
    contextual: ContextualConfig = Field(default_factory=ContextualConfig)
    num_threads: int = Field(1, ge=1, description="torch intra-op threads per training job.")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="Torch device; auto: cuda if available.")

    @field_validator("holdout")
    @classmethod
    def _holdout_in_suite(cls, holdout: str | None, info: ValidationInfo) -> str | None:
        """The held-out task must be a task of ``suite``."""
        suite = info.data.get("suite")
        if holdout is None or suite is None:  # an invalid suite is reported on its own
            return holdout
        names = [spec.name for spec in build_suite(suite)]
        if holdout not in names:
            raise PydanticCustomError(
                "cross_field",
                "{message}",
                {"message": f"holdout = {holdout!r} is not a task of suite {suite}; allowed: {', '.join(names)}"},
            )
        return holdout

    @field_validator("ppo")
    @classmethod
    def _batch_divisible(cls, ppo: PPOConfig, info: ValidationInfo) -> PPOConfig:
        """The per-task batch envs_per_task × ppo.num_steps must split into equal minibatches
        (checked when the algorithm is PPO).

        A field validator (not a model validator) so that it still runs, and is reported, when
        unrelated fields are invalid.
        """
        envs = info.data.get("envs_per_task")
        if envs is None or info.data.get("algo") != "ppo":  # invalid itself, reported on its own; or not PPO
            return ppo
        batch = envs * ppo.num_steps
        if batch % ppo.num_minibatches:
            divisors = ", ".join(str(d) for d in range(1, batch + 1) if batch % d == 0)
            raise PydanticCustomError(
                "cross_field",
                "{message}",
                {
                    "message": f"ppo.num_minibatches = {ppo.num_minibatches} must divide the PPO batch "
                    f"envs_per_task × ppo.num_steps = {envs} × {ppo.num_steps} = {batch}; "
                    f"allowed: {divisors}"
                },
            )
        return ppo

    @field_validator("sac")
    @classmethod
    def _sac_iteration_whole(cls, sac: SACConfig, info: ValidationInfo) -> SACConfig:
        """An SAC iteration must be whole gradient phases of whole vector steps (checked when the
        algorithm is SAC), and the log-std clamp a non-empty interval."""
        if sac.log_std_min >= sac.log_std_max:
            raise PydanticCustomError("cross_field", "{message}", {
                "message": f"sac.log_std_min = {sac.log_std_min:g} must be below sac.log_std_max = {sac.log_std_max:g}"})
        envs = info.data.get("envs_per_task")
        if envs is None or info.data.get("algo") != "sac":  # only SAC runs in iterations of this size
            return sac
        unit = envs * sac.train_freq
        if sac.steps_per_iteration % unit:
            raise PydanticCustomError("cross_field", "{message}", {
                "message": f"sac.steps_per_iteration = {sac.steps_per_iteration} must be a multiple of "
                f"envs_per_task × sac.train_freq = {envs} × {sac.train_freq} = {unit}; e.g. "
                f"{max(unit, sac.steps_per_iteration // unit * unit)}"})
        return sac


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-3`` (no dot) as a float, as YAML 1.2 does."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML text as configs are read (safe loader; ``1e-3`` is a float)."""
    return yaml.load(text, Loader=_YamlLoader)


def load_config(
    source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> ExperimentConfig:
    """Read, merge and validate an experiment config.

    Args:
        source: path of a YAML file, or the config as a mapping (not modified).
        overrides: merged over ``source`` (nested mappings merge key by key, anything else replaces);
            keys may be dotted, e.g. ``{"ppo.learning_rate": 1e-3}``.

    Raises:
        ConfigError: listing every problem (key, value, what is allowed), and the file if any.
    """
    origin = None
    if isinstance(source, (str, Path)):
        origin = str(source)
        try:
            data = parse_yaml(Path(source).read_text())
        except yaml.YAMLError as exc:
            raise ConfigError([f"not valid YAML: {exc}"], origin) from None
        except IsADirectoryError:
            raise ConfigError(["is a directory; give an experiment config YAML file, e.g. "
                               "configs/cartpole10_ppo.yaml"], origin) from None
        except OSError as exc:
            raise ConfigError([f"cannot read it: {exc.strerror}"], origin) from None
    else:
        data = source
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise ConfigError([f"the config must be a mapping of keys to values, got {kind}: {data!r}"], origin)
    merged = _merge(data, expand_dotted(overrides or {}))
    try:
        return ExperimentConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError([describe_error(error) for error in exc.errors()], origin) from None


def dump_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the fully resolved ``cfg`` as YAML to ``path`` (parents created); it loads back equal."""
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def expand_dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "c": {"d.e": 2}}`` → ``{"a": {"b": 1}, "c": {"d": {"e": 2}}}``."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            value = expand_dotted(value)
        head, *rest = str(key).split(".")
        for part in reversed(rest):
            value = {part: value}
        nested = _merge(nested, {head: value})
    return nested


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``update`` merged in (mappings recursively, other values replace)."""
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# --- error messages -------------------------------------------------------------------------------


def _dotted(loc: tuple) -> str:
    """``("ppo", "gamma")`` → ``ppo.gamma``; ``("seeds", 1)`` → ``seeds[1]``."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def _unwrap(annotation: Any) -> tuple[Any, list]:
    """``Annotated[T, *metadata]`` → ``(T, metadata)``; anything else → ``(annotation, [])``."""
    if get_origin(annotation) is Annotated:
        base, *metadata = get_args(annotation)
        inner, inner_metadata = _unwrap(base)
        return inner, [*inner_metadata, *metadata]
    return annotation, []


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _lookup(loc: tuple, root: type[BaseModel]) -> tuple[Any, list] | None:
    """Type and constraints at ``loc`` inside the model ``root``; ``None`` if not a field."""
    annotation, metadata = root, []
    for part in loc:
        if isinstance(part, int) and get_origin(annotation) is list:
            annotation, metadata = _unwrap(get_args(annotation)[0])
        elif get_origin(annotation) is dict:
            annotation, metadata = _unwrap(get_args(annotation)[1])
        elif _is_section(annotation) and part in annotation.model_fields:
            field = annotation.model_fields[part]
            annotation, metadata = _unwrap(field.annotation)
            metadata += field.metadata
        else:
            return None
    return annotation, metadata


def _bounds(metadata: list) -> str:
    """Numeric constraints as text: ``" > 0"``, ``" >= 1"``, ``" in [0, 1]"``."""
    low = next(((f"[{m.ge:g}", f">= {m.ge:g}") for m in metadata if isinstance(m, Ge)), None)
    low = low or next(((f"({m.gt:g}", f"> {m.gt:g}") for m in metadata if isinstance(m, Gt)), None)
    high = next(((f"{m.le:g}]", f"<= {m.le:g}") for m in metadata if isinstance(m, Le)), None)
    high = high or next(((f"{m.lt:g})", f"< {m.lt:g}") for m in metadata if isinstance(m, Lt)), None)
    if low and high:
        return f" in {low[0]}, {high[0]}"
    return f" {(low or high)[1]}" if low or high else ""


def _allowed(annotation: Any, metadata: list) -> str:
    """What a value of this type and constraints may be, as text ("a number > 0", "one of ...")."""
    if _is_section(annotation):
        return f"a mapping with keys {', '.join(annotation.model_fields)}"
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(annotation))
    if get_origin(annotation) in (Union, UnionType) and type(None) in get_args(annotation):
        others = [arg for arg in get_args(annotation) if arg is not type(None)]
        return "null or " + " or ".join(_allowed(arg, metadata) for arg in others)
    if annotation is bool:
        return "true or false"
    if annotation is str:
        return "a string"
    if annotation is int:
        return "an integer" + _bounds(metadata)
    if annotation is float:
        return "a finite number" + _bounds(metadata)
    if get_origin(annotation) is list:
        non_empty = "non-empty " if any(isinstance(m, MinLen) and m.min_length >= 1 for m in metadata) else ""
        unique = " of unique items" if any(getattr(m, "func", None) is _unique for m in metadata) else ""
        return f"a {non_empty}list{unique}, each {_allowed(*_unwrap(get_args(annotation)[0]))}"
    return str(annotation)


def describe_error(error: dict[str, Any], root: type[BaseModel] | None = None) -> str:
    """One line for one pydantic error of model ``root`` (default :class:`ExperimentConfig`): the
    dotted key, the value, and what is allowed."""
    root = root or ExperimentConfig
    loc, key = error["loc"], _dotted(error["loc"])
    if error["type"] == "cross_field":
        return error["msg"]
    if error["type"] == "extra_forbidden":
        section = _lookup(loc[:-1], root)
        allowed = list(section[0].model_fields) if section and _is_section(section[0]) else []
        line = f"unknown key {key!r}; allowed keys: {', '.join(allowed)}"
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        return line + (f"; did you mean {close[0]!r}?" if close else "")
    found = _lookup(loc, root)
    allowed = f"must be {_allowed(*found)}" if found else error["msg"]
    if error["type"] == "missing":
        return f"{key}: missing required key; {allowed}"
    detail = f" ({error['ctx']['error']})" if error["type"] == "value_error" else ""
    return f"{key}: got {error['input']!r}; {allowed}{detail}"
