# Leave-one-out generalisation (the preset's `loo` section): pretrain a method with an algorithm on
# every task of a suite but one, then learn the held-out task under each regime with the same
# budget; aggregate the adaptation runs of a suite (every algorithm's), scored by the suite's metric
# (return, or MT10's success rate); one figure per suite and algorithm.
LOO = PRESET.loo
# suite -> its plan, with the algorithms, methods and seeds it runs (its own, else the loo section's);
# none when loo.methods is empty
LOO_SUITES = loo_suites(PRESET)
LOO_DIR = "data/runs/{suite}/loo/{algo}/{method}/{holdout}/seed{seed}"


def loo_dir(suite, algo, method, holdout, seed, stage):
    """Run directory of a leave-one-out run; stage: `pretrain` or a regime."""
    return f"data/runs/{suite}/loo/{algo}/{method}/{holdout}/seed{seed}/{stage}"


def loo_adaptations(wildcards):
    plan = LOO_SUITES[wildcards.suite]
    return [f"{loo_dir(wildcards.suite, algo, method, holdout, seed, regime)}/done.json" for algo in plan.algos
            for method in plan.methods for holdout in plan.holdouts for seed in plan.seeds for regime in LOO.regimes]


rule loo_pretrain:
    """Train a method on every task of a suite but the held-out one (`varshare train --holdout`)."""
    input:
        config="data/configs/{suite}/{algo}.yaml",
        tasks="data/tasks/{suite}.json",
        code=lambda w: TRAIN_SOURCES[w.algo],
    output:
        metrics=f"{LOO_DIR}/pretrain/metrics.csv",
        checkpoint=f"{LOO_DIR}/pretrain/checkpoint.pt",
        done=f"{LOO_DIR}/pretrain/done.json",
    log:
        "logs/loo/{suite}/{algo}/{method}/{holdout}/seed{seed}/pretrain.log",
    threads: LOO_RESOURCES["threads"]
    resources:
        mem_mb=LOO_RESOURCES["mem_mb"],
        runtime=LOO_RESOURCES["runtime"],
        gpu=LOO_RESOURCES["gpu"],
    params:
        out=lambda w: loo_dir(w.suite, w.algo, w.method, w.holdout, w.seed, "pretrain"),
        overrides=lambda w: shell_overrides(loo_overrides(LOO_SUITES[w.suite], "pretrain")),
        device=LOO_RESOURCES["device"],
        env_mode=LOO_RESOURCES["env_mode"],
    shell:
        "varshare train --config {input.config} --tasks {input.tasks} --suite {wildcards.suite} --algo {wildcards.algo}"
        " --method {wildcards.method} --seed {wildcards.seed} --holdout {wildcards.holdout} --out {params.out}"
        " --replace-stale {params.overrides} --env-mode {params.env_mode} --set num_threads={threads} --set device={params.device} >> {log} 2>&1"


rule loo_adapt:
    """Learn the held-out task from the pretrained run under one regime (`varshare adapt`, which
    reads the algorithm from the pretrained run); a regime that does not apply to the method
    (residual without shared parameters) ends with a skip marker."""
    input:
        pretrained=f"{LOO_DIR}/pretrain/done.json",
        checkpoint=f"{LOO_DIR}/pretrain/checkpoint.pt",
        config="data/configs/{suite}/{algo}.yaml",
        tasks="data/tasks/{suite}.json",
        code=lambda w: LOO_ADAPT_SOURCES[w.algo],
    output:
        done=f"{LOO_DIR}/{{regime}}/done.json",
    log:
        "logs/loo/{suite}/{algo}/{method}/{holdout}/seed{seed}/{regime}.log",
    threads: LOO_RESOURCES["threads"]
    resources:
        mem_mb=LOO_RESOURCES["mem_mb"],
        runtime=LOO_RESOURCES["runtime"],
        gpu=LOO_RESOURCES["gpu"],
    params:
        pretrained=lambda w: loo_dir(w.suite, w.algo, w.method, w.holdout, w.seed, "pretrain"),
        out=lambda w: loo_dir(w.suite, w.algo, w.method, w.holdout, w.seed, w.regime),
        overrides=lambda w: shell_overrides(loo_overrides(LOO_SUITES[w.suite], "adapt")),
        device=LOO_RESOURCES["device"],
        env_mode=LOO_RESOURCES["env_mode"],
    shell:
        "varshare adapt --pretrained {params.pretrained} --task {wildcards.holdout} --regime {wildcards.regime}"
        " --config {input.config} --tasks {input.tasks} --seed {wildcards.seed} --out {params.out} --replace-stale"
        " {params.overrides} --env-mode {params.env_mode} --set num_threads={threads} --set device={params.device} >> {log} 2>&1"


rule loo_aggregate:
    """A suite's adaptation runs (every algorithm's): held-out-task curves, steps-to-threshold and
    zero-shot scores per regime (score: the suite's metric, return or success rate)."""
    input:
        runs=loo_adaptations,
        code=LOO_AGGREGATE_SOURCES,
    output:
        curves="data/results/{suite}/loo/loo_curves.csv",
        runs="data/results/{suite}/loo/loo_runs.csv",
        summary="data/results/{suite}/loo/loo_summary.csv",
        meta="data/results/{suite}/loo/loo.json",
    params:
        run_dirs=lambda w, input: " ".join(str(Path(p).parent) for p in input.runs),
        threshold=lambda w: LOO_SUITES[w.suite].threshold,
        metric=lambda w: LOO_SUITES[w.suite].metric,
        bootstrap_seed=PRESET.bootstrap_seed,
    log:
        "logs/loo/{suite}/aggregate.log",
    shell:
        "varshare loo-aggregate --suite {wildcards.suite} --metric {params.metric} --threshold {params.threshold}"
        " --out data/results/{wildcards.suite}/loo --bootstrap-seed {params.bootstrap_seed} {params.run_dirs} > {log} 2>&1"


rule loo_figure:
    """The leave-one-out figure of a suite and algorithm: curves and steps-to-threshold per regime,
    per method."""
    input:
        meta="data/results/{suite}/loo/loo.json",
        code=FIGURE_SOURCES,
    output:
        png=report("figures/loo_{suite}_{algo}.png", caption="../report/loo.rst", category="Leave-one-out",
                   subcategory="{suite}, {algo}"),
        pdf="figures/loo_{suite}_{algo}.pdf",
    params:
        title=lambda w: f"Leave-one-out on {SUITE_TITLE[w.suite]}, {algo_label(w.algo)}: held-out "
                        f"{', '.join(LOO_SUITES[w.suite].holdouts)} ({PRESET.preset} preset)",
    log:
        "logs/figures/loo_{suite}_{algo}.log",
    shell:
        "varshare loo-figure --results data/results/{wildcards.suite}/loo --algo {wildcards.algo} --title {params.title:q}"
        " --png {output.png} --pdf {output.pdf} > {log} 2>&1"
