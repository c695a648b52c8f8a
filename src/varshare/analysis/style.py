"""How algorithms and methods are ordered, and methods coloured, the same in every table and figure."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from varshare.config import ALGOS, METHODS

#: Fixed colour of each method (colour-blind-friendly "tab10"-like hues); never depends on which
#: methods a figure happens to show.
METHOD_COLORS: dict[str, str] = {
    "independent": "#7f7f7f",   # grey: the no-sharing reference
    "hard_sharing": "#1f77b4",  # blue
    "contextual": "#2ca02c",    # green
    "l2_soft": "#9467bd",       # purple
    "pcgrad": "#ff7f0e",        # orange
    "cagrad": "#8c564b",        # brown
    "varshare": "#d62728",      # red: the proposed method
    # VarShare variants: tab20's light hues (none in FALLBACK_COLORS)
    "varshare_reptile": "#ff9896",
    "varshare_lora": "#aec7e8",
    "varshare_trust_region": "#ffbb78",
    "varshare_horseshoe": "#98df8a",
    "varshare_shared_noise": "#c5b0d5",
    "varshare_lrt": "#c49c94",
    "varshare_adaptive_prior": "#f7b6d2",
    "varshare_kl_anneal": "#dbdb8d",
    "varshare_mean_rollout": "#9edae5",
}

#: Colours for methods outside :data:`METHOD_COLORS`, picked by a stable hash of the name.
FALLBACK_COLORS: tuple[str, ...] = ("#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939",
                                    "#8c6d31", "#843c39", "#7b4173")


#: Fixed colour of each leave-one-out adaptation regime (:data:`varshare.config.REGIMES`).
REGIME_COLORS: dict[str, str] = {
    "scratch": "#7f7f7f",   # grey: no transfer
    "full": "#1f77b4",      # blue: pretrained θ, everything trains
    "residual": "#d62728",  # red: θ frozen, only the task's own parameters train
}


def method_color(name: str) -> str:
    """Hex colour of ``name``: fixed for the known methods, a stable hash-picked one otherwise."""
    if name in METHOD_COLORS:
        return METHOD_COLORS[name]
    return FALLBACK_COLORS[zlib.crc32(name.encode()) % len(FALLBACK_COLORS)]


def ordered_methods(names: Iterable[str]) -> list[str]:
    """Distinct ``names`` in :data:`varshare.config.METHODS` order, unknown names after, sorted."""
    distinct = set(names)
    return [m for m in METHODS if m in distinct] + sorted(distinct - set(METHODS))


def ordered_algos(names: Iterable[str]) -> list[str]:
    """Distinct ``names`` in :data:`varshare.config.ALGOS` order, unknown names after, sorted."""
    distinct = set(names)
    return [a for a in ALGOS if a in distinct] + sorted(distinct - set(ALGOS))


def algo_label(algo: str) -> str:
    """How figures name an algorithm: ``"PPO"``, ``"SAC"`` (the name in capitals)."""
    return algo.upper()


#: dash pattern of the n-th algorithm of a figure (matplotlib ``(on, off, ...)``; ``""`` solid)
ALGO_DASHES: tuple = ("", (4, 2), (1, 1.5), (6, 2, 1, 2))


def algo_dashes(algos: list[str]) -> dict[str, tuple | str]:
    """``algo`` → dash pattern: the first solid, the next ones from :data:`ALGO_DASHES` in turn."""
    return {algo: ALGO_DASHES[i % len(ALGO_DASHES)] for i, algo in enumerate(algos)}
