# `figures/all` is a manifest: it lists every artefact the study builds, one path per line.
# Snakemake does not rerun a job whose output exists just because one of its *inputs* was deleted,
# so a manifest whose listed artefacts are not all present is stale: remove it at parse time and
# the missing artefacts (and the manifest) are rebuilt on this run.
STUDY_OUTPUTS = [
    *(f"{figure_stem(s)}_{kind}.{ext}" for s in SUITES for kind in ("methods", "iqm") for ext in ("png", "pdf")),
    *(f"data/results/{s}/{table}" for s in SUITES for table in ("per_task_final.csv", "iqm.csv")),
    *(f"figures/{name}.{ext}" for name in [*PORTFOLIO_FIGURES, "pruning"] for ext in ("png", "pdf")),
    *(f"figures/loo_{s}.{ext}" for s in LOO_SUITES for ext in ("png", "pdf")),
    *(f"data/results/{s}/loo/loo_summary.csv" for s in LOO_SUITES),
]

if os.path.exists("figures/all") and not all(os.path.exists(p) for p in STUDY_OUTPUTS):
    os.remove("figures/all")


rule all:
    """Everything the study builds (the user's target is `figures/all`)."""
    input:
        STUDY_OUTPUTS,
    output:
        "figures/all",
    shell:
        "printf '%s\\n' {input} > {output}"
