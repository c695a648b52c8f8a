"""The locked environment: ``requirements.lock`` (every dependency pinned, with hashes), whether the
running environment matches it, and regenerating it.

The lock is ``uv pip compile`` of ``pyproject.toml`` (with the ``dev`` extra; universal: markers
per platform and Python) under the torch pin of the Makefile (``TORCH_SPEC``), **without torch and
the CUDA libraries only torch needs** (``nvidia-*``, ``cuda-*``, ``triton``): torch is installed
apart, as the CPU or the CUDA build the machine wants, at the pinned version, and on a GPU machine
its CUDA libraries come at the exact versions torch's own metadata pins. torch's other
requirements (sympy, networkx, jinja2, ...) are in the lock.

The lock's header records a digest of what it was compiled from (:func:`input_digest`: the
project's dependencies, extras, ``requires-python`` and the torch pin), so a lock that no longer
matches ``pyproject.toml`` is *stale* (:func:`lock_is_current`; CI fails on it).

Every run's manifest records :func:`environment_record`: the lock's sha256 and whether the
installed distributions are exactly its pins (``varshare aggregate`` warns when the runs it combines
come from different environments).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

#: the repository root of a source checkout (``src/varshare/environment.py`` → ``.``)
REPOSITORY = Path(__file__).resolve().parents[2]
LOCK_NAME = "requirements.lock"
#: the torch build the Makefile installs (``TORCH_SPEC``); the lock is compiled under this pin
TORCH_PIN = "torch==2.13.0"
#: installed apart from the lock: torch (CPU or CUDA build) and, on CUDA builds, what torch pins itself
APART = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")
#: never part of an environment's identity (the installer and this package itself)
IGNORED = {"pip", "setuptools", "wheel", "varshare"}
DIGEST_PREFIX = "# inputs sha256: "


def lock_path() -> Path:
    """The lock file: ``$VARSHARE_LOCK`` if set, else ``requirements.lock`` of the source checkout."""
    return Path(os.environ.get("VARSHARE_LOCK", REPOSITORY / LOCK_NAME))


def input_digest(pyproject: str | Path, torch_pin: str = TORCH_PIN) -> str:
    """sha256 of what a lock is compiled from: ``requires-python``, the dependencies and the extras
    of ``pyproject`` (as parsed, so comments and layout do not count) and the torch pin."""
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    inputs = {"requires-python": project.get("requires-python"), "dependencies": project.get("dependencies", []),
              "optional-dependencies": project.get("optional-dependencies", {}), "torch": torch_pin}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: str | Path) -> str | None:
    """The input digest in a lock's header (None: a lock without one)."""
    for line in Path(lock).read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line[len(DIGEST_PREFIX):].strip()
    return None


def lock_is_current(lock: str | Path, pyproject: str | Path) -> bool:
    """Whether ``lock`` was compiled from the dependencies ``pyproject`` declares now."""
    return recorded_digest(lock) == input_digest(pyproject)


def read_pins(lock: str | Path) -> dict[str, str]:
    """The pins of ``lock`` that apply to this interpreter and platform (markers evaluated):
    canonical distribution name → version."""
    pins = {}
    for line in Path(lock).read_text().splitlines():
        if not line or line[0] in " #-":
            continue
        requirement = Requirement(line.rstrip(" \\"))
        if requirement.marker is None or requirement.marker.evaluate():
            (specifier,) = requirement.specifier  # every line of a lock is name==version
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def installed() -> dict[str, str]:
    """Every distribution of the running environment: canonical name → version."""
    return {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}


def differences(pins: dict[str, str], present: dict[str, str], torch_pin: str = TORCH_PIN) -> list[str]:
    """How an environment ``present`` differs from a lock's ``pins`` (torch's CUDA libraries, pip,
    setuptools, wheel and varshare aside): ``"<name>: <installed> (locked <version>)"``,
    ``"<name>: missing (locked ...)"``, ``"<name>: <installed> (not in the lock)"``, sorted; torch
    must be ``torch_pin``'s version, any build (``2.13.0+cpu``, ``2.13.0+cu128``)."""
    torch_version = torch_pin.split("==")[1]
    found = []
    if "torch" not in present:
        found.append(f"torch: missing (pinned {torch_version})")
    elif Version(present["torch"]).public != torch_version:
        found.append(f"torch: {present['torch']} (pinned {torch_version})")
    for name in sorted(set(pins) | set(present)):
        if APART.match(name) or name in IGNORED:
            continue
        if name not in present:
            found.append(f"{name}: missing (locked {pins[name]})")
        elif name not in pins:
            found.append(f"{name}: {present[name]} (not in the lock)")
        elif present[name] != pins[name]:
            found.append(f"{name}: {present[name]} (locked {pins[name]})")
    return found


@dataclass(frozen=True)
class EnvironmentRecord:
    """What a run's manifest says of its environment (``manifest["environment"]``)."""

    lock_sha256: str | None
    matches_lock: bool | None
    differences: list[str]

    def to_dict(self) -> dict:
        return {"lock_sha256": self.lock_sha256, "matches_lock": self.matches_lock,
                "differences": self.differences[:20], "num_differences": len(self.differences)}


def environment_record(lock: str | Path | None = None) -> EnvironmentRecord:
    """The lock's sha256 and whether the running environment is exactly its pins; without a lock
    file (an install from a wheel, not a checkout) both are None."""
    lock = Path(lock) if lock is not None else lock_path()
    if not lock.is_file():
        return EnvironmentRecord(None, None, [f"no lock file at {lock}"])
    found = differences(read_pins(lock), installed())
    return EnvironmentRecord(hashlib.sha256(lock.read_bytes()).hexdigest(), not found, found)


def compile_lock(pyproject: str | Path, out: str | Path, torch_pin: str = TORCH_PIN, uv: str = "uv") -> int:
    """Regenerate the lock with ``uv pip compile`` (needs ``uv`` and the package index); returns the
    number of pins written. The packages of :data:`APART` that only torch requires are left out."""
    pyproject = Path(pyproject)
    pin = Path(out).with_suffix(".torch-pin")
    pin.write_text(torch_pin + "\n")
    try:
        compiled = subprocess.run(
            [uv, "pip", "compile", str(pyproject), "--extra", "dev", "--generate-hashes", "--universal",
             "--python-version", _lowest_python(pyproject), "--constraint", str(pin), "--no-header",
             "--no-emit-package", torch_pin.split("==")[0], "--quiet"],
            check=True, capture_output=True, text=True).stdout
    finally:
        pin.unlink()
    blocks = _without_torch_only(re.split(r"\n(?=[a-z0-9])", compiled.strip()))
    header = ["# The locked environment of varshare (varshare.environment): every dependency, pinned, with hashes.",
              f"# Regenerate: make lock   (uv pip compile {pyproject.name} --extra dev --generate-hashes --universal,",
              f"# under {torch_pin}; torch and the CUDA libraries only it needs are installed apart).",
              f"{DIGEST_PREFIX}{input_digest(pyproject, torch_pin)}"]
    Path(out).write_text("\n".join(header + blocks) + "\n")
    return len(blocks)


def _lowest_python(pyproject: Path) -> str:
    spec = tomllib.loads(pyproject.read_text())["project"]["requires-python"]
    return re.search(r">=\s*([\d.]+)", spec).group(1)


def _without_torch_only(blocks: list[str]) -> list[str]:
    """Drop the blocks of :data:`APART` packages whose every ``# via`` parent is torch or dropped."""
    def name(block):
        return canonicalize_name(re.match(r"[A-Za-z0-9._-]+", block).group(0))

    def parents(block):
        found = set()
        for line in block.splitlines()[1:]:
            text = line.strip()
            if text.startswith("# via "):
                found.add(text[len("# via "):])
            elif text.startswith("#   "):
                found.add(text[len("#   "):])
        return {canonicalize_name(parent.split()[0]) for parent in found}

    dropped = {"torch"}
    changed = True
    while changed:
        changed = False
        for block in blocks:
            if name(block) not in dropped and APART.match(name(block)) and parents(block) <= dropped:
                dropped.add(name(block))
                changed = True
    return [block for block in blocks if name(block) not in dropped]


def mixed_environment_warnings(environments: dict[str, dict | None]) -> list[str]:
    """Warnings about runs combined in one table: ``environments`` maps each run to its manifest's
    ``environment`` record (None: a run written before manifests carried one).

    Returns:
        One line when the runs come from more than one lock (or from none), one when some run's
        environment did not match its lock; empty when every run has the same lock and matched it.
    """
    by_lock: dict[str, list[str]] = {}
    unmatched = []
    for run, record in environments.items():
        sha = (record or {}).get("lock_sha256")
        sha = sha[:12] if sha else "no lock recorded"
        by_lock.setdefault(sha, []).append(run)
        if not record or record.get("matches_lock") is not True:
            unmatched.append(run)
    warnings = []
    if len(by_lock) > 1:
        parts = ", ".join(f"{sha} ({len(runs)} runs, e.g. {runs[0]})" for sha, runs in by_lock.items())
        warnings.append(f"warning: these runs come from {len(by_lock)} different environments (lock sha256 {parts}); "
                        "their numbers can differ for that reason alone")
    if unmatched:
        first = environments[unmatched[0]] or {}
        detail = "; ".join(first.get("differences", [])[:3]) or "no environment recorded"
        warnings.append(f"warning: {len(unmatched)} runs ran in an environment that did not match its lock, e.g. "
                        f"{unmatched[0]}: {detail}")
    return warnings
