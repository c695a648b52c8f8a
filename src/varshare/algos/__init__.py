"""RL algorithms, method-agnostic and task-batched: one module per algorithm (``ppo``), each
exposing its agent class as ``AGENT`` (the :class:`~varshare.algos.agent.Agent` protocol).

Algorithm modules are imported on demand by name, so a job imports only the algorithm it runs.
"""

from __future__ import annotations

import importlib

from varshare.config import ALGOS


def algorithm_module(algo: str):
    """The module ``varshare.algos.<algo>``; a ``ValueError`` lists the algorithms otherwise."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; allowed: {', '.join(ALGOS)}")
    return importlib.import_module(f"varshare.algos.{algo}")


def agent_class(algo: str):
    """The agent class of ``algo`` (its module's ``AGENT``)."""
    return algorithm_module(algo).AGENT
