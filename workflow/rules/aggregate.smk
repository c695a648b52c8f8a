def finished_runs(wildcards):
    """Every training run of the suite: each algorithm trained there, its methods, its seeds."""
    return [f"{run_dir(suite, algo, method, seed)}/done.json"
            for (suite, algo), methods in TRAINED.items() if suite == wildcards.suite
            for method in methods for seed in TRAINED_SEEDS[suite, algo]]


rule aggregate:
    """Tidy results of a suite, every algorithm's runs: evaluation curves, final returns per task,
    IQM with bootstrap CIs, and the same for the success rate (keyed by algo and method)."""
    input:
        runs=finished_runs,
        code=AGGREGATE_SOURCES,
    output:
        curves="data/results/{suite}/eval_curves.csv",
        task_curves="data/results/{suite}/task_curves.csv",
        final="data/results/{suite}/final_returns.csv",
        per_task="data/results/{suite}/per_task_final.csv",
        iqm="data/results/{suite}/iqm.csv",
        success_curves="data/results/{suite}/success_curves.csv",
        final_success="data/results/{suite}/final_success.csv",
        success_iqm="data/results/{suite}/success_iqm.csv",
        meta="data/results/{suite}/aggregate.json",
    params:
        run_dirs=lambda w, input: " ".join(str(Path(p).parent) for p in input.runs),
        bootstrap_seed=PRESET.bootstrap_seed,
    log:
        "logs/aggregate/{suite}.log",
    shell:
        "varshare aggregate --suite {wildcards.suite} --out data/results/{wildcards.suite}"
        " --bootstrap-seed {params.bootstrap_seed} {params.run_dirs} > {log} 2>&1"


rule score_range:
    """A suite's score range: each task's random-policy return, which normalises scores to
    0 (random) .. 1 (solved) for the claims report, rliable's figures and the HPO objective."""
    input:
        tasks="data/tasks/{suite}.json",
        code=code_sources("varshare.hpo.objective"),
    output:
        "data/results/{suite}/score_range.json",
    params:
        episodes=PRESET.hpo.random_episodes,
        seed=PRESET.hpo.seed,
    log:
        "logs/score_range/{suite}.log",
    shell:
        "varshare score-range --suite {wildcards.suite} --tasks {input.tasks} --episodes {params.episodes}"
        " --seed {params.seed} --out {output} > {log} 2>&1"


rule parameters:
    """Parameter counts (total, per task, shared) of every (algo, method) a suite trains, from the
    config of its first seed's run (the claims report's LoRA parameter ratio)."""
    input:
        runs=lambda w: [f"{run_dir(suite, algo, method, TRAINED_SEEDS[suite, algo][0])}/done.json"
                        for (suite, algo), methods in TRAINED.items() if suite == w.suite for method in methods],
        code=PARAMETER_SOURCES,
    output:
        "data/results/{suite}/parameters.csv",
    params:
        run_dirs=lambda w, input: " ".join(str(Path(p).parent) for p in input.runs),
    log:
        "logs/parameters/{suite}.log",
    shell:
        "varshare parameters --out {output} {params.run_dirs} > {log} 2>&1"
