"""Bayesian hyperparameter optimisation (Optuna): a study per (suite, algo, method).

* :mod:`varshare.hpo.space` — search spaces as validated config (dotted keys → distributions);
* :mod:`varshare.hpo.objective` — the task-normalised score a trial maximises;
* :mod:`varshare.hpo.spec` — what defines a study (``study.yaml``; its hash names the journal);
* :mod:`varshare.hpo.study` — journal storage, default trial, workers, heartbeats, stale trials;
* :mod:`varshare.hpo.report` — trials table, best parameters, tuned config, Optuna's plots.
"""
