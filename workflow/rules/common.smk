# Load-time validation of the preset (and of every suite's resolved experiment config): a bad
# value stops here with one message naming its key, before any job starts.
import json
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError

from varshare.config import REGIMES, ConfigError
from varshare.envs.suites import SUITES as KNOWN_SUITES
from varshare.pipeline_config import load_pipeline_config, loo_overrides, loo_suites, trained_methods, typed_strings

try:
    PRESET, EXPERIMENTS = load_pipeline_config(typed_strings(config))
except ConfigError as error:
    raise WorkflowError(str(error))

SUITES = PRESET.suites
METHODS = trained_methods(PRESET)  # compared methods (Fig. 1/2) and VarShare variants (Fig. 4)
SEEDS = PRESET.seeds
ALGOS = ["ppo"]

# Figure names of the seed update: Fig. 1 CartPole-10, Fig. 2 LunarLander-20.
FIGURE_PREFIX = {"cartpole10": "fig1", "lunarlander20": "fig2", "mt10": "fig_mt10"}
SUITE_TITLE = {"cartpole10": "CartPole-10", "lunarlander20": "LunarLander-20", "mt10": "Meta-World MT10"}

# Snakemake does not notice edits to imported modules: each rule lists the sources it depends on.
def package_sources(*parts):
    return sorted(str(p) for part in parts for p in Path("src/varshare").glob(part))

TRAIN_SOURCES = package_sources("algos/*.py", "nn/*.py", "methods/*.py", "envs/*.py", "eval/*.py", "train.py",
                                "config.py", "run_io.py", "io.py")
ANALYSIS_SOURCES = package_sources("analysis/*.py")


def results_dirs():
    return [f"data/results/{suite}" for suite in SUITES]


def suite_titles():
    return " ".join(shlex.quote(SUITE_TITLE[suite]) for suite in SUITES)


def run_dir(suite, algo, method, seed):
    return f"data/runs/{suite}/{algo}/{method}/seed{seed}"


def shell_overrides(values):
    """`--set key=value` arguments; values as JSON (valid YAML on one line), shell-quoted."""
    return " ".join(f"--set {shlex.quote(f'{key}={json.dumps(value)}')}" for key, value in values.items())


wildcard_constraints:
    suite="|".join(KNOWN_SUITES),
    algo="|".join(ALGOS),
    method="[a-z0-9_]+",
    seed=r"\d+",
    holdout=r"[A-Za-z0-9_.-]+",
    regime="|".join(REGIMES),
