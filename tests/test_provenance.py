"""The static import closure (varshare.provenance) that the workflow lists as each job's code inputs:
what it follows, what it does not, and that adding an algorithm module leaves PPO jobs up to date."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import copy_checkout

from varshare.provenance import import_closure

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
# the roots of a PPO training job in workflow/rules/common.smk
PPO_ROOTS = ["varshare.cli", "varshare.train", "varshare.algos.ppo"]


def ppo_closure(src: Path = SRC) -> list[str]:
    return import_closure(PPO_ROOTS, src=src, module_level_only=["varshare.cli"])


def relative(paths: list[str], src: Path = SRC) -> set[str]:
    return {Path(p).relative_to(src / "varshare").as_posix() for p in paths}


def test_ppo_closure_has_the_training_code_and_no_analysis_code():
    files = relative(ppo_closure())
    assert {"__init__.py", "cli.py", "train.py", "config.py", "algos/__init__.py", "algos/ppo.py",
            "nn/__init__.py", "nn/layers.py", "methods/base.py"} <= files
    assert any(f.startswith("envs/") for f in files)
    assert not any(f.startswith("analysis/") for f in files), sorted(files)
    assert "provenance.py" not in files and "pipeline_config.py" not in files
    # sorted, existing files under src
    closure = ppo_closure()
    assert closure == sorted(closure) and all(Path(p).is_file() for p in closure)


def test_analysis_closure_has_no_training_code():
    files = relative(import_closure(["varshare.cli", "varshare.analysis.figures", "varshare.analysis.results"],
                                    src=SRC, module_level_only=["varshare.cli"]))
    assert {"analysis/figures.py", "analysis/results.py", "analysis/__init__.py", "cli.py"} <= files
    assert not any(f.startswith(("algos/", "nn/", "methods/")) for f in files), sorted(files)
    assert "train.py" not in files


def test_the_cli_s_imports_inside_functions_are_followed_unless_module_level_only():
    everything = relative(import_closure(["varshare.cli"], src=SRC))
    assert {"train.py", "loo.py", "analysis/figures.py", "eval/pruning.py"} <= everything
    shallow = relative(import_closure(["varshare.cli"], src=SRC, module_level_only=["varshare.cli"]))
    assert "cli.py" in shallow and "config.py" in shallow
    assert not shallow & {"train.py", "loo.py", "analysis/figures.py", "eval/pruning.py"}


def test_a_new_algorithm_module_is_not_in_the_ppo_closure(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SRC / "varshare", src / "varshare", ignore=shutil.ignore_patterns("__pycache__"))
    before = relative(ppo_closure(src), src)
    (src / "varshare/algos/xyz.py").write_text(
        '"""A new algorithm."""\nfrom varshare.nn import networks\nfrom varshare.algos import ppo  # noqa\n')
    assert relative(ppo_closure(src), src) == before
    assert "algos/xyz.py" not in before
    with_xyz = relative(import_closure(["varshare.algos.xyz"], src=src), src)
    assert {"algos/xyz.py", "algos/ppo.py", "nn/networks.py", "algos/__init__.py"} <= with_xyz


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_what_counts_as_an_import(tmp_path):
    src = write_package(tmp_path, {
        "varshare/__init__.py": "",
        "varshare/a.py": ("import os\nimport varshare.sub.deep\nfrom . import b\nfrom .sub import attr\n"
                          "def later():\n    from varshare.lazy import thing\n"
                          "class K:\n    import varshare.in_class\n"
                          "try:\n    from varshare import in_try\nexcept ImportError:\n    pass\n"
                          "import importlib\nimportlib.import_module('varshare.dynamic')\n"),
        "varshare/b.py": "from .sub.rel import x as y\n",
        "varshare/sub/__init__.py": "attr = 1\n",
        "varshare/sub/deep.py": "",
        "varshare/sub/rel.py": "from .. import c\nfrom ..sub import deep\n",
        "varshare/c.py": "from varshare import *\n",
        "varshare/lazy.py": "",
        "varshare/in_class.py": "",
        "varshare/in_try.py": "",
        "varshare/dynamic.py": "",
        "varshare/unused.py": "",
        "varshare/top/__init__.py": "from varshare.top.inner import z\n",
        "varshare/top/inner.py": "",
    })
    found = relative(import_closure(["varshare.a"], src=src), src)
    assert found == {"__init__.py", "a.py", "b.py", "c.py", "sub/__init__.py", "sub/deep.py", "sub/rel.py",
                     "lazy.py", "in_class.py", "in_try.py"}  # no dynamic.py, unused.py, top/
    shallow = relative(import_closure(["varshare.a"], src=src, module_level_only=["varshare.a"]), src)
    assert shallow == found - {"lazy.py"}  # class bodies and try blocks run at import time
    # a subpackage's __init__ runs (and what it imports) when one of its modules is imported
    assert relative(import_closure(["varshare.top.inner"], src=src), src) == {
        "__init__.py", "top/__init__.py", "top/inner.py"}


def test_an_unknown_root_is_an_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match="no module 'varshare.algos.sak'"):
        import_closure(["varshare.algos.sak"], src=SRC)


def test_the_scan_imports_nothing():
    code = ("import sys; from varshare.provenance import import_closure; "
            f"files = import_closure({PPO_ROOTS!r}, src={str(SRC)!r}); "
            "assert 'torch' not in sys.modules and 'varshare.train' not in sys.modules, sorted(sys.modules); "
            "print(len(files))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 20


# A real DAG: make every output of the (reduced smoke) study exist and up to date without training
# (empty files, then `snakemake --touch`), then change sources and ask the dry run what it would redo.
SMALL = ["figures/all", "--configfile", "configs/smoke.yaml", "--config", "suites=[cartpole10]",
         "methods=[hard_sharing,varshare]", "variants=[varshare]", "top_variants=[varshare]"]


def snakemake(workdir: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args, *SMALL], cwd=workdir,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def planned(output: str) -> set[str]:
    if "Nothing to be done" in output:
        return set()
    table = output[output.index("Job stats:"):]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", table, re.MULTILINE)} - {"total"}


def edit(path: Path) -> None:
    """Change the file's contents and give it a modification time later than every output's
    (Snakemake ignores a newer input whose checksum it recorded unchanged)."""
    path.write_text(path.read_text() + "\n# edited\n")
    later = time.time() + 5
    os.utime(path, (later, later))


@pytest.mark.slow
def test_dry_run_reruns_only_the_jobs_whose_code_changed(tmp_path):
    work = copy_checkout(tmp_path / "work")
    summary = snakemake(work, "--summary")
    for line in summary.splitlines()[1:]:
        name = line.split("\t")[0]
        if "\t" in line and not name.startswith("src/"):
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).touch()
    snakemake(work, "--touch")
    assert planned(snakemake(work, "-n")) == set()

    (work / "src/varshare/algos/xyz.py").write_text('"""Another algorithm."""\nfrom varshare.nn import layers\n')
    assert planned(snakemake(work, "-n")) == set()  # a new algorithm module: PPO runs stay up to date

    edit(work / "src/varshare/analysis/figures.py")
    figures = planned(snakemake(work, "-n"))
    assert figures and all(job.startswith(("figure_", "loo_figure")) or job in ("all", "study_manifest") for job in figures), figures

    edit(work / "src/varshare/algos/ppo.py")
    assert {"train", "loo_pretrain", "loo_adapt", "prune", "aggregate"} <= planned(snakemake(work, "-n"))
