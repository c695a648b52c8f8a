"""Running a study: its Optuna storage, the default trial, workers, heartbeats and stale trials.

The storage is an Optuna journal file (``JournalFileBackend``: no server, file locks), so any number
of workers — processes on one machine or SLURM jobs on a shared file system — run the same study
side by side. :func:`create_study` makes the study once and enqueues its first trial, the default
hyperparameters. :func:`run_worker` then loops:

1. fail *stale* trials — RUNNING, with no heartbeat for ``grace_seconds`` (their worker was
   killed) — and enqueue their parameters again (``retry_of``);
2. stop when ``n_trials`` trials are finished (complete or pruned); wait while the finished and
   running trials already make ``n_trials`` (another worker, or a stale trial, will settle it);
3. otherwise ask for a trial (a waiting enqueued one first), with a TPE sampler seeded from the
   study seed and the number of trials so far — one worker gives the same sequence every time,
   across restarts too — and train it, reporting each evaluation's score to the pruner.

A trial counts only if fewer than ``n_trials`` non-failed trials precede it (trial numbers are
assigned by the storage), so workers racing for the last trial never overshoot: the surplus one is
marked FAIL (``surplus``) before it trains. A trial whose loss turns NaN/inf is pruned
(``reason: non-finite loss``), not fatal.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from varshare.algos.agent import NonFiniteLossError
from varshare.config import load_config
from varshare.envs import TaskSpec
from varshare.envs.suites import build_suite
from varshare.hpo.objective import ScoreRange
from varshare.hpo.space import default_params, overrides_of, parse_space, suggest
from varshare.hpo.spec import StudySpec, study_files

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class StudySetupError(ValueError):
    """A worker cannot run the study as asked (e.g. other tasks than its score range's)."""


def storage_of(journal: Path) -> JournalStorage:
    journal.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(journal)))


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    settings = spec.settings.pruner
    if settings.type == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials, n_warmup_steps=settings.warmup_steps)
    if settings.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=settings.min_resource or "auto",
                                                      reduction_factor=settings.reduction_factor)
    return optuna.pruners.NopPruner()


def make_sampler(spec: StudySpec, trials_so_far: int) -> optuna.samplers.TPESampler:
    """Multivariate TPE, seeded from the study seed and ``trials_so_far`` (reproducible per trial)."""
    seed = int(np.random.SeedSequence([spec.settings.seed, trials_so_far]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=spec.settings.startup_trials,
                                      constant_liar=True)


def load_study(study_dir: str | Path, spec: StudySpec) -> tuple[optuna.Study, JournalStorage]:
    journal, _ = study_files(study_dir, spec)
    storage = storage_of(journal)
    study = optuna.load_study(study_name=spec.name, storage=storage, sampler=make_sampler(spec, 0),
                              pruner=make_pruner(spec))
    return study, storage


def create_study(study_dir: str | Path, spec: StudySpec) -> bool:
    """Write ``study.yaml`` and create the study with its default trial enqueued, unless the journal
    already holds this spec's study. Returns whether it was created."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal, _ = study_files(study_dir, spec)
    spec.write(Path(study_dir) / "study.yaml")
    storage = storage_of(journal)
    if spec.name in [s.study_name for s in storage.get_all_studies()]:
        return False
    study = optuna.create_study(study_name=spec.name, storage=storage, direction="maximize")
    study.set_user_attr("spec_digest", spec.digest())
    config = load_config(spec.config)
    study.enqueue_trial(default_params(config, parse_space(spec.space)), user_attrs={"default": True})
    return True


class Heartbeat:
    """Records ``heartbeat`` (Unix time) on a running trial every ``interval`` seconds, from a thread."""

    def __init__(self, storage: JournalStorage, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stopped.is_set():
            try:
                self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
            except RuntimeError:  # the trial finished meanwhile
                return
            self.stopped.wait(self.interval)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()


def fail_stale_trials(study: optuna.Study, storage: JournalStorage, grace: float) -> list[int]:
    """Fail RUNNING trials whose last heartbeat (or start) is older than ``grace`` seconds and
    enqueue their parameters again; returns the failed trial numbers."""
    now, failed = time.time(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last = trial.user_attrs.get("heartbeat", trial.datetime_start.timestamp())
        if now - last < grace:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "reason", f"stale: no heartbeat for {now - last:.0f} s")
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except RuntimeError:  # another worker settled it first
            continue
        attrs = {"retry_of": trial.number, **({"default": True} if trial.user_attrs.get("default") else {})}
        study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)
        failed.append(trial.number)
    return failed


def _counts(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False)
    return (sum(t.state in FINISHED for t in trials), sum(t.state == TrialState.RUNNING for t in trials))


def _surplus(study: optuna.Study, number: int, n_trials: int) -> bool:
    """Whether ``n_trials`` non-failed trials precede trial ``number``."""
    before = [t for t in study.get_trials(deepcopy=False) if t.number < number and t.state != TrialState.FAIL]
    return len(before) >= n_trials


def run_worker(study_dir: str | Path, specs: list[TaskSpec] | None = None, env_mode: str = "sync", log=print,
               poll_seconds: float | None = None) -> int:
    """Run trials of the study in ``study_dir`` until it has ``n_trials`` finished; returns the
    number of trials this worker finished. ``specs``: the suite's tasks (default: built), which
    must be those of the study's score range."""
    from varshare.train import train

    spec = StudySpec.read(Path(study_dir) / "study.yaml")
    specs = specs if specs is not None else build_suite(spec.suite)
    if [s.name for s in specs] != list(spec.score_range["random"]):
        raise StudySetupError(f"the tasks {[s.name for s in specs]} are not those of the study's score range "
                         f"{list(spec.score_range['random'])}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, storage = load_study(study_dir, spec)
    _, trials_dir = study_files(study_dir, spec)
    space, scores = parse_space(spec.space), ScoreRange(**spec.score_range)
    n_trials, worker = spec.settings.n_trials, f"{socket.gethostname()}:{os.getpid()}"
    poll = poll_seconds if poll_seconds is not None else min(spec.settings.heartbeat_seconds, 10.0)
    done_here = 0
    while True:
        for number in fail_stale_trials(study, storage, spec.settings.grace_seconds):
            log(f"[hpo {spec.name}] trial {number} was abandoned by a killed worker: failed, parameters re-queued")
        finished, running = _counts(study)
        if finished >= n_trials:
            log(f"[hpo {spec.name}] study complete: {finished} finished trials; this worker ran {done_here}")
            return done_here
        if finished + running >= n_trials:
            time.sleep(poll)
            continue
        study.sampler = make_sampler(spec, len(study.get_trials(deepcopy=False)))
        trial = study.ask()
        if _surplus(study, trial.number, n_trials):
            trial.set_user_attr("reason", "surplus: n_trials were already running or finished")
            study.tell(trial, state=TrialState.FAIL)
            continue
        trial.set_user_attr("worker", worker)
        with Heartbeat(storage, trial._trial_id, spec.settings.heartbeat_seconds):
            state, value = _run_trial(trial, spec, space, scores, specs, trials_dir, env_mode, train)
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        done_here += 1
        shown = f"{value:.4f}" if value is not None else "-"
        log(f"[hpo {spec.name}] trial {trial.number} {state.name.lower()}: score {shown} "
            f"(last step {trial.user_attrs.get('last_step', 0)}) params {trial.params}")


class _Diverged(Exception):
    """A trial's evaluation score is not finite."""


def _run_trial(trial: optuna.Trial, spec: StudySpec, space, scores: ScoreRange, specs, trials_dir: Path,
               env_mode: str, train) -> tuple[TrialState, float | None]:
    """Train one trial; report each evaluation after step 0 to the pruner. Returns its final state
    and objective (the last evaluation's score)."""
    params = suggest(trial, space)
    config = load_config(spec.config, overrides_of(space, params))
    last = {"score": math.nan}

    def report(step: int, evaluation: dict[str, dict[str, float]], final: bool) -> None:
        if step == 0:
            return
        last["score"] = score = scores.score(evaluation[scores.metric])
        trial.set_user_attr("last_step", step)
        if not math.isfinite(score):
            raise _Diverged(f"evaluation score {score} at step {step}")
        trial.report(score, step)
        if not final and trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} with score {score:.4f}")

    start = time.perf_counter()
    try:
        train(config, specs, spec.method, spec.settings.trial_seed, trials_dir / f"trial{trial.number}",
              env_mode=env_mode, replace_stale=True, on_evaluation=report)
        state = TrialState.COMPLETE
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except (NonFiniteLossError, _Diverged) as error:
        trial.set_user_attr("reason", f"non-finite: {error}")
        state = TrialState.PRUNED
    trial.set_user_attr("seconds", round(time.perf_counter() - start, 2))
    return state, last["score"] if state == TrialState.COMPLETE else None
