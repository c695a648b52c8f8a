# The study's claims tested on whatever the preset trained (varshare.analysis.claims), and rliable's
# figures: performance profiles and probability of improvement per suite, one panel per algorithm.
# Both read task-normalised scores (data/results/<suite>/score_range.json: 0 random, 1 solved).
CLAIM_SUITES = [suite for suite in SUITES if any(s == suite for s, _ in TRAINED)]
CLAIMS_SOURCES = code_sources("varshare.analysis.claims")
RLIABLE_SOURCES = code_sources("varshare.analysis.rliable_figures", "varshare.analysis.claims")


def suite_algos(suite):
    return [algo for s, algo in TRAINED if s == suite]


rule claims:
    """figures/claims.md: each claim of the study with its statistic, 95% CI, n and verdict (the
    rule: docs/claims.md); figures/claims.csv: every test."""
    input:
        curves=expand("data/results/{suite}/task_curves.csv", suite=CLAIM_SUITES),
        parameters=expand("data/results/{suite}/parameters.csv", suite=CLAIM_SUITES),
        score_ranges=expand("data/results/{suite}/score_range.json", suite=CLAIM_SUITES),
        loo=[f"data/results/{suite}/loo/loo_runs.csv" for suite in LOO_SUITES if suite in CLAIM_SUITES],
        code=CLAIMS_SOURCES,
    output:
        report=report("figures/claims.md", caption="../report/claims.rst", category="Claims"),
        table="figures/claims.csv",
    params:
        results=" ".join(f"data/results/{suite}" for suite in CLAIM_SUITES),
        sources=f"the {PRESET.preset} preset's results (" + ", ".join(f"`data/results/{s}`" for s in CLAIM_SUITES) + ")",
        bootstrap_seed=PRESET.bootstrap_seed,
    log:
        "logs/claims.log",
    shell:
        "varshare claims --results {params.results} --score-range {input.score_ranges}"
        " --out {output.report} --table {output.table} --bootstrap-seed {params.bootstrap_seed}"
        " --sources {params.sources:q} > {log} 2>&1"


rule figure_rliable:
    """rliable's figures of a suite, a panel per algorithm: performance profiles of the compared
    methods' final normalised scores, and the probability that VarShare (and L2-Soft) improve on
    each other method."""
    input:
        curves="data/results/{suite}/task_curves.csv",
        score_range="data/results/{suite}/score_range.json",
        code=RLIABLE_SOURCES,
    output:
        profiles_png=report("figures/profiles_{suite}.png", caption="../report/rliable.rst",
                            category="Method comparison", subcategory="{suite}, rliable"),
        profiles_pdf="figures/profiles_{suite}.pdf",
        improvement_png=report("figures/improvement_{suite}.png", caption="../report/rliable.rst",
                               category="Method comparison", subcategory="{suite}, rliable"),
        improvement_pdf="figures/improvement_{suite}.pdf",
    params:
        algos=lambda w: " ".join(suite_algos(w.suite)),
        title=lambda w: f"{SUITE_TITLE[w.suite]} ({PRESET.preset} preset)",
        bootstrap_seed=PRESET.bootstrap_seed,
    log:
        "logs/figures/rliable_{suite}.log",
    shell:
        "varshare rliable-figures --results data/results/{wildcards.suite} --score-range {input.score_range}"
        " --algos {params.algos} --title {params.title:q} --bootstrap-seed {params.bootstrap_seed}"
        " --profiles-png {output.profiles_png} --profiles-pdf {output.profiles_pdf}"
        " --improvement-png {output.improvement_png} --improvement-pdf {output.improvement_pdf} > {log} 2>&1"
