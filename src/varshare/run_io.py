"""What a run directory holds besides the model: the tidy metrics table and the provenance manifest.

Metrics are one long-format table, a row per ``(run, algo, method, seed, task, step, metric, value)``;
``task`` is a task name, or ``"all"`` for run-level quantities (losses, SPS). ``step`` counts env
steps *per task*.
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from varshare.environment import environment_record
from varshare.io import atomic_write_text

METRIC_COLUMNS = ("run", "algo", "method", "seed", "task", "step", "metric", "value")


@dataclass
class MetricsTable:
    """Rows accumulated in memory and written atomically as CSV on :meth:`save`."""

    run: str
    algo: str
    method: str
    seed: int
    rows: list[tuple] = field(default_factory=list)

    def add(self, task: str, step: int, metric: str, value: float) -> None:
        self.rows.append((self.run, self.algo, self.method, self.seed, task, int(step), metric, float(value)))

    def add_many(self, task: str, step: int, values: dict[str, float]) -> None:
        for metric, value in values.items():
            self.add(task, step, metric, value)

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(METRIC_COLUMNS)
        writer.writerows(self.rows)
        return buffer.getvalue()

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_csv())

    @classmethod
    def load_rows(cls, path: str | Path) -> list[tuple]:
        """Rows of a saved table, typed as :meth:`add` stores them."""
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            if tuple(header) != METRIC_COLUMNS:
                raise ValueError(f"{path}: expected columns {METRIC_COLUMNS}, got {header}")
            return [(r[0], r[1], r[2], int(r[3]), r[4], int(r[5]), r[6], float(r[7])) for r in reader]


def git_commit(directory: str | Path) -> str:
    """HEAD commit of the repository containing ``directory`` (``"unknown"`` outside git),
    suffixed ``+dirty`` when tracked files have uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def versions_manifest(spec_hash: str, extra: dict | None = None) -> dict:
    """Package versions, git commit, platform, environment (lock) and the task-spec hash of a run."""
    packages = ["varshare", "torch", "numpy", "gymnasium", "box2d", "metaworld", "mujoco"]
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "versions": versions,
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "task_specs_sha256": spec_hash,
        # the lock file's sha256 and whether this environment is exactly its pins (varshare.environment)
        "environment": environment_record().to_dict(),
        **(extra or {}),
    }
