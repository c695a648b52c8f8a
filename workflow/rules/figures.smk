def figure_stem(suite):
    return f"figures/{FIGURE_PREFIX[suite]}_{suite}"


rule figure_methods:
    """Fig. 1 / Fig. 2: the seven methods on a suite (curves mean ± std over seeds; final IQM)."""
    input:
        curves="data/results/{suite}/eval_curves.csv",
        iqm="data/results/{suite}/iqm.csv",
        code=ANALYSIS_SOURCES,
    output:
        curves_png=report("figures/{prefix}_{suite}_methods.png", caption="../report/methods_curves.rst",
                          category="Method comparison", subcategory="{suite}"),
        curves_pdf="figures/{prefix}_{suite}_methods.pdf",
        iqm_png=report("figures/{prefix}_{suite}_iqm.png", caption="../report/methods_iqm.rst",
                       category="Method comparison", subcategory="{suite}"),
        iqm_pdf="figures/{prefix}_{suite}_iqm.pdf",
    params:
        title=lambda w: f"{SUITE_TITLE[w.suite]} ({PRESET.preset} preset)",
    log:
        "logs/figures/{prefix}_{suite}_methods.log",
    wildcard_constraints:
        prefix="fig[a-z0-9_]+",
    shell:
        "varshare figure --results data/results/{wildcards.suite} --title {params.title:q}"
        " --curves-png {output.curves_png} --curves-pdf {output.curves_pdf}"
        " --iqm-png {output.iqm_png} --iqm-pdf {output.iqm_pdf} > {log} 2>&1"
