"""A study's results: its trials table, best parameters, the tuned config and Optuna's plots."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from varshare.config import ExperimentConfig, dump_config, load_config  # noqa: E402
from varshare.hpo.space import overrides_of, parse_space  # noqa: E402
from varshare.hpo.spec import StudySpec  # noqa: E402
from varshare.hpo.study import load_study  # noqa: E402
from varshare.io import atomic_output, atomic_write_text  # noqa: E402

TRIAL_COLUMNS = ["number", "state", "value", "default", "last_step", "reports", "seconds", "worker", "reason"]


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, objective (pruned: its last reported score), whether it is
    the default trial, the last reported step (env steps per task), the number of reports, wall
    seconds, worker, why it failed or was pruned for divergence, and ``param:<key>`` columns."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        rows.append({
            "number": trial.number, "state": trial.state.name, "value": trial.value,
            "default": bool(attrs.get("default", False)), "last_step": attrs.get("last_step", 0),
            "reports": len(trial.intermediate_values), "seconds": attrs.get("seconds"),
            "worker": attrs.get("worker", ""), "reason": attrs.get("reason", ""),
            **{f"param:{key}": value for key, value in trial.params.items()},
        })
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS if not rows else None)


def best_summary(study: optuna.Study, spec: StudySpec) -> dict:
    """Best trial, its parameters and objective, the default trial's objective, and trial counts."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not complete:
        raise ValueError(f"study {spec.name} has no complete trial; its best parameters are undefined")
    best = max(complete, key=lambda t: (t.value, -t.number))
    defaults = [t for t in complete if t.user_attrs.get("default")]
    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    return {
        "study": spec.name, "objective": f"mean normalised {spec.score_range['metric']} at the final evaluation "
                                         "(varshare.hpo.objective)",
        "best_trial": best.number, "best_value": float(best.value),
        "best_params": dict(best.params),
        "default_value": float(defaults[0].value) if defaults else None,
        "trials": counts, "n_trials": spec.settings.n_trials,
        "trial_budget_steps_per_task": spec.config["total_steps_per_task"],
    }


def tuned_config(base: ExperimentConfig, spec: StudySpec, best_params: dict) -> ExperimentConfig:
    """``base`` (the full-budget experiment config) with the best parameters, training the study's method."""
    overrides = overrides_of(parse_space(spec.space), best_params)
    return load_config(base.to_dict(), {**overrides, "methods": [spec.method]})


def plot_study(study: optuna.Study, title: str, history_png: str | Path, importance_png: str | Path) -> None:
    """Optuna's optimisation history and parameter importances (PED-ANOVA), as PNGs; with too few
    complete trials for importances, that figure says so."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for path, draw in ((history_png, lambda: optuna.visualization.matplotlib.plot_optimization_history(study)),
                       (importance_png, lambda: optuna.visualization.matplotlib.plot_param_importances(
                           study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()))):
        try:
            ax = draw()
            figure = ax.figure
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            figure, ax = plt.subplots(figsize=(6.4, 4.0))
            ax.axis("off")
            ax.text(0.5, 0.5, f"not enough finished trials to draw this:\n{error}", ha="center", va="center", wrap=True)
        figure.suptitle(title)
        figure.set_size_inches(7.0, 4.5)
        figure.tight_layout()
        with atomic_output(Path(path)) as tmp:
            figure.savefig(tmp, format="png", dpi=120)
        plt.close(figure)


def write_report(study_dir: str | Path, base_config: str | Path, trials_csv: str | Path, best_yaml: str | Path,
                 tuned_yaml: str | Path, history_png: str | Path, importance_png: str | Path) -> dict:
    """Every output of a finished study; returns the best summary."""
    spec = StudySpec.read(Path(study_dir) / "study.yaml")
    study, _ = load_study(study_dir, spec)
    table = trials_table(study)
    with atomic_output(Path(trials_csv)) as tmp:
        table.to_csv(tmp, index=False)
    summary = best_summary(study, spec)
    atomic_write_text(best_yaml, yaml.safe_dump(summary, sort_keys=False))
    dump_config(tuned_config(load_config(base_config), spec, summary["best_params"]), tuned_yaml)
    plot_study(study, f"HPO {spec.name}", history_png, importance_png)
    return summary
