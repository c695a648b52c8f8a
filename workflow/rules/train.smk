rule experiment_config:
    """The experiment config of one suite and algorithm: the experiment file of the preset's plan
    experiments.<suite>.<algo> with the plan's overrides, resolved and validated."""
    input:
        lambda w: PRESET.experiments[w.suite][w.algo].experiment,
    output:
        "data/configs/{suite}/{algo}.yaml",
    params:
        overrides=lambda w: shell_overrides(experiment_overrides(PRESET, w.suite, w.algo)),
    log:
        "logs/experiment_config/{suite}/{algo}.log",
    shell:
        "varshare check-config {input} {params.overrides} --out {output} > {log} 2>&1"


rule train:
    """One algorithm, method and seed on every task of a suite. Resumes from the run's resume.pt
    after a kill (a rerun of the same job continues where it stopped)."""
    input:
        config="data/configs/{suite}/{algo}.yaml",
        tasks="data/tasks/{suite}.json",
        code=lambda w: TRAIN_SOURCES[w.algo],
    output:
        metrics="data/runs/{suite}/{algo}/{method}/seed{seed}/metrics.csv",
        checkpoint="data/runs/{suite}/{algo}/{method}/seed{seed}/checkpoint.pt",
        done="data/runs/{suite}/{algo}/{method}/seed{seed}/done.json",
    log:
        "logs/train/{suite}/{algo}/{method}/seed{seed}.log",
    threads: TRAIN_RESOURCES["threads"]
    resources:
        mem_mb=TRAIN_RESOURCES["mem_mb"],
        runtime=TRAIN_RESOURCES["runtime"],
        gpu=TRAIN_RESOURCES["gpu"],
    params:
        out=lambda w: run_dir(w.suite, w.algo, w.method, w.seed),
        device=TRAIN_RESOURCES["device"],
        env_mode=TRAIN_RESOURCES["env_mode"],
    shell:
        "varshare train --config {input.config} --tasks {input.tasks} --suite {wildcards.suite} --algo {wildcards.algo}"
        " --method {wildcards.method} --seed {wildcards.seed} --out {params.out} --replace-stale"
        " --env-mode {params.env_mode} --set num_threads={threads} --set device={params.device} >> {log} 2>&1"
