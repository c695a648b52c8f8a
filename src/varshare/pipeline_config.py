"""The pipeline preset: which suites, algorithms, methods and seeds the Snakemake DAG builds, and
with what.

A preset (``configs/smoke.yaml``, ``default.yaml``, ``paper.yaml``, ``mt10.yaml``) names, per suite
and algorithm, a plan (:class:`AlgoPlan`: an experiment config, the overrides this preset applies to
it, and optionally the methods and seeds that algorithm trains there), and per rule family
(``train``, ``loo``, ``prune``, ``hpo``) the resources a job asks for, with overrides per suite or
``suite/algo``; ``hpo`` names the hyperparameter studies (:class:`HPOPlan`, :func:`hpo_studies`).
A (suite, algo) trains iff ``algo`` is in ``algos`` and the suite has a plan for it
(:func:`training_plan`), with the plan's seeds (:func:`plan_seeds`: the preset's unless the plan
sets its own). The Snakefile validates the whole preset — including every resolved (suite, algo)
experiment config — when it loads, so a bad value fails with one message naming its key before any
job starts. Snakemake's ``--config key=value`` overrides are validated the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge
from pydantic import AfterValidator, Field, ValidationError

from varshare.config import (
    ALGOS,
    REGIMES,
    AlgoName,
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
from varshare.envs.suites import SUITES as KNOWN_SUITES
from varshare.envs.suites import build_suite
from varshare.hpo.spec import PrunerSettings, StudySettings


Seeds = Annotated[list[Annotated[int, Ge(0)]], AfterValidator(_unique)]


class AlgoPlan(Section):
    """How one algorithm trains on one suite in this preset (``experiments.<suite>.<algo>``)."""

    experiment: str = Field(description="Experiment config YAML (path relative to the repository root).")
    set: dict[str, Any] = Field(default_factory=dict, description="Overrides (dotted keys allowed).")
    # Omitted: [] (a default is not validated); given, it must be non-empty.
    methods: Annotated[list[MethodName], AfterValidator(_unique)] = Field(
        default_factory=list, min_length=1,
        description="Methods this algorithm trains on this suite, among the preset's methods and variants "
                    "(others are left out, so a --config methods=... override narrows every plan); "
                    "omitted: every method the preset trains.")
    # Omitted: [] (not validated, like methods); given, it must be non-empty.
    seeds: Seeds = Field(
        default_factory=list, min_length=1,
        description="Seeds of this algorithm on this suite (e.g. 10 for MT10 where the other suites run 5); "
                    "omitted: the preset's seeds.")


class Resources(Section):
    """Resources of one job (Snakemake resources; the SLURM profile maps them to sbatch options)."""

    threads: int = Field(1, ge=1, description="CPU threads (training: torch intra-op threads = this).")
    mem_mb: int = Field(2000, ge=100, description="Memory [MB].")
    runtime: int = Field(60, ge=1, description="Wall-time limit of the first attempt [minutes]; attempt k "
                                               "(a retry after a failure or timeout) asks for k × runtime.")
    gpu: int = Field(0, ge=0, description="GPUs (0: a CPU job; training then runs on device cpu, else auto).")


class ResourceOverride(Section):
    """Some of a rule family's resources, replacing its defaults for one suite or suite/algo."""

    threads: int | None = Field(None, ge=1, description="CPU threads (null: the family's default).")
    mem_mb: int | None = Field(None, ge=100, description="Memory [MB] (null: the family's default).")
    runtime: int | None = Field(None, ge=1, description="Wall time of the first attempt [minutes] (null: the default).")
    gpu: int | None = Field(None, ge=0, description="GPUs (null: the family's default).")


class RuleResources(Resources):
    """A rule family's default resources and their overrides; keys of ``overrides``: a suite
    (``lunarlander20``) or a suite and algorithm (``mt10/ppo``). A job takes the defaults, then the
    suite's override, then the ``suite/algo`` override (each replaces only the keys it sets)."""

    overrides: dict[str, ResourceOverride] = Field(
        default_factory=dict, description="Per suite or suite/algo: resources replacing the defaults.")


class ResourcePlan(Section):
    """Resources per rule family. Analysis and figure rules declare none (the executor's defaults:
    one core; on SLURM the profile's default-resources)."""

    train: RuleResources = Field(default_factory=RuleResources, description="`train` jobs.")
    loo: RuleResources = Field(default_factory=RuleResources, description="`loo_pretrain` and `loo_adapt` jobs.")
    prune: RuleResources = Field(default_factory=RuleResources, description="`prune` jobs (re-evaluations).")
    hpo: RuleResources = Field(default_factory=RuleResources, description="`hpo_worker` jobs (each trains trials).")


class PruningPlan(Section):
    """Post-training pruning sweep (``varshare prune``) of one method's runs."""

    method: MethodName = Field("varshare", description="Method whose runs are pruned.")
    eps: Annotated[list[Annotated[float, Ge(0)]], AfterValidator(_unique)] = Field(
        default_factory=lambda: [0.0, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1], min_length=1,
        description="Thresholds ε: residual means with |μ| < ε are zeroed.")
    episodes: int = Field(5, ge=1, description="Evaluation episodes per task and ε.")


#: what a leave-one-out study scores (``loo.suites.<suite>.metric``; varshare.analysis.loo.METRICS)
LOOMetric = Literal["return", "success"]


class LOOSuitePlan(Section):
    """Leave-one-out on one suite: which tasks are held out, the budgets, the score and its threshold,
    and optionally its own algorithms, methods and seeds (omitted: the ``loo`` section's)."""

    holdouts: Annotated[list[str], AfterValidator(_unique)] = Field(
        min_length=1, description="Tasks held out, one pretraining per task (names of the suite's tasks).")
    pretrain_steps_per_task: int = Field(ge=1, description="Pretraining budget on each of the M − 1 tasks [env steps].")
    adapt_steps: int = Field(ge=1, description="Budget on the held-out task, the same for every regime [env steps].")
    metric: LOOMetric = Field(
        "return", description="The held-out task's score: return (eval_return) or success (eval_success, the "
                              "success rate in [0, 1]; Meta-World MT10).")
    threshold: float = Field(description="Score the held-out task must reach (steps-to-threshold); with metric "
                                         "success a rate in [0, 1].")
    eval_every_steps: int | None = Field(
        None, ge=1, description="Evaluation interval of the adaptation runs [env steps] (the resolution of "
                                "steps-to-threshold); null: the suite's experiment config's eval.every_steps.")
    # Omitted: [] (not validated); given, each must be non-empty.
    algos: Annotated[list[AlgoName], AfterValidator(_unique)] = Field(
        default_factory=list, min_length=1, description="Algorithms pretrained and adapted on this suite; "
                                                        "omitted: loo.algos.")
    methods: Annotated[list[MethodName], AfterValidator(_unique)] = Field(
        default_factory=list, min_length=1, description="Methods pretrained and adapted on this suite; "
                                                        "omitted: loo.methods.")
    seeds: Seeds = Field(default_factory=list, min_length=1, description="Seeds on this suite; omitted: loo.seeds.")


class LOOPlan(Section):
    """Leave-one-out generalisation (``varshare train --holdout`` → ``varshare adapt``) on the suites
    of ``suites`` that the preset trains (a plan of a suite left out of the preset's ``suites`` is
    ignored, like its ``experiments``); no suites or no methods: none (``--config "loo={methods: []}"``
    turns it off, whatever the suites' own methods; Snakemake merges nested ``--config`` mappings,
    so ``suites`` cannot be emptied that way). ``algos``, ``methods`` and ``seeds`` are the defaults
    of every suite's plan."""

    algos: Annotated[list[AlgoName], AfterValidator(_unique)] = Field(
        default_factory=lambda: ["ppo"], min_length=1,
        description="Base RL algorithms pretrained and adapted, each with the suite's plan of it (experiments).")
    suites: dict[SuiteName, LOOSuitePlan] = Field(
        default_factory=dict, description="Per suite (one of the preset's suites): held-out tasks, budgets, threshold.")
    methods: Annotated[list[MethodName], AfterValidator(_unique)] = Field(
        default_factory=lambda: ["varshare"], description="Methods pretrained and adapted ([]: no leave-one-out).")
    seeds: Seeds = Field(default_factory=lambda: [0], min_length=1,
                         description="Seeds (of pretraining and of adaptation).")
    regimes: Annotated[list[RegimeName], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(REGIMES), min_length=1, description="Adaptation regimes.")


class HPOStudyPlan(Section):
    """The studies of one suite and algorithm (``hpo.studies.<suite>.<algo>``): one per method, each
    training short trials of the suite's plan of ``algo`` (its experiment config with its ``set``)
    with this ``set`` on top (the trial budget)."""

    methods: Annotated[list[MethodName], AfterValidator(_unique)] = Field(
        min_length=1, description="Methods tuned, one study each.")
    set: dict[str, Any] = Field(default_factory=dict,
                                description="Trial overrides (dotted keys): budget, evaluation interval and episodes.")
    space: dict[str, Any] = Field(
        default_factory=dict, description="Search-space entries replacing the space file's for these studies "
                                          "(dotted key → dimension; null removes the key).")
    pruner: PrunerSettings | None = Field(
        None, description="The pruner of these studies (null: hpo.pruner), e.g. with warmup_steps past an SAC "
                          "warm-up, whose evaluations say nothing about the hyperparameters.")


class HPOPlan(StudySettings):
    """Hyperparameter optimisation (``varshare hpo``): Optuna studies per (suite, algo, method) on the
    preset's suites and algorithms, and training runs of their best parameters at the full budget
    with the plan's seeds (Fig. 6's tuned curves). No ``studies``: none."""

    space: str = Field("configs/hpo_space.yaml", description="The search-space file (varshare.hpo.space).")
    studies: dict[SuiteName, dict[AlgoName, HPOStudyPlan]] = Field(
        default_factory=dict, description="Per suite and algorithm: the methods tuned and the trial budget.")
    workers: int = Field(1, ge=1, description="Worker jobs per study, running trials side by side on one storage.")
    random_episodes: int = Field(
        20, ge=1, description="Episodes per task of the random policy whose return normalises the score.")


class PipelineConfig(Section):
    """A pipeline preset."""

    preset: str = Field(description="Name of the preset (recorded with the results).")
    suites: Annotated[list[SuiteName], AfterValidator(_unique)] = Field(min_length=1)
    algos: Annotated[list[AlgoName], AfterValidator(_unique)] = Field(
        default_factory=lambda: ["ppo"], min_length=1,
        description="Base RL algorithms trained: each on the suites whose experiments have a plan for it "
                    "(runs <suite>/<algo>/...).")
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
    seeds: Seeds = Field(min_length=1, description="Seeds of every plan that sets none of its own.")
    experiments: dict[SuiteName, dict[AlgoName, AlgoPlan]] = Field(
        description="Per suite and algorithm: experiment config, overrides and methods (a plan).")
    resources: ResourcePlan = Field(default_factory=ResourcePlan)
    bootstrap_seed: int = Field(0, ge=0, description="Seed of the IQM confidence-interval bootstrap.")
    loo: LOOPlan = Field(default_factory=LOOPlan)
    hpo: HPOPlan = Field(default_factory=HPOPlan)


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


def load_pipeline_config(
    data: dict[str, Any], root: str | Path = "."
) -> tuple[PipelineConfig, dict[tuple[str, str], ExperimentConfig]]:
    """Validate a preset (as Snakemake's ``config`` dict) and each (suite, algo)'s experiment config.

    Returns the preset and, per ``(suite, algo)`` that trains or runs leave-one-out
    (:func:`config_pairs`), the resolved experiment config. Raises :class:`ConfigError` listing every
    problem with its dotted key.
    """
    try:
        preset = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe_errors(exc.errors()), what="pipeline preset") from None
    problems, experiments = _plan_problems(preset), {}
    for suite, algo in config_pairs(preset):
        plan = preset.experiments[suite][algo]
        path = Path(root) / plan.experiment
        if not path.is_file():
            problems.append(f"experiments.{suite}.{algo}.experiment: no such file {plan.experiment!r}")
            continue
        try:
            experiments[suite, algo] = load_config(path, experiment_overrides(preset, suite, algo))
        except ConfigError as error:
            problems.extend(f"experiments.{suite}.{algo} ({plan.experiment}): {p}" for p in error.problems)
    problems += _loo_problems(preset, root)
    problems += _hpo_problems(preset, experiments, root)
    problems += _resource_problems(preset)
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


def _describe_errors(errors: list[dict[str, Any]]) -> list[str]:
    """One line per schema error (:func:`describe_error`); a bad mapping key is named with the
    allowed keys (and its value's errors are left out: they follow from the key)."""
    bad_keys = [e["loc"][:-1] for e in errors if e["loc"][-1:] == ("[key]",)]
    lines = []
    for error in errors:
        loc = error["loc"]
        if loc[-1:] == ("[key]",):
            line = f"{'.'.join(map(str, loc[:-1]))}: unknown key {error['input']!r}; allowed: {error['ctx']['expected']}"
            if loc[0] == "experiments" and len(loc) == 4:
                line += " (experiments.<suite> maps each algorithm to its plan {experiment, set, methods})"
            lines.append(line)
        elif not any(loc[:len(key)] == key for key in bad_keys):
            lines.append(describe_error(error, PipelineConfig))
    return lines


def plan_methods(preset: PipelineConfig, suite: str, algo: str) -> list[str]:
    """The methods (suite, algo) trains, in :func:`trained_methods` order: those the suite's plan
    for ``algo`` lists (all when it lists none); none when ``suite`` is not in ``suites``,
    ``algo`` not in ``algos``, or the suite has no plan for it."""
    plan = preset.experiments.get(suite, {}).get(algo)
    if plan is None or suite not in preset.suites or algo not in preset.algos:
        return []
    return [m for m in trained_methods(preset) if not plan.methods or m in plan.methods]


def plan_seeds(preset: PipelineConfig, suite: str, algo: str) -> list[int]:
    """The seeds (suite, algo) trains: its plan's ``seeds``, else the preset's."""
    plan = preset.experiments.get(suite, {}).get(algo)
    return list(plan.seeds) if plan is not None and plan.seeds else list(preset.seeds)


def training_plan(preset: PipelineConfig) -> dict[tuple[str, str], list[str]]:
    """``(suite, algo)`` → methods, for every pair that trains a method (suites, then algos, in the
    preset's order)."""
    pairs = {(suite, algo): plan_methods(preset, suite, algo) for suite in preset.suites for algo in preset.algos}
    return {pair: methods for pair, methods in pairs.items() if methods}


def config_pairs(preset: PipelineConfig) -> list[tuple[str, str]]:
    """The (suite, algo) pairs with a resolved experiment config (``data/configs/<suite>/<algo>.yaml``):
    those that train, then those only leave-one-out runs (its suites' algorithms) that have a plan."""
    loo = [(suite, algo) for suite, plan in loo_suites(preset).items() for algo in plan.algos
           if algo in preset.experiments.get(suite, {})]
    return list(dict.fromkeys([*training_plan(preset), *loo]))


def _plan_problems(preset: PipelineConfig) -> list[str]:
    """Every suite of ``suites`` and every algorithm of ``algos`` must train some method."""
    trained = training_plan(preset)
    methods = trained_methods(preset)
    problems = []
    for suite in preset.suites:
        if any(s == suite for s, _ in trained):
            continue
        plans = [algo for algo in preset.experiments.get(suite, {}) if algo in preset.algos]
        why = (f"the plans of {plans} list none of the preset's methods and variants {methods}" if plans else
               f"no plan for an algorithm of algos {preset.algos} (plans: {list(preset.experiments.get(suite, {}))})")
        problems.append(f"experiments.{suite}: trains nothing: {why}; every suite in 'suites' needs one")
    trainable = [algo for algo in ALGOS if any(
        not plan.methods or set(plan.methods) & set(methods)
        for suite in preset.suites for name, plan in preset.experiments.get(suite, {}).items() if name == algo)]
    for algo in preset.algos:
        if any(a == algo for _, a in trained):
            continue
        suites = [suite for suite in preset.suites if algo in preset.experiments.get(suite, {})]
        why = (f"its plans (experiments.<suite>.{algo} of {suites}) list none of the preset's methods and "
               f"variants {methods}" if suites else
               f"no suite of {preset.suites} has a plan for it (experiments.<suite>.{algo})")
        problems.append(f"algos: {algo!r} trains nothing: {why}; allowed: {', '.join(trainable) or 'none'} "
                        f"(algorithms with a plan that trains a method)")
    return problems


def experiment_overrides(preset: PipelineConfig, suite: str, algo: str) -> dict[str, Any]:
    """Overrides that turn the plan's experiment file into the experiment config of (suite, algo)
    (``data/configs/<suite>/<algo>.yaml``): the plan's ``set``, then suite, algo, methods (those the
    pair trains; for a pair only leave-one-out uses, the suite's leave-one-out methods) and seeds
    (:func:`plan_seeds`)."""
    methods = plan_methods(preset, suite, algo) or list(loo_suites(preset)[suite].methods)
    return {**preset.experiments[suite][algo].set, "suite": suite, "algo": algo, "methods": methods,
            "seeds": plan_seeds(preset, suite, algo)}


#: rule families of ``resources`` (the fields of :class:`ResourcePlan`)
RESOURCE_FAMILIES: tuple[str, ...] = tuple(ResourcePlan.model_fields)


def job_resources(preset: PipelineConfig, family: str, suite: str, algo: str) -> Resources:
    """Resources of a job of ``family`` on (suite, algo): the family's defaults, then the override
    of ``suite``, then that of ``suite/algo`` (each replacing only the keys it sets)."""
    plan: RuleResources = getattr(preset.resources, family)
    values = plan.model_dump(exclude={"overrides"})
    for key in (suite, f"{suite}/{algo}"):
        if key in plan.overrides:
            values.update(plan.overrides[key].model_dump(exclude_none=True))
    return Resources(**values)


def _resource_problems(preset: PipelineConfig) -> list[str]:
    """Override keys must name a known suite, or a known suite and algorithm (``suite/algo``)."""
    problems = []
    for family in RESOURCE_FAMILIES:
        for key in getattr(preset.resources, family).overrides:
            suite, slash, algo = key.partition("/")
            if suite in KNOWN_SUITES and (not slash or algo in ALGOS):
                continue
            what = f"unknown algorithm {algo!r}" if suite in KNOWN_SUITES else f"unknown suite {suite!r}"
            problems.append(f"resources.{family}.overrides.{key}: {what}; a key is a suite or suite/algo with "
                            f"suites: {', '.join(KNOWN_SUITES)}; algos: {', '.join(ALGOS)}")
    return problems


def loo_overrides(plan: LOOSuitePlan, stage: str) -> dict[str, Any]:
    """Experiment-config overrides of a leave-one-out ``stage`` (``pretrain`` or ``adapt``) run."""
    if stage == "pretrain":
        return {"total_steps_per_task": plan.pretrain_steps_per_task}
    overrides: dict[str, Any] = {"total_steps_per_task": plan.adapt_steps}
    if plan.eval_every_steps is not None:
        overrides["eval.every_steps"] = plan.eval_every_steps
    return overrides


def _loo_problems(preset: PipelineConfig, root: str | Path) -> list[str]:
    """The held-out tasks of each leave-one-out suite must be tasks of it, a success threshold a rate,
    each of the suite's algorithms must have a plan on it, and the resolved pretraining and
    adaptation configs must be valid."""
    problems = []
    for suite, plan in loo_suites(preset).items():
        names = [spec.name for spec in build_suite(suite)]
        unknown = [task for task in plan.holdouts if task not in names]
        if unknown:
            problems.append(f"loo.suites.{suite}.holdouts: {unknown} are not tasks of {suite}; allowed: {', '.join(names)}")
            continue
        if plan.metric == "success" and not 0 <= plan.threshold <= 1:
            problems.append(f"loo.suites.{suite}.threshold: got {plan.threshold:g}; with metric 'success' it must be a "
                            "success rate in [0, 1]")
        for algo in plan.algos:
            algo_plan = preset.experiments.get(suite, {}).get(algo)
            if algo_plan is None:
                key = f"loo.suites.{suite}.algos" if preset.loo.suites[suite].algos else "loo.algos"
                problems.append(f"{key}: {algo!r} has no plan on {suite} (experiments.{suite}.{algo}); "
                                f"allowed: {', '.join(preset.experiments.get(suite, {})) or 'none'}")
                continue
            path = Path(root) / algo_plan.experiment
            if not path.is_file():
                continue  # reported with the plan's experiment
            for stage in ("pretrain", "adapt"):
                overrides = {**algo_plan.set, "suite": suite, "algo": algo, "methods": plan.methods,
                             "seeds": plan.seeds, "holdout": plan.holdouts[0] if stage == "pretrain" else None,
                             **loo_overrides(plan, stage)}
                try:
                    load_config(path, overrides)
                except ConfigError as error:
                    problems.extend(f"loo.suites.{suite} ({algo} {stage} runs of {algo_plan.experiment}): {p}"
                                    for p in error.problems)
    return problems


def loo_suites(preset: PipelineConfig) -> dict[str, LOOSuitePlan]:
    """The suites with leave-one-out runs — those of ``loo.suites`` among the preset's ``suites``
    (none when ``loo.methods`` is empty) — each plan with its ``algos``, ``methods`` and ``seeds``
    resolved (the ``loo`` section's where it sets none)."""
    if not preset.loo.methods:
        return {}
    defaults = {key: getattr(preset.loo, key) for key in ("algos", "methods", "seeds")}
    return {suite: plan.model_copy(update={key: value for key, value in defaults.items() if not getattr(plan, key)})
            for suite, plan in preset.loo.suites.items() if suite in preset.suites}


def trained_methods(preset: PipelineConfig) -> list[str]:
    """Every method the preset trains: the compared methods, then the variants."""
    return list(dict.fromkeys([*preset.methods, *preset.variants]))


def hpo_studies(preset: PipelineConfig) -> dict[tuple[str, str], list[str]]:
    """``(suite, algo)`` → the methods tuned there: the ``hpo.studies`` of the preset's suites and
    algorithms (others are left out, as a ``--config suites=...`` or ``algos=...`` narrowing asks)."""
    return {(suite, algo): list(plan.methods) for suite, plans in preset.hpo.studies.items()
            for algo, plan in plans.items() if suite in preset.suites and algo in preset.algos}


def hpo_settings(preset: PipelineConfig, suite: str, algo: str) -> StudySettings:
    """The study settings of (suite, algo)'s studies: the ``hpo`` section's, with the plan's pruner."""
    settings = StudySettings(**preset.hpo.model_dump(include=set(StudySettings.model_fields)))
    pruner = preset.hpo.studies[suite][algo].pruner
    return settings.model_copy(update={"pruner": pruner}) if pruner is not None else settings


def hpo_trial_overrides(preset: PipelineConfig, suite: str, algo: str) -> dict[str, Any]:
    """Overrides that turn the (suite, algo) experiment config into a study's trial config (the
    trial budget); the study sets the method and the trial seed."""
    return dict(preset.hpo.studies[suite][algo].set)


def _hpo_problems(preset: PipelineConfig, experiments: dict[tuple[str, str], ExperimentConfig],
                  root: str | Path) -> list[str]:
    """Each study's (suite, algo) must train in this preset; the search-space file must be valid and
    every study's space a valid space of its trial config (:func:`varshare.hpo.space.check_space`)."""
    from varshare.hpo.space import check_space, load_space_file, study_space

    studies = hpo_studies(preset)
    if not studies:
        return []
    problems = []
    try:
        space_file = load_space_file(str(Path(root) / preset.hpo.space))
    except ConfigError as error:
        return [f"hpo.space ({preset.hpo.space}): {p}" for p in error.problems]
    trained = training_plan(preset)
    for (suite, algo), methods in studies.items():
        where = f"hpo.studies.{suite}.{algo}"
        if (suite, algo) not in trained:
            problems.append(f"{where}: {suite} does not train {algo} in this preset (its tuned runs are compared with "
                            f"the default ones); allowed: {', '.join(f'{s}.{a}' for s, a in trained) or 'none'}")
            continue
        if (suite, algo) not in experiments:
            continue  # its experiment config's problems are reported on their own
        plan = preset.hpo.studies[suite][algo]
        for method in methods:
            try:
                trial_config = load_config(experiments[suite, algo].to_dict(),
                                           {**plan.set, "methods": [method], "seeds": [preset.hpo.trial_seed]})
            except ConfigError as error:
                problems.extend(f"{where}.set: {p}" for p in error.problems)
                break
            space, lines = study_space(space_file, algo, method, plan.space, where=f"{where} ({method}): hpo.space")
            problems += lines
            if space or not lines:
                problems += check_space(space, trial_config, f"{where} ({method}): space")
    return problems
