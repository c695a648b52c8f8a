# `figures/all` is a manifest: it lists every artefact the study builds, one path per line.
# Snakemake does not rerun a job whose output exists just because one of its *inputs* was deleted,
# so a manifest whose listed artefacts are not all present is stale: remove it at parse time and
# the missing artefacts (and the manifest) are rebuilt on this run.
STUDY_OUTPUTS = [
    *(f"{figure_stem(s, a)}_{kind}.{ext}" for s, a in METHODS_FIGURES for kind in ("methods", "iqm")
      for ext in ("png", "pdf")),
    *(f"data/results/{s}/{table}" for s in SUITES for table in ("per_task_final.csv", "iqm.csv")),
    *(f"figures/{name}_{a}.{ext}" for name, algos in PORTFOLIO_ALGOS.items() for a in algos for ext in ("png", "pdf")),
    *(f"figures/pruning_{a}.{ext}" for a in PRUNING_ALGOS for ext in ("png", "pdf")),
    *(f"figures/fig6_ppo_vs_sac.{ext}" for ext in ("png", "pdf") if FIG6_SUITES),
    *(f"figures/fig7_mt10.{ext}" for ext in ("png", "pdf") if MT10_ALGOS),
    *(f"figures/loo_{s}_{a}.{ext}" for s, plan in LOO_SUITES.items() for a in plan.algos for ext in ("png", "pdf")),
    *(f"data/results/{s}/loo/loo_summary.csv" for s in LOO_SUITES),
    *(path for s, a, m in HPO_STUDIES for path in (
        f"data/hpo/{s}/{a}/{m}/trials.csv", f"data/hpo/{s}/{a}/{m}/best_params.yaml",
        hpo_figure(s, a, m, "history"), hpo_figure(s, a, m, "importance"))),
    *(f"data/results/{s}/tuned/iqm.csv" for s in HPO_SUITES),
    *(["figures/claims.md", "figures/claims.csv"] if CLAIM_SUITES else []),
    *(f"figures/profiles_{s}.{ext}" for s in PROFILE_SUITES for ext in ("png", "pdf")),
    *(f"figures/improvement_{s}.{ext}" for s in IMPROVEMENT_SUITES for ext in ("png", "pdf")),
]

if os.path.exists("figures/all") and not all(os.path.exists(p) for p in STUDY_OUTPUTS):
    os.remove("figures/all")


# The default target (plain `snakemake --cores 8`) is this rule's output: rule `all` of the root
# Snakefile asks for it (Snakemake takes the default target from the main Snakefile only).
rule study_manifest:
    """Everything the study builds, listed in `figures/all`."""
    input:
        STUDY_OUTPUTS,
    output:
        "figures/all",
    shell:
        "printf '%s\\n' {input} > {output}"
