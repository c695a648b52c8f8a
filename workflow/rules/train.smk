rule experiment_config:
    """The suite's experiment config with this preset's overrides, resolved and validated."""
    input:
        lambda w: PRESET.experiments[w.suite].experiment,
    output:
        "data/configs/{suite}.yaml",
    params:
        overrides=lambda w: shell_overrides(
            {**PRESET.experiments[w.suite].set, "suite": w.suite, "methods": METHODS, "seeds": SEEDS}
        ),
    log:
        "logs/experiment_config/{suite}.log",
    shell:
        "varshare check-config {input} {params.overrides} --out {output} > {log} 2>&1"


rule train:
    """One method and seed on every task of a suite. Resumes from the run's resume.pt after a
    kill (a rerun of the same job continues where it stopped)."""
    input:
        config="data/configs/{suite}.yaml",
        tasks="data/tasks/{suite}.json",
        code=TRAIN_SOURCES,
    output:
        metrics="data/runs/{suite}/{algo}/{method}/seed{seed}/metrics.csv",
        checkpoint="data/runs/{suite}/{algo}/{method}/seed{seed}/checkpoint.pt",
        done="data/runs/{suite}/{algo}/{method}/seed{seed}/done.json",
    log:
        "logs/train/{suite}/{algo}/{method}/seed{seed}.log",
    threads: PRESET.train_resources.threads
    resources:
        mem_mb=PRESET.train_resources.mem_mb,
        runtime=PRESET.train_resources.runtime,
        gpu=PRESET.train_resources.gpu,
    params:
        out=lambda w: run_dir(w.suite, w.algo, w.method, w.seed),
        device=lambda w: "auto" if PRESET.train_resources.gpu else "cpu",
    shell:
        "varshare train --config {input.config} --tasks {input.tasks} --suite {wildcards.suite}"
        " --method {wildcards.method} --seed {wildcards.seed} --out {params.out} --replace-stale"
        " --set num_threads={threads} --set device={params.device} >> {log} 2>&1"
