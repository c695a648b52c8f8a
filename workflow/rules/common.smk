# Load-time validation of the preset (and of every (suite, algo)'s resolved experiment config): a
# bad value stops here with one message naming its key, before any job starts.
import json
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError

from varshare.analysis.style import algo_label
from varshare.config import ALGOS as KNOWN_ALGOS
from varshare.config import REGIMES, ConfigError
from varshare.envs.suites import SUITES as KNOWN_SUITES
from varshare.pipeline_config import (experiment_overrides, hpo_settings, hpo_studies, hpo_trial_overrides,
                                      job_resources, load_pipeline_config, loo_overrides, loo_suites, plan_seeds,
                                      training_plan, typed_strings)
from varshare.provenance import import_closure

try:
    PRESET, EXPERIMENTS = load_pipeline_config(typed_strings(config))
except ConfigError as error:
    raise WorkflowError(str(error))

SUITES = PRESET.suites
ALGOS = PRESET.algos  # each trains on some suite (validated)
# (suite, algo) -> the methods it trains (compared methods for Fig. 1/2, VarShare variants for Fig. 4),
# for the pairs that train: algo in `algos` and a plan experiments.<suite>.<algo>.
TRAINED = training_plan(PRESET)
# (suite, algo) -> the seeds it trains: the plan's, else the preset's (MT10 may run more)
TRAINED_SEEDS = {(suite, algo): plan_seeds(PRESET, suite, algo) for suite, algo in TRAINED}

# Figure names of the seed update: Fig. 1 CartPole-10, Fig. 2 LunarLander-20 (MT10's method
# comparison is Fig. 7, success rates: figures.smk).
FIGURE_PREFIX = {"cartpole10": "fig1", "lunarlander20": "fig2"}
SUITE_TITLE = {"cartpole10": "CartPole-10", "lunarlander20": "LunarLander-20", "mt10": "Meta-World MT10"}


# Snakemake does not notice edits to imported modules: each rule lists, as its `code` input, the
# package's source files its command really runs -- the static import closure of the modules named
# (varshare.provenance). `varshare.cli` counts with its module-level imports only (each command
# imports its own code inside its function); the algorithm module is named explicitly because
# varshare.train loads it by name. So adding algos/sac.py leaves every PPO job up to date.
def code_sources(*modules):
    return import_closure(["varshare.cli", *modules], src="src", module_level_only=["varshare.cli"])


def package_sources(*parts):
    return sorted(str(p) for part in parts for p in Path("src/varshare").glob(part))


TRAIN_SOURCES = {algo: code_sources("varshare.train", f"varshare.algos.{algo}") for algo in KNOWN_ALGOS}
LOO_ADAPT_SOURCES = {algo: code_sources("varshare.train", "varshare.loo", f"varshare.algos.{algo}")
                     for algo in KNOWN_ALGOS}
PRUNE_SOURCES = {algo: code_sources("varshare.eval.pruning", f"varshare.algos.{algo}") for algo in KNOWN_ALGOS}
# analysis commands: aggregate; figure, plot and loo-figure; plot mt10; loo-aggregate
AGGREGATE_SOURCES = code_sources("varshare.analysis.aggregate", "varshare.analysis.results")
# counting parameters rebuilds each method's model: the algorithms' modules count
PARAMETER_SOURCES = code_sources("varshare.analysis.parameters", *(f"varshare.algos.{algo}" for algo in KNOWN_ALGOS))
FIGURE_SOURCES = code_sources("varshare.analysis.figures", "varshare.analysis.results")
MT10_FIGURE_SOURCES = code_sources("varshare.analysis.mt10", "varshare.analysis.results")
LOO_AGGREGATE_SOURCES = code_sources("varshare.analysis.aggregate", "varshare.analysis.loo")


def run_dir(suite, algo, method, seed):
    return f"data/runs/{suite}/{algo}/{method}/seed{seed}"


def shell_overrides(values):
    """`--set key=value` arguments; values as JSON (valid YAML on one line), shell-quoted."""
    return " ".join(f"--set {shlex.quote(f'{key}={json.dumps(value)}')}" for key, value in values.items())


# Resources per rule family (the preset's `resources`: defaults, then the suite's and the
# suite/algo's overrides). runtime grows with the attempt, so a job resubmitted after a timeout
# (the SLURM profile's retries) gets k times the wall time on attempt k. A job with a GPU trains on
# device `auto`, one without on `cpu`. A job with more than one thread steps simulator-backed envs
# (LunarLander, MT10) in worker processes, one per allocated CPU (`--env-mode async`).
def family_resources(family):
    def get(wildcards):
        return job_resources(PRESET, family, wildcards.suite, wildcards.algo)

    return dict(
        threads=lambda wildcards: get(wildcards).threads,
        mem_mb=lambda wildcards: get(wildcards).mem_mb,
        runtime=lambda wildcards, attempt: get(wildcards).runtime * attempt,
        gpu=lambda wildcards: get(wildcards).gpu,
        device=lambda wildcards: "auto" if get(wildcards).gpu else "cpu",
        env_mode=lambda wildcards: "async" if get(wildcards).threads > 1 else "sync",
    )


TRAIN_RESOURCES = family_resources("train")
LOO_RESOURCES = family_resources("loo")
PRUNE_RESOURCES = family_resources("prune")
HPO_RESOURCES = family_resources("hpo")


wildcard_constraints:
    suite="|".join(KNOWN_SUITES),
    algo="|".join(KNOWN_ALGOS),
    method="[a-z0-9_]+",
    seed=r"\d+",
    holdout=r"[A-Za-z0-9_.-]+",
    regime="|".join(REGIMES),
    worker=r"\d+",
