"""Which of the package's source files a piece of code runs: the static import closure of modules.

The workflow lists these files as a job's inputs, so a job reruns when code it really uses
changes, and only then: a PPO training job depends on ``algos/ppo.py`` and what it imports, not on
``algos/sac.py`` or ``analysis/``. Snakemake evaluates this when the Snakefile loads, so it reads
source text only (``ast``); it imports nothing (no torch).

What counts as an import of module ``m``:

* every ``import varshare.x.y`` and ``from varshare.x import y`` statement in ``m`` — at module level
  and inside functions, classes, ``if``/``try`` blocks alike (the package imports heavy modules
  lazily inside functions; those run too) — and relative imports (``from .x import y``);
* ``from varshare.x import y`` imports ``varshare.x`` and, when ``y`` is a submodule, ``varshare.x.y``;
* importing ``varshare.x.y`` runs the ``__init__.py`` of ``varshare`` and ``varshare.x`` too.

Not followed: imports of other packages, and dynamic imports (``importlib.import_module``), e.g.
``varshare.train`` loading ``varshare.algos.<algo>`` by name — name such a module as a root. For an
entry point that dispatches to many commands inside its functions (``varshare.cli``), pass it in
``module_level_only`` so that only its module-level imports count, not every command's code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

PACKAGE = "varshare"
#: the directory holding the package's sources (``src/``), from this file's location
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def import_closure(modules: Iterable[str], *, src: str | Path = SOURCE_ROOT,
                   module_level_only: Iterable[str] = (), package: str = PACKAGE) -> list[str]:
    """The sorted source files (paths under ``src``, as strings) of the ``package`` modules that
    ``modules`` import, transitively, themselves and the ``__init__.py`` of their packages included.

    ``modules``: dotted names (``varshare.train``); each must exist under ``src``.
    ``module_level_only``: modules whose imports inside functions are not followed (module-level
    statements, class bodies and ``if``/``try`` blocks still are).
    """
    src = Path(src)
    shallow = frozenset(module_level_only)
    seen: dict[str, Path] = {}
    pending = []
    for name in modules:
        if _module_file(src, name) is None:
            raise ValueError(f"no module {name!r} under {src} (expected {src / Path(*name.split('.'))}.py "
                             "or a package of that name)")
        pending.append(name)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = _module_file(src, name)
        if path is None:
            continue
        seen[name] = path
        pending.extend(_with_parents(name))
        pending.extend(_imports(src, path, name, name in shallow, package))
    return sorted(str(path) for path in seen.values())


def _module_file(src: Path, name: str) -> Path | None:
    """``src/a/b.py`` or ``src/a/b/__init__.py`` for module ``a.b``; ``None`` if neither exists."""
    base = src.joinpath(*name.split("."))
    for path in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` → ``[a, a.b]``: the packages whose ``__init__`` importing ``a.b.c`` runs."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imports(src: Path, path: Path, name: str, module_level_only: bool, package: str) -> list[str]:
    """Names of the ``package`` modules (or possible modules) that the file of module ``name``
    imports."""
    is_package = path.name == "__init__.py"
    found = []
    for node in _import_nodes(path, module_level_only):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = _absolute(node.module, node.level, name, is_package)
            if base is None:
                continue
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]
        found += [t for t in targets if t == package or t.startswith(package + ".")]
    return [t for t in found if _module_file(src, t) is not None]


@lru_cache(maxsize=None)
def _parse(path: Path, mtime_ns: int) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _import_nodes(path: Path, module_level_only: bool) -> list[ast.Import | ast.ImportFrom]:
    tree = _parse(path, path.stat().st_mtime_ns)
    nodes, stack = [], list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            nodes.append(node)
        elif module_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        else:
            stack.extend(ast.iter_child_nodes(node))
    return nodes


def _absolute(module: str | None, level: int, importer: str, importer_is_package: bool) -> str | None:
    """The absolute module of ``from <level dots><module> import ...`` in module ``importer``."""
    if level == 0:
        return module
    parts = importer.split(".") if importer_is_package else importer.split(".")[:-1]
    if level - 1 > len(parts) - 1:
        return None  # beyond the top-level package
    parts = parts[:len(parts) - (level - 1)]
    return ".".join([*parts, module] if module else parts)
