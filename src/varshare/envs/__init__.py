"""Task families as data (specs, suites) and the vectorised multi-task environments built from them."""

from varshare.envs.base import MultiTaskVecEnv, VecStep
from varshare.envs.specs import TaskSpec, TaskSpecError, read_specs, specs_hash, specs_to_json
from varshare.envs.suites import SUITES, build_suite
from varshare.envs.factory import make_vec_env

__all__ = [
    "MultiTaskVecEnv",
    "VecStep",
    "TaskSpec",
    "TaskSpecError",
    "read_specs",
    "specs_hash",
    "specs_to_json",
    "SUITES",
    "build_suite",
    "make_vec_env",
]
