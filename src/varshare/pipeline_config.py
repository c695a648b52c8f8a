"""The pipeline preset: which suites, methods and seeds the Snakemake DAG builds, and with what.

A preset (``configs/smoke.yaml``, ``configs/default.yaml``, ``configs/paper.yaml``) names, per suite,
an experiment config and the overrides this preset applies to it. The Snakefile validates the whole
preset — including every suite's resolved experiment config — when it loads, so a bad value fails
with one message naming its key before any job starts. Snakemake's ``--config key=value``
overrides are validated the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge
from pydantic import AfterValidator, Field, ValidationError

from varshare.config import (
    REGIMES,
    ConfigError,
    ExperimentConfig,
    MethodName,
    RegimeName,
    Section,
    SuiteName,
    describe_error,
    _unique,
    load_config,
    parse_yaml,
)
from varshare.envs.suites import build_suite


class SuitePlan(Section):
    """How one suite is trained in this preset."""

    experiment: str = Field(description="Experiment config YAML (path relative to the repository root).")
    set: dict[str, Any] = Field(default_factory=dict, description="Overrides (dotted keys allowed).")


class TrainResources(Section):
    """Resources a training job asks for (Snakemake resources; the SLURM profile maps them)."""

    threads: int = Field(1, ge=1, description="CPU threads (torch intra-op threads = this).")
    mem_mb: int = Field(2000, ge=100, description="Memory [MB].")
    runtime: int = Field(60, ge=1, description="Wall-time limit [minutes].")
    gpu: int = Field(0, ge=0, description="GPUs per training job (0: CPU).")


class PruningPlan(Section):
    """Post-training pruning sweep (``varshare prune``) of one method's runs."""

    method: MethodName = Field("varshare", description="Method whose runs are pruned.")
    eps: Annotated[list[Annotated[float, Ge(0)]], AfterValidator(_unique)] = Field(
        default_factory=lambda: [0.0, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1], min_length=1,
        description="Thresholds ε: residual means with |μ| < ε are zeroed.")
    episodes: int = Field(5, ge=1, description="Evaluation episodes per task and ε.")


class LOOSuitePlan(Section):
    """Leave-one-out on one suite: which tasks are held out, the budgets and the threshold."""

    holdouts: Annotated[list[str], AfterValidator(_unique)] = Field(
        min_length=1, description="Tasks held out, one pretraining per task (names of the suite's tasks).")
    pretrain_steps_per_task: int = Field(ge=1, description="Pretraining budget on each of the M − 1 tasks [env steps].")
    adapt_steps: int = Field(ge=1, description="Budget on the held-out task, the same for every regime [env steps].")
    threshold: float = Field(description="Return the held-out task must reach (steps-to-threshold).")
    eval_every_steps: int | None = Field(
        None, ge=1, description="Evaluation interval of the adaptation runs [env steps] (the resolution of "
                                "steps-to-threshold); null: the suite's experiment config's eval.every_steps.")


class LOOPlan(Section):
    """Leave-one-out generalisation (``varshare train --holdout`` → ``varshare adapt``); no suites or
    no methods: none (``--config "loo={methods: []}"`` turns it off; Snakemake merges nested
    ``--config`` mappings, so ``suites`` cannot be emptied that way)."""

    suites: dict[SuiteName, LOOSuitePlan] = Field(
        default_factory=dict, description="Per suite (one of the preset's suites): held-out tasks, budgets, threshold.")
    methods: Annotated[list[MethodName], AfterValidator(_unique)] = Field(
        default_factory=lambda: ["varshare"], description="Methods pretrained and adapted ([]: no leave-one-out).")
    seeds: Annotated[list[Annotated[int, Ge(0)]], AfterValidator(_unique)] = Field(
        default_factory=lambda: [0], min_length=1, description="Seeds (of pretraining and of adaptation).")
    regimes: Annotated[list[RegimeName], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(REGIMES), min_length=1, description="Adaptation regimes.")


class PipelineConfig(Section):
    """A pipeline preset."""

    preset: str = Field(description="Name of the preset (recorded with the results).")
    suites: Annotated[list[SuiteName], AfterValidator(_unique)] = Field(min_length=1)
    methods: Annotated[list[MethodName], AfterValidator(_unique)] = Field(
        min_length=1, description="The sharing methods compared in Fig. 1 / Fig. 2.")
    variants: Annotated[list[MethodName], AfterValidator(_unique)] = Field(
        default_factory=list, description="VarShare variants screened in Fig. 4 (trained too).")
    top_variants: Annotated[list[MethodName], AfterValidator(_unique)] = Field(
        default_factory=list, description="Variants drawn against the base in Fig. 5 (a subset of variants).")
    strategy_methods: Annotated[list[MethodName], AfterValidator(_unique)] = Field(
        default_factory=lambda: ["varshare"],
        description="Methods whose evaluation strategies (mean / sample-1 / sample-5) Fig. 3 draws.")
    sharing_map_method: MethodName = Field("varshare", description="Method of the sharing-map figure.")
    pruning: PruningPlan = Field(default_factory=PruningPlan)
    seeds: Annotated[list[Annotated[int, Ge(0)]], AfterValidator(_unique)] = Field(min_length=1)
    experiments: dict[SuiteName, SuitePlan] = Field(description="Per suite: experiment config and overrides.")
    train_resources: TrainResources = Field(default_factory=TrainResources)
    bootstrap_seed: int = Field(0, ge=0, description="Seed of the IQM confidence-interval bootstrap.")
    loo: LOOPlan = Field(default_factory=LOOPlan)


def typed_strings(value: Any) -> Any:
    """Give string leaves that spell a number or boolean that type (recursively).

    Snakemake hands the items of nested ``--config`` values over as strings (``seeds=[0,1]``
    arrives as ``["0", "1"]``); the strict schema would reject them. Other strings stay strings.
    """
    if isinstance(value, dict):
        return {key: typed_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed_strings(item) for item in value]
    if isinstance(value, str):
        parsed = parse_yaml(value) if value.strip() else value
        return parsed if isinstance(parsed, (bool, int, float)) else value
    return value


def load_pipeline_config(data: dict[str, Any], root: str | Path = ".") -> tuple[PipelineConfig, dict[str, ExperimentConfig]]:
    """Validate a preset (as Snakemake's ``config`` dict) and each suite's experiment config.

    Returns the preset and, per suite, the resolved experiment config. Raises :class:`ConfigError`
    listing every problem with its dotted key.
    """
    try:
        preset = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([describe_error(e, PipelineConfig) for e in exc.errors()], what="pipeline preset") from None
    problems, experiments = [], {}
    for suite in preset.suites:
        plan = preset.experiments.get(suite)
        if plan is None:
            problems.append(f"experiments.{suite}: missing; every suite in 'suites' needs an experiment entry")
            continue
        path = Path(root) / plan.experiment
        if not path.is_file():
            problems.append(f"experiments.{suite}.experiment: no such file {plan.experiment!r}")
            continue
        overrides = {**plan.set, "suite": suite, "methods": preset.methods, "seeds": preset.seeds}
        try:
            experiments[suite] = load_config(path, overrides)
        except ConfigError as error:
            problems.extend(f"experiments.{suite} ({plan.experiment}): {p}" for p in error.problems)
    problems += _loo_problems(preset, root)
    trained = set(preset.methods) | set(preset.variants)
    for key, names in (("top_variants", preset.top_variants), ("strategy_methods", preset.strategy_methods),
                       ("sharing_map_method", [preset.sharing_map_method]), ("pruning.method", [preset.pruning.method])):
        untrained = [name for name in names if name not in trained]
        if untrained:
            problems.append(f"{key}: {untrained} are not trained by this preset; allowed: methods and "
                            f"variants ({sorted(trained)})")
    if problems:
        raise ConfigError(problems, what="pipeline preset")
    return preset, experiments


def loo_overrides(plan: LOOSuitePlan, stage: str) -> dict[str, Any]:
    """Experiment-config overrides of a leave-one-out ``stage`` (``pretrain`` or ``adapt``) run."""
    if stage == "pretrain":
        return {"total_steps_per_task": plan.pretrain_steps_per_task}
    overrides: dict[str, Any] = {"total_steps_per_task": plan.adapt_steps}
    if plan.eval_every_steps is not None:
        overrides["eval.every_steps"] = plan.eval_every_steps
    return overrides


def _loo_problems(preset: PipelineConfig, root: str | Path) -> list[str]:
    """The ``loo`` section's suites must be the preset's, its held-out tasks tasks of their suite,
    and the resolved pretraining and adaptation configs valid."""
    problems = []
    for suite, plan in loo_suites(preset).items():
        if suite not in preset.suites:
            problems.append(f"loo.suites.{suite}: not one of the preset's suites {preset.suites}")
            continue
        names = [spec.name for spec in build_suite(suite)]
        unknown = [task for task in plan.holdouts if task not in names]
        if unknown:
            problems.append(f"loo.suites.{suite}.holdouts: {unknown} are not tasks of {suite}; allowed: {', '.join(names)}")
            continue
        suite_plan = preset.experiments.get(suite)
        path = Path(root) / suite_plan.experiment if suite_plan else None
        if path is None or not path.is_file():
            continue  # reported with the suite's experiment
        for stage in ("pretrain", "adapt"):
            overrides = {**suite_plan.set, "suite": suite, "methods": preset.loo.methods, "seeds": preset.loo.seeds,
                         "holdout": plan.holdouts[0] if stage == "pretrain" else None, **loo_overrides(plan, stage)}
            try:
                load_config(path, overrides)
            except ConfigError as error:
                problems.extend(f"loo.suites.{suite} ({stage} runs of {suite_plan.experiment}): {p}" for p in error.problems)
    return problems


def loo_suites(preset: PipelineConfig) -> dict[str, LOOSuitePlan]:
    """The suites with leave-one-out runs: ``loo.suites``, or none when ``loo.methods`` is empty."""
    return dict(preset.loo.suites) if preset.loo.methods else {}


def trained_methods(preset: PipelineConfig) -> list[str]:
    """Every method the preset trains: the compared methods, then the variants."""
    return list(dict.fromkeys([*preset.methods, *preset.variants]))
