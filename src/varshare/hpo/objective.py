"""The objective of a hyperparameter study: a task-normalised evaluation score (SCIENCE.md, HPO).

Per task m, with the task's evaluation return R_m (mean over the evaluation's episodes,
deterministic mean-weight policy)::

    score_m = (R_m − R_random,m) / (R_solved − R_random,m)

R_random,m is a uniformly random policy's mean return on task m (measured by
:func:`random_returns`, once per suite), R_solved the family's "solved" return (CartPole 500,
LunarLander 200). Meta-World scores the success rate as it is (R_random = 0, R_solved = 1). A
trial's objective is the mean over tasks of score_m at its final evaluation; every evaluation
after step 0 is reported to the pruner the same way. 0 is a random policy, 1 solves every task.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from varshare.envs import TaskSpec
from varshare.io import atomic_write_text

#: family → the return that counts as solving a task (SCIENCE.md)
SOLVED_RETURN = {"cartpole": 500.0, "lunarlander": 200.0}
#: families scored by their success rate, as it is
SUCCESS_FAMILIES = ("metaworld",)
#: families whose solved return is also the highest possible (CartPole's 500-step episodes)
CEILING_FAMILIES = ("cartpole", "metaworld")


@dataclass(frozen=True)
class ScoreRange:
    """How a suite's evaluations become scores: ``metric`` ``"return"`` (normalised by ``random``
    per task and ``solved``) or ``"success"`` (as it is). ``solved_is_ceiling``: no score can
    exceed the solved one (1 after normalisation), so runs that all reach it cannot be told apart."""

    suite: str
    metric: str
    solved: float
    random: dict[str, float]
    episodes: int
    seed: int
    solved_is_ceiling: bool = False

    def score(self, values: Mapping[str, float]) -> float:
        """The mean over tasks of the normalised score of per-task evaluation ``values`` (returns
        or success rates, by ``metric``); NaN if any task's value is NaN."""
        scores = [(values[task] - low) / (self.solved - low) for task, low in self.random.items()]
        return float(np.mean(scores)) if all(math.isfinite(s) for s in scores) else math.nan

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, path: str | Path) -> ScoreRange:
        return cls(**json.loads(Path(path).read_text()))


def random_returns(specs: Sequence[TaskSpec], episodes: int, seed: int) -> dict[str, float]:
    """Each task's mean return over ``episodes`` episodes of uniformly random actions (one env copy
    per episode, env seed ``seed``, actions from a generator seeded with ``seed``)."""
    from varshare.envs import make_vec_env
    from varshare.eval.evaluate import play_episodes

    env = make_vec_env(list(specs), episodes, seed=seed)
    space = env.single_action_space
    rng = np.random.default_rng(seed)
    shape = (env.num_tasks, env.envs_per_task)
    if env.is_discrete:
        act = lambda obs: rng.integers(space.n, size=shape)  # noqa: E731
    else:
        act = lambda obs: rng.uniform(space.low, space.high, size=(*shape, *space.shape)).astype(np.float32)  # noqa: E731
    try:
        log = play_episodes(env, act, 1)
    finally:
        env.close()
    return {spec.name: float(np.mean(returns)) for spec, returns in zip(specs, log.returns, strict=True)}


def score_range(suite: str, specs: Sequence[TaskSpec], episodes: int, seed: int) -> ScoreRange:
    """The :class:`ScoreRange` of ``suite``: random-policy returns measured for return-scored
    families, the success rate as it is for Meta-World."""
    families = {spec.family for spec in specs}
    if len(families) != 1:
        raise ValueError(f"suite {suite} mixes task families {sorted(families)}; a score range needs one")
    family = families.pop()
    if family in SUCCESS_FAMILIES:
        return ScoreRange(suite, "success", 1.0, {spec.name: 0.0 for spec in specs}, 0, seed, solved_is_ceiling=True)
    if family not in SOLVED_RETURN:
        raise ValueError(f"family {family!r} has no solved return; known: {', '.join(SOLVED_RETURN)}")
    return ScoreRange(suite, "return", SOLVED_RETURN[family], random_returns(specs, episodes, seed), episodes, seed,
                      solved_is_ceiling=family in CEILING_FAMILIES)


def write_score_range(path: str | Path, scores: ScoreRange) -> None:
    atomic_write_text(path, scores.to_json())
