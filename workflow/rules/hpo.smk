# Hyperparameter optimisation (the preset's `hpo` section; varshare.hpo): per (suite, algo, method)
# of hpo.studies, an Optuna study whose journal file lives in the study directory. `hpo.workers`
# worker jobs run its trials side by side (locally or as SLURM jobs: they share the journal, no
# server); a killed worker's trial goes stale and is retried, so rerunning the rule finishes the
# study. The report gives the trials table, best parameters, a tuned experiment config and Optuna's
# plots; the tuned config trains at the full budget with the plan's seeds in
# data/runs/<suite>/tuned/<algo>/<method>/seed<s>, aggregated apart (data/results/<suite>/tuned) for
# Fig. 6's tuned curves.
HPO = hpo_studies(PRESET)  # (suite, algo) -> methods tuned
HPO_STUDIES = [(suite, algo, method) for (suite, algo), methods in HPO.items() for method in methods]
HPO_SUITES = list(dict.fromkeys(suite for suite, _ in HPO))
HPO_WORKERS = list(range(PRESET.hpo.workers))
HPO_DIR = "data/hpo/{suite}/{algo}/{method}"
TUNED_DIR = "data/runs/{suite}/tuned/{algo}/{method}/seed{seed}"
HPO_SOURCES = {algo: code_sources("varshare.hpo.study", "varshare.train", f"varshare.algos.{algo}")
               for algo in KNOWN_ALGOS}
HPO_REPORT_SOURCES = code_sources("varshare.hpo.report")


def study_settings_args(suite, algo):
    """`--study-set` arguments of (suite, algo)'s studies (varshare.hpo.spec.StudySettings)."""
    return " ".join(f"--study-set {shlex.quote(f'{key}={json.dumps(value)}')}"
                    for key, value in hpo_settings(PRESET, suite, algo).to_dict().items())


def hpo_figure(suite, algo, method, kind):
    return f"figures/hpo/{suite}_{algo}_{method}_{kind}.png"


def tuned_runs(wildcards):
    """Every tuned run of the suite: each tuned (algo, method), the plan's seeds."""
    return [f"data/runs/{suite}/tuned/{algo}/{method}/seed{seed}/done.json"
            for suite, algo, method in HPO_STUDIES if suite == wildcards.suite
            for seed in TRAINED_SEEDS[suite, algo]]


if HPO:

    rule hpo_study:
        """Create the study (study.yaml, its journal and the default trial); a rerun with the same spec
        keeps its trials, a changed spec starts a fresh journal."""
        input:
            config="data/configs/{suite}/{algo}.yaml",
            space=PRESET.hpo.space,
            score_range="data/results/{suite}/score_range.json",
            code=code_sources("varshare.hpo.study"),
        output:
            f"{HPO_DIR}/study.yaml",
        params:
            out=HPO_DIR,
            trial=lambda w: shell_overrides(hpo_trial_overrides(PRESET, w.suite, w.algo)),
            space=lambda w: " ".join(
                f"--space-set {shlex.quote(f'{key}={json.dumps(value)}')}"
                for key, value in PRESET.hpo.studies[w.suite][w.algo].space.items()),
            settings=lambda w: study_settings_args(w.suite, w.algo),
            device=HPO_RESOURCES["device"],
        threads: HPO_RESOURCES["threads"]
        log:
            "logs/hpo/{suite}/{algo}/{method}/study.log",
        shell:
            "varshare hpo-study --config {input.config} --method {wildcards.method} --space {input.space}"
            " --score-range {input.score_range} --out {params.out} {params.trial} --set num_threads={threads}"
            " --set device={params.device} {params.space} {params.settings} > {log} 2>&1"

    rule hpo_worker:
        """One worker of a study: trials until the study has n_trials finished (complete or pruned)."""
        input:
            study=f"{HPO_DIR}/study.yaml",
            tasks="data/tasks/{suite}.json",
            code=lambda w: HPO_SOURCES[w.algo],
        output:
            f"{HPO_DIR}/workers/{{worker}}.done",
        log:
            "logs/hpo/{suite}/{algo}/{method}/worker{worker}.log",
        threads: HPO_RESOURCES["threads"]
        resources:
            mem_mb=HPO_RESOURCES["mem_mb"],
            runtime=HPO_RESOURCES["runtime"],
            gpu=HPO_RESOURCES["gpu"],
        params:
            out=HPO_DIR,
            env_mode=HPO_RESOURCES["env_mode"],
        shell:
            "varshare hpo --study {params.out} --tasks {input.tasks} --env-mode {params.env_mode}"
            " --done {output} >> {log} 2>&1"

    rule hpo_report:
        """A finished study: trials table, best parameters (with the default's objective), the tuned
        experiment config and Optuna's optimisation-history and parameter-importance plots."""
        input:
            workers=expand(f"{HPO_DIR}/workers/{{worker}}.done", worker=HPO_WORKERS, allow_missing=True),
            config="data/configs/{suite}/{algo}.yaml",
            code=HPO_REPORT_SOURCES,
        output:
            trials=f"{HPO_DIR}/trials.csv",
            best=f"{HPO_DIR}/best_params.yaml",
            tuned=f"{HPO_DIR}/tuned_config.yaml",
            history=report(hpo_figure("{suite}", "{algo}", "{method}", "history"), caption="../report/hpo.rst",
                           category="Hyperparameter optimisation", subcategory="{suite} {algo}"),
            importance=hpo_figure("{suite}", "{algo}", "{method}", "importance"),
        params:
            out=HPO_DIR,
        log:
            "logs/hpo/{suite}/{algo}/{method}/report.log",
        shell:
            "varshare hpo-report --study {params.out} --config {input.config} --trials {output.trials}"
            " --best {output.best} --tuned-config {output.tuned} --history-png {output.history}"
            " --importance-png {output.importance} > {log} 2>&1"

    rule train_tuned:
        """A training run of a study's best parameters: the full budget, a seed of the plan."""
        input:
            config=f"{HPO_DIR}/tuned_config.yaml",
            tasks="data/tasks/{suite}.json",
            code=lambda w: TRAIN_SOURCES[w.algo],
        output:
            metrics=f"{TUNED_DIR}/metrics.csv",
            checkpoint=f"{TUNED_DIR}/checkpoint.pt",
            done=f"{TUNED_DIR}/done.json",
        log:
            "logs/train_tuned/{suite}/{algo}/{method}/seed{seed}.log",
        threads: TRAIN_RESOURCES["threads"]
        resources:
            mem_mb=TRAIN_RESOURCES["mem_mb"],
            runtime=TRAIN_RESOURCES["runtime"],
            gpu=TRAIN_RESOURCES["gpu"],
        params:
            out=TUNED_DIR,
            device=TRAIN_RESOURCES["device"],
            env_mode=TRAIN_RESOURCES["env_mode"],
        shell:
            "varshare train --config {input.config} --tasks {input.tasks} --suite {wildcards.suite} --algo {wildcards.algo}"
            " --method {wildcards.method} --seed {wildcards.seed} --out {params.out} --replace-stale"
            " --env-mode {params.env_mode} --set num_threads={threads} --set device={params.device} >> {log} 2>&1"

    rule aggregate_tuned:
        """The tuned runs of a suite, aggregated apart from the default-hyperparameter runs."""
        input:
            runs=tuned_runs,
            code=AGGREGATE_SOURCES,
        output:
            curves="data/results/{suite}/tuned/eval_curves.csv",
            iqm="data/results/{suite}/tuned/iqm.csv",
            meta="data/results/{suite}/tuned/aggregate.json",
        params:
            run_dirs=lambda w, input: " ".join(str(Path(p).parent) for p in input.runs),
            bootstrap_seed=PRESET.bootstrap_seed,
        log:
            "logs/aggregate/{suite}_tuned.log",
        shell:
            "varshare aggregate --suite {wildcards.suite} --out data/results/{wildcards.suite}/tuned"
            " --bootstrap-seed {params.bootstrap_seed} {params.run_dirs} > {log} 2>&1"
