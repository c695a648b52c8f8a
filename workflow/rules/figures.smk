def figure_stem(suite, algo):
    return f"figures/{FIGURE_PREFIX[suite]}_{suite}_{algo}"


def methods_figure_methods(suite, algo):
    """Methods of Fig. 1 / Fig. 2 for (suite, algo): the preset's compared methods it trains."""
    return [method for method in PRESET.methods if method in TRAINED.get((suite, algo), [])]


def panel_suites(algo, methods):
    """Panels of a portfolio figure of ``algo`` drawing ``methods``: the suites on which the
    algorithm trains every one of ``methods`` (none: the figure is not built). A suite that trains
    only some of them (e.g. MT10's few methods) is left out of the figure."""
    return [suite for suite in SUITES if set(methods) <= set(TRAINED.get((suite, algo), []))]


def panel_args(suites):
    """`--results` directories and `--panel-titles` of one panel per suite."""
    titles = " ".join(shlex.quote(SUITE_TITLE[suite]) for suite in suites)
    return f"--results {' '.join(f'data/results/{suite}' for suite in suites)} --panel-titles {titles}"


# Fig. 1 / Fig. 2 of every (suite, algo) of CartPole-10 and LunarLander-20 that trains some of the
# compared methods (MT10's comparison is Fig. 7, below)
METHODS_FIGURES = [(suite, algo) for suite, algo in TRAINED
                   if suite in FIGURE_PREFIX and methods_figure_methods(suite, algo)]


rule figure_methods:
    """Fig. 1 / Fig. 2: the compared methods on a suite with one algorithm (curves mean ± std over
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
        title=lambda w: f"{SUITE_TITLE[w.suite]}, {algo_label(w.algo)} ({PRESET.preset} preset)",
        methods=lambda w: " ".join(methods_figure_methods(w.suite, w.algo)),
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
# figure -> the algorithms it is built for: those that train its methods on every suite they run on
PORTFOLIO_ALGOS = {name: [algo for algo in ALGOS if panel_suites(algo, spec[1])]
                   for name, spec in PORTFOLIO_FIGURES.items() if spec[1]}
PORTFOLIO_ALGOS = {name: algos for name, algos in PORTFOLIO_ALGOS.items() if algos}


for _figure, _algos in PORTFOLIO_ALGOS.items():
    _kind, _methods, _title, _caption = PORTFOLIO_FIGURES[_figure]

    rule:
        """Fig. 3-5 and the sharing map of one algorithm: one panel per suite it trains on."""
        name:
            f"figure_{_figure}"
        input:
            results=lambda w, _methods=_methods: expand("data/results/{suite}/aggregate.json",
                                                        suite=panel_suites(w.algo, _methods)),
            code=FIGURE_SOURCES,
        output:
            png=report(f"figures/{_figure}_{{algo}}.png", caption=f"../report/{_caption}",
                       category="VarShare portfolio", subcategory="{algo}"),
            pdf=f"figures/{_figure}_{{algo}}.pdf",
        params:
            kind=_kind,
            methods=" ".join(_methods),
            title=lambda w, _title=_title: f"{_title}, {algo_label(w.algo)} ({PRESET.preset} preset)",
            panels=lambda w, _methods=_methods: panel_args(panel_suites(w.algo, _methods)),
        log:
            f"logs/figures/{_figure}_{{algo}}.log",
        wildcard_constraints:
            algo="|".join(_algos),
        shell:
            "varshare plot {params.kind} {params.panels} --algo {wildcards.algo} --methods {params.methods}"
            " --title {params.title:q} --png {output.png} --pdf {output.pdf} > {log} 2>&1"


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


# the algorithms whose pruning figure is built: those that train the pruned method on every suite they run on
PRUNING_ALGOS = [algo for algo in ALGOS if panel_suites(algo, [PRESET.pruning.method])]


if PRUNING_ALGOS:

    rule figure_pruning:
        """Return after pruning against the kept fraction of residual parameters, one panel per suite."""
        input:
            lambda w: [f"data/results/{suite}/pruning/{w.algo}_{PRESET.pruning.method}_seed{seed}.csv"
                       for suite in panel_suites(w.algo, [PRESET.pruning.method])
                       for seed in TRAINED_SEEDS[suite, w.algo]],
            code=FIGURE_SOURCES,
        output:
            png=report("figures/pruning_{algo}.png", caption="../report/pruning.rst", category="VarShare portfolio",
                       subcategory="{algo}"),
            pdf="figures/pruning_{algo}.pdf",
        params:
            panels=lambda w: panel_args(panel_suites(w.algo, [PRESET.pruning.method])),
            title=lambda w: f"Pruning {PRESET.pruning.method}'s residuals, {algo_label(w.algo)} ({PRESET.preset} preset)",
            method=PRESET.pruning.method,
        log:
            "logs/figures/pruning_{algo}.log",
        wildcard_constraints:
            algo="|".join(PRUNING_ALGOS),
        shell:
            "varshare plot pruning {params.panels} --algo {wildcards.algo} --methods {params.method}"
            " --title {params.title:q} --png {output.png} --pdf {output.pdf} > {log} 2>&1"


def ppo_and_sac_methods(suite):
    """The compared methods (the preset's ``methods``) both PPO and SAC train on ``suite``."""
    return [method for method in PRESET.methods
            if all(method in TRAINED.get((suite, algo), []) for algo in ("ppo", "sac"))]


# Fig. 6, PPO vs SAC: a panel per suite among CartPole-10 (left) and LunarLander-20 (right) where both
# algorithms trained some of the compared methods; built when there is one.
FIG6_SUITES = [suite for suite in ("cartpole10", "lunarlander20") if ppo_and_sac_methods(suite)]
FIG6_METHODS = [method for method in PRESET.methods if any(method in ppo_and_sac_methods(s) for s in FIG6_SUITES)]


if FIG6_SUITES:

    rule figure_ppo_vs_sac:
        """Fig. 6: PPO (solid) against SAC (dashed) per compared method, one panel per suite; each panel
        draws the methods both algorithms trained there, and the tuned-hyperparameter runs of the
        suite's HPO studies (`hpo`) beside them."""
        input:
            results=expand("data/results/{suite}/aggregate.json", suite=FIG6_SUITES),
            tuned=[f"data/results/{suite}/tuned/aggregate.json" for suite in FIG6_SUITES if suite in HPO_SUITES],
            code=FIGURE_SOURCES,
        output:
            png=report("figures/fig6_ppo_vs_sac.png", caption="../report/fig6.rst", category="PPO vs SAC"),
            pdf="figures/fig6_ppo_vs_sac.pdf",
        params:
            panels=panel_args(FIG6_SUITES),
            tuned=(f"--tuned-results {' '.join(f'data/results/{s}/tuned' if s in HPO_SUITES else 'none' for s in FIG6_SUITES)}"
                   if any(s in HPO_SUITES for s in FIG6_SUITES) else ""),
            methods=" ".join(FIG6_METHODS),
            title=f"PPO vs SAC: evaluation return per method ({PRESET.preset} preset)",
        log:
            "logs/figures/fig6_ppo_vs_sac.log",
        shell:
            "varshare plot algos {params.panels} {params.tuned} --algos ppo sac --methods {params.methods}"
            " --title {params.title:q} --png {output.png} --pdf {output.pdf} > {log} 2>&1"


# Fig. 7, Meta-World MT10: success rates of every method MT10 trains, a row per algorithm (curves
# with bootstrap bands over seeds, final-success IQM, per-task heatmap); built when MT10 trains.
MT10_ALGOS = [algo for suite, algo in TRAINED if suite == "mt10"]
MT10_METHODS = [method for method in dict.fromkeys([*PRESET.methods, *PRESET.variants])
                if any(method in TRAINED["mt10", algo] for algo in MT10_ALGOS)]


if MT10_ALGOS:

    rule figure_mt10:
        """Fig. 7: MT10's success rate per method and algorithm (`varshare plot mt10`)."""
        input:
            results="data/results/mt10/aggregate.json",
            code=MT10_FIGURE_SOURCES,
        output:
            png=report("figures/fig7_mt10.png", caption="../report/mt10.rst", category="Meta-World MT10"),
            pdf="figures/fig7_mt10.pdf",
        params:
            methods=" ".join(MT10_METHODS),
            title=f"Meta-World MT10: success rate ({', '.join(map(algo_label, MT10_ALGOS))}; {PRESET.preset} preset)",
            suite_title=shlex.quote(SUITE_TITLE["mt10"]),
            bootstrap_seed=PRESET.bootstrap_seed,
        log:
            "logs/figures/fig7_mt10.log",
        shell:
            "varshare plot mt10 --results data/results/mt10 --panel-titles {params.suite_title} --methods {params.methods}"
            " --bootstrap-seed {params.bootstrap_seed} --title {params.title:q} --png {output.png} --pdf {output.pdf}"
            " > {log} 2>&1"
