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
