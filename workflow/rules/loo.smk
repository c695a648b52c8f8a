# Leave-one-out generalisation (the preset's `loo` section): pretrain a method on every task of a
# suite but one, then learn the held-out task under each regime with the same budget; aggregate the
# adaptation runs of a suite; one figure per suite.
LOO = PRESET.loo
LOO_SUITES = loo_suites(PRESET)  # none when loo.methods is empty
LOO_SOURCES = TRAIN_SOURCES + package_sources("loo.py", "run_loading.py")


def loo_dir(suite, method, holdout, seed, stage):
    """Run directory of a leave-one-out run; stage: `pretrain` or a regime."""
    return f"data/runs/{suite}/loo/{method}/{holdout}/seed{seed}/{stage}"


def loo_adaptations(wildcards):
    plan = LOO_SUITES[wildcards.suite]
    return [f"{loo_dir(wildcards.suite, method, holdout, seed, regime)}/done.json"
            for method in LOO.methods for holdout in plan.holdouts for seed in LOO.seeds for regime in LOO.regimes]


rule loo_pretrain:
    """Train a method on every task of a suite but the held-out one (`varshare train --holdout`)."""
    input:
        config="data/configs/{suite}.yaml",
        tasks="data/tasks/{suite}.json",
        code=TRAIN_SOURCES,
    output:
        metrics="data/runs/{suite}/loo/{method}/{holdout}/seed{seed}/pretrain/metrics.csv",
        checkpoint="data/runs/{suite}/loo/{method}/{holdout}/seed{seed}/pretrain/checkpoint.pt",
        done="data/runs/{suite}/loo/{method}/{holdout}/seed{seed}/pretrain/done.json",
    log:
        "logs/loo/{suite}/{method}/{holdout}/seed{seed}/pretrain.log",
    threads: PRESET.train_resources.threads
    resources:
        mem_mb=PRESET.train_resources.mem_mb,
        runtime=PRESET.train_resources.runtime,
        gpu=PRESET.train_resources.gpu,
    params:
        out=lambda w: loo_dir(w.suite, w.method, w.holdout, w.seed, "pretrain"),
        overrides=lambda w: shell_overrides(loo_overrides(LOO_SUITES[w.suite], "pretrain")),
        device=lambda w: "auto" if PRESET.train_resources.gpu else "cpu",
    shell:
        "varshare train --config {input.config} --tasks {input.tasks} --suite {wildcards.suite}"
        " --method {wildcards.method} --seed {wildcards.seed} --holdout {wildcards.holdout} --out {params.out}"
        " --replace-stale {params.overrides} --set num_threads={threads} --set device={params.device} >> {log} 2>&1"


rule loo_adapt:
    """Learn the held-out task from the pretrained run under one regime (`varshare adapt`); a regime
    that does not apply to the method (residual without shared parameters) ends with a skip marker."""
    input:
        pretrained="data/runs/{suite}/loo/{method}/{holdout}/seed{seed}/pretrain/done.json",
        checkpoint="data/runs/{suite}/loo/{method}/{holdout}/seed{seed}/pretrain/checkpoint.pt",
        config="data/configs/{suite}.yaml",
        tasks="data/tasks/{suite}.json",
        code=LOO_SOURCES,
    output:
        done="data/runs/{suite}/loo/{method}/{holdout}/seed{seed}/{regime}/done.json",
    log:
        "logs/loo/{suite}/{method}/{holdout}/seed{seed}/{regime}.log",
    threads: PRESET.train_resources.threads
    resources:
        mem_mb=PRESET.train_resources.mem_mb,
        runtime=PRESET.train_resources.runtime,
        gpu=PRESET.train_resources.gpu,
    params:
        pretrained=lambda w: loo_dir(w.suite, w.method, w.holdout, w.seed, "pretrain"),
        out=lambda w: loo_dir(w.suite, w.method, w.holdout, w.seed, w.regime),
        overrides=lambda w: shell_overrides(loo_overrides(LOO_SUITES[w.suite], "adapt")),
        device=lambda w: "auto" if PRESET.train_resources.gpu else "cpu",
    shell:
        "varshare adapt --pretrained {params.pretrained} --task {wildcards.holdout} --regime {wildcards.regime}"
        " --config {input.config} --tasks {input.tasks} --seed {wildcards.seed} --out {params.out} --replace-stale"
        " {params.overrides} --set num_threads={threads} --set device={params.device} >> {log} 2>&1"


rule loo_aggregate:
    """A suite's adaptation runs: held-out-task curves, steps-to-threshold and zero-shot returns per regime."""
    input:
        runs=loo_adaptations,
        code=ANALYSIS_SOURCES,
    output:
        curves="data/results/{suite}/loo/loo_curves.csv",
        summary="data/results/{suite}/loo/loo_summary.csv",
        meta="data/results/{suite}/loo/loo.json",
    params:
        run_dirs=lambda w, input: " ".join(str(Path(p).parent) for p in input.runs),
        threshold=lambda w: LOO_SUITES[w.suite].threshold,
        bootstrap_seed=PRESET.bootstrap_seed,
    log:
        "logs/loo/{suite}/aggregate.log",
    shell:
        "varshare loo-aggregate --suite {wildcards.suite} --threshold {params.threshold}"
        " --out data/results/{wildcards.suite}/loo --bootstrap-seed {params.bootstrap_seed} {params.run_dirs} > {log} 2>&1"


rule loo_figure:
    """The leave-one-out figure of a suite: curves and steps-to-threshold per regime, per method."""
    input:
        meta="data/results/{suite}/loo/loo.json",
        code=ANALYSIS_SOURCES,
    output:
        png=report("figures/loo_{suite}.png", caption="../report/loo.rst", category="Leave-one-out",
                   subcategory="{suite}"),
        pdf="figures/loo_{suite}.pdf",
    params:
        title=lambda w: f"Leave-one-out on {SUITE_TITLE[w.suite]}: held-out "
                        f"{', '.join(LOO_SUITES[w.suite].holdouts)} ({PRESET.preset} preset)",
    log:
        "logs/figures/loo_{suite}.log",
    shell:
        "varshare loo-figure --results data/results/{wildcards.suite}/loo --title {params.title:q}"
        " --png {output.png} --pdf {output.pdf} > {log} 2>&1"
