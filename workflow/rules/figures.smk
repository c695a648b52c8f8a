def figure_stem(suite, algo):
    return f"figures/{FIGURE_PREFIX[suite]}_{suite}_{algo}"


def algo_title(algo):
    return ALGO_TITLE.get(algo, algo.upper())


rule figure_methods:
    """Fig. 1 / Fig. 2: the seven methods on a suite with one algorithm (curves mean ± std over
    seeds; final IQM)."""
    input:
        curves="data/results/{suite}/eval_curves.csv",
        iqm="data/results/{suite}/iqm.csv",
        code=FIGURE_SOURCES,
    output:
        curves_png=report("figures/{prefix}_{suite}_{algo}_methods.png", caption="../report/methods_curves.rst",
                          category="Method comparison", subcategory="{suite}, {algo}"),
        curves_pdf="figures/{prefix}_{suite}_{algo}_methods.pdf",
        iqm_png=report("figures/{prefix}_{suite}_{algo}_iqm.png", caption="../report/methods_iqm.rst",
                       category="Method comparison", subcategory="{suite}, {algo}"),
        iqm_pdf="figures/{prefix}_{suite}_{algo}_iqm.pdf",
    params:
        title=lambda w: f"{SUITE_TITLE[w.suite]}, {algo_title(w.algo)} ({PRESET.preset} preset)",
        methods=" ".join(PRESET.methods),
    log:
        "logs/figures/{prefix}_{suite}_{algo}_methods.log",
    wildcard_constraints:
        prefix="fig[a-z0-9_]+",
    shell:
        "varshare figure --results data/results/{wildcards.suite} --algo {wildcards.algo} --title {params.title:q}"
        " --curves-png {output.curves_png} --curves-pdf {output.curves_pdf}"
        " --iqm-png {output.iqm_png} --iqm-pdf {output.iqm_pdf} --methods {params.methods} > {log} 2>&1"


PORTFOLIO_FIGURES = {
    # figure: (plot kind, methods, title, caption)
    "fig3_strategies": ("strategies", PRESET.strategy_methods,
                        "Evaluation strategies: mean weights vs sample-1 vs sample-5", "fig3_strategies.rst"),
    "fig4_variants": ("curves", PRESET.variants, "Screening of the VarShare variants", "fig4_variants.rst"),
    "fig5_top_variants": ("curves", PRESET.top_variants, "Top VarShare variants against the base",
                          "fig5_top_variants.rst"),
    "sharing_map": ("sharing-map", [PRESET.sharing_map_method],
                    f"Where tasks specialise: mean |μ| of {PRESET.sharing_map_method}'s residuals", "sharing_map.rst"),
}
PORTFOLIO_FIGURES = {name: spec for name, spec in PORTFOLIO_FIGURES.items() if spec[1]}


for _figure, (_kind, _methods, _title, _caption) in PORTFOLIO_FIGURES.items():

    rule:
        """Fig. 3-5 and the sharing map of one algorithm: one panel per suite, from every suite's results."""
        name:
            f"figure_{_figure}"
        input:
            results=expand("data/results/{suite}/aggregate.json", suite=SUITES),
            code=FIGURE_SOURCES,
        output:
            png=report(f"figures/{_figure}_{{algo}}.png", caption=f"../report/{_caption}",
                       category="VarShare portfolio", subcategory="{algo}"),
            pdf=f"figures/{_figure}_{{algo}}.pdf",
        params:
            kind=_kind,
            methods=" ".join(_methods),
            title=lambda w, _title=_title: f"{_title}, {algo_title(w.algo)} ({PRESET.preset} preset)",
            results=" ".join(results_dirs()),
            panel_titles=suite_titles(),
        log:
            f"logs/figures/{_figure}_{{algo}}.log",
        shell:
            "varshare plot {params.kind} --results {params.results} --panel-titles {params.panel_titles}"
            " --algo {wildcards.algo} --methods {params.methods} --title {params.title:q}"
            " --png {output.png} --pdf {output.pdf} > {log} 2>&1"


rule prune:
    """Post-training pruning sweep of one run: zero residual means with |μ| < ε, re-evaluate."""
    input:
        done="data/runs/{suite}/{algo}/{method}/seed{seed}/done.json",
        checkpoint="data/runs/{suite}/{algo}/{method}/seed{seed}/checkpoint.pt",
        code=lambda w: PRUNE_SOURCES[w.algo],
    output:
        "data/results/{suite}/pruning/{algo}_{method}_seed{seed}.csv",
    threads: PRUNE_RESOURCES["threads"]
    resources:
        mem_mb=PRUNE_RESOURCES["mem_mb"],
        runtime=PRUNE_RESOURCES["runtime"],
        gpu=PRUNE_RESOURCES["gpu"],
    params:
        run=lambda w: run_dir(w.suite, w.algo, w.method, w.seed),
        eps=" ".join(f"{e:g}" for e in PRESET.pruning.eps),
        episodes=PRESET.pruning.episodes,
        device=lambda w: "cuda" if job_resources(PRESET, "prune", w.suite, w.algo).gpu else "cpu",
    log:
        "logs/prune/{suite}/{algo}_{method}_seed{seed}.log",
    shell:
        "OMP_NUM_THREADS={threads} varshare prune --run {params.run} --eps {params.eps} --episodes {params.episodes}"
        " --device {params.device} --out {output} > {log} 2>&1"


rule figure_pruning:
    """Return after pruning against the kept fraction of residual parameters, one panel per suite."""
    input:
        lambda w: expand("data/results/{suite}/pruning/{algo}_{method}_seed{seed}.csv", suite=SUITES,
                         algo=[w.algo], method=[PRESET.pruning.method], seed=SEEDS),
        code=FIGURE_SOURCES,
    output:
        png=report("figures/pruning_{algo}.png", caption="../report/pruning.rst", category="VarShare portfolio",
                   subcategory="{algo}"),
        pdf="figures/pruning_{algo}.pdf",
    params:
        results=" ".join(results_dirs()),
        panel_titles=suite_titles(),
        title=lambda w: f"Pruning {PRESET.pruning.method}'s residuals, {algo_title(w.algo)} ({PRESET.preset} preset)",
        method=PRESET.pruning.method,
    log:
        "logs/figures/pruning_{algo}.log",
    shell:
        "varshare plot pruning --results {params.results} --panel-titles {params.panel_titles} --algo {wildcards.algo}"
        " --methods {params.method} --title {params.title:q} --png {output.png} --pdf {output.pdf} > {log} 2>&1"
