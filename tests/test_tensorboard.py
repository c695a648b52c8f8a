"""Every run's scalars as TensorBoard event files, read back with TensorBoard's own event reader."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from varshare.config import load_config
from varshare.envs import build_suite
from varshare.run_io import METRIC_COLUMNS, MetricsTable
from varshare.train import train

REPO = Path(__file__).resolve().parents[1]
TASKS = build_suite("cartpole10")[:2]
CONFIG = {"methods": ["varshare"], "seeds": [0], "total_steps_per_task": 1024, "ppo.num_steps": 64,
          "network.hidden_sizes": [16, 16], "eval.every_steps": 256, "eval.episodes": 1,
          "eval.sample_strategies": [], "checkpoint.every_steps": 512}


def events(run: Path) -> dict[tuple[str, int], list[float]]:
    accumulator = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()
    points: dict[tuple[str, int], list[float]] = {}
    for tag in accumulator.Tags()["scalars"]:
        for event in accumulator.Scalars(tag):
            points.setdefault((tag, event.step), []).append(event.value)
    return points


def metrics(run: Path) -> dict[tuple[str, int], float]:
    rows = [dict(zip(METRIC_COLUMNS, r)) for r in MetricsTable.load_rows(run / "metrics.csv")]
    return {(f"{r['task']}/{r['metric']}", r["step"]): r["value"] for r in rows}


def assert_mirrors_metrics(run: Path) -> None:
    points, table = events(run), metrics(run)
    assert {key: len(values) for key, values in points.items() if len(values) > 1} == {}  # no duplicate points
    assert {key for key in points if not key[0].startswith("all/sps")} == set(table)
    for key, value in table.items():
        assert points[key][0] == pytest.approx(value, rel=1e-6, abs=1e-6), key  # float32 in the event file
    assert Counter(tag for tag, _ in points)["all/sps"] == 4  # a wall-clock rate per iteration


def test_a_run_s_event_files_hold_the_values_of_its_metrics_table(tmp_path):
    config = load_config(REPO / "configs/cartpole10_ppo.yaml", CONFIG)
    train(config, TASKS, "varshare", 0, tmp_path / "run")
    assert_mirrors_metrics(tmp_path / "run")
    assert ("all/eval_return_mean", 1024) in events(tmp_path / "run")


def test_an_interrupted_and_resumed_run_shows_each_point_once(tmp_path):
    config = load_config(REPO / "configs/cartpole10_ppo.yaml", CONFIG)

    def stop_after_the_checkpoint(step, evaluation, final):
        if step == 768:  # the checkpoint at 512 is written, then the run dies
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, TASKS, "varshare", 0, tmp_path / "run", on_evaluation=stop_after_the_checkpoint)
    assert (tmp_path / "run" / "resume.pt").exists() and ("all/eval_return_mean", 768) in events(tmp_path / "run")
    train(config, TASKS, "varshare", 0, tmp_path / "run")  # resumes at 512: the events from 512 on are written again
    assert_mirrors_metrics(tmp_path / "run")
