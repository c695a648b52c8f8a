"""Task specs: the suites' contents, validation errors, JSON round trip and the `envs` command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from varshare.envs import TaskSpec, TaskSpecError, build_suite, read_specs, specs_hash
from varshare.envs.specs import MT10_TASKS


def test_suite_sizes_and_families():
    assert [len(build_suite(s)) for s in ("cartpole10", "lunarlander20", "mt10")] == [10, 20, 10]
    assert {s.family for s in build_suite("cartpole10")} == {"cartpole"}
    assert {s.family for s in build_suite("lunarlander20")} == {"lunarlander"}


def test_cartpole10_includes_gymnasium_default_and_spans_the_described_extremes():
    specs = {s.name: s.parameters for s in build_suite("cartpole10")}
    assert specs["default"] == {"length": 0.5, "masscart": 1.0, "masspole": 0.1, "gravity": 9.8}
    params = list(specs.values())
    # heavy carts with short poles ... light carts with long poles in low gravity
    assert any(p["masscart"] >= 2.5 and p["length"] <= 0.3 for p in params)
    assert any(p["masscart"] <= 0.5 and p["length"] >= 1.0 and p["gravity"] <= 4.0 for p in params)


def test_lunarlander20_spans_calm_moon_to_stormy_jupiter():
    params = [s.parameters for s in build_suite("lunarlander20")]
    assert all(-12 < p["gravity"] < 0 for p in params)
    assert min(p["wind_power"] for p in params) == 0 and max(p["wind_power"] for p in params) == 20
    assert max(p["turbulence_power"] for p in params) == 2
    calm_moon = [p for p in params if p["gravity"] > -2 and p["wind_power"] == 0]
    stormy_jupiter = [p for p in params if p["gravity"] < -11 and p["wind_power"] == 20]
    assert calm_moon and stormy_jupiter


@pytest.mark.slow
def test_mt10_is_the_benchmark_in_its_order():
    import metaworld

    specs = build_suite("mt10")
    assert tuple(s.name for s in specs) == MT10_TASKS
    assert list(metaworld.MT10().train_classes) == list(MT10_TASKS)
    assert [s.parameters["task_index"] for s in specs] == list(range(10))
    assert {s.parameters["max_episode_steps"] for s in specs} == {500}
    assert set(specs[0].versions) == {"gymnasium", "metaworld", "mujoco"}


def valid_cartpole(**overrides) -> dict:
    params = {"length": 0.5, "masscart": 1.0, "masspole": 0.1, "gravity": 9.8} | overrides
    return {"name": "t", "family": "cartpole", "parameters": params}


@pytest.mark.parametrize(
    "data, expected",
    [
        (valid_cartpole(masscart=-1.0), r"'masscart' = -1\.0 is out of range; allowed: \(0, 10\]"),
        (valid_cartpole(length=0.0), r"'length' = 0\.0 is out of range; allowed: \(0, 3\]"),
        (valid_cartpole(gravity="9.8"), r"'gravity' = '9\.8' must be a finite number"),
        (valid_cartpole(gravity=float("nan")), r"'gravity' = nan must be a finite number"),
        (valid_cartpole(friction=1.0), r"unknown parameter\(s\) \['friction'\]; allowed: \['gravity'"),
        ({"name": "t", "family": "cartpole", "parameters": {"length": 0.5}}, r"missing parameter\(s\) \['gravity', 'masscart', 'masspole'\]"),
        ({"name": "t", "family": "acrobot", "parameters": {}}, r"'family' = 'acrobot' is unknown; allowed: \['cartpole', 'lunarlander', 'metaworld'\]"),
        ({"name": "t", "family": "lunarlander", "parameters": {"gravity": 0.0, "wind_power": 1.0, "turbulence_power": 0.0}}, r"'gravity' = 0\.0 is out of range; allowed: \(-12, 0\)"),
        ({"name": "t", "family": "lunarlander", "parameters": {"gravity": -10.0, "wind_power": 25.0, "turbulence_power": 0.0}}, r"'wind_power' = 25\.0 is out of range; allowed: \[0, 20\]"),
        ({"name": "t", "family": "lunarlander", "parameters": {"gravity": -10.0, "wind_power": 5.0, "turbulence_power": 2.5}}, r"'turbulence_power' = 2\.5 is out of range; allowed: \[0, 2\]"),
        ({"name": "t", "family": "metaworld", "parameters": {"env_name": "fly-v3", "task_index": 0, "num_tasks": 10, "goal_seed": 0, "max_episode_steps": 500, "reward_function_version": "v2"}}, r"'env_name' = 'fly-v3' is out of range; allowed: one of 'reach-v3'"),
        ({"name": "t", "family": "metaworld", "parameters": {"env_name": "reach-v3", "task_index": 10, "num_tasks": 10, "goal_seed": 0, "max_episode_steps": 500, "reward_function_version": "v2"}}, r"'task_index' = 10 is out of range; allowed: \[0, 9\]"),
        ({"name": "t", "family": "metaworld", "parameters": {"env_name": "reach-v3", "task_index": 0, "num_tasks": 10, "goal_seed": 0, "max_episode_steps": 500.0, "reward_function_version": "v2"}}, r"'max_episode_steps' = 500\.0 must be an integer"),
        ({"name": "t", "family": "cartpole", "parameters": {}, "colour": "red"}, r"unknown key\(s\) \['colour'\]"),
        ({"name": "", "family": "cartpole", "parameters": {}}, r"'name' must be a non-empty string"),
    ],
)
def test_bad_specs_name_the_key_value_and_allowed_range(data, expected):
    with pytest.raises(TaskSpecError, match=expected):
        TaskSpec.from_dict(data)


def test_read_specs_rejects_duplicate_names_and_mixed_families(tmp_path):
    path = tmp_path / "specs.json"
    path.write_text(json.dumps([valid_cartpole(), valid_cartpole()]))
    with pytest.raises(TaskSpecError, match=r"repeated: \['t'\]"):
        read_specs(path)
    lunar = {"name": "l", "family": "lunarlander", "parameters": {"gravity": -10.0, "wind_power": 0.0, "turbulence_power": 0.0}}
    path.write_text(json.dumps([valid_cartpole(), lunar]))
    with pytest.raises(TaskSpecError, match="one family"):
        read_specs(path)


@pytest.mark.parametrize("suite, count", [("cartpole10", 10), ("lunarlander20", 20), ("mt10", 10)])
def test_envs_command_writes_validated_specs_that_round_trip(tmp_path, suite, count):
    out = tmp_path / "nested" / f"{suite}.json"
    result = subprocess.run(
        [sys.executable, "-m", "varshare.cli", "envs", "--suite", suite, "--out", str(out)],
        capture_output=True, text=True, check=True,
    )
    assert f"wrote {count} {suite} task specs" in result.stdout
    specs = read_specs(out)
    assert len(specs) == count
    assert specs_hash(specs) == specs_hash(build_suite(suite))
    assert all(s.versions["gymnasium"] for s in specs)
    assert not list(out.parent.glob(".*.tmp"))  # atomic write leaves no temporary behind


def test_envs_command_rejects_unknown_suite_listing_the_choices(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "varshare.cli", "envs", "--suite", "cartpole20", "--out", str(tmp_path / "x.json")],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "cartpole10" in result.stderr and "lunarlander20" in result.stderr and "mt10" in result.stderr
