# The study's claims tested on whatever the preset trained (varshare.analysis.claims), and rliable's
# figures per suite, one panel per algorithm: performance profiles of the compared methods, and the
# probability that VarShare (and L2-Soft) improve on each other one. All read task-normalised scores
# (data/results/<suite>/score_range.json: 0 random, 1 solved).
CLAIM_SUITES = [suite for suite in SUITES if any(s == suite for s, _ in TRAINED)]
CLAIMS_SOURCES = code_sources("varshare.analysis.claims")
RLIABLE_SOURCES = code_sources("varshare.analysis.rliable_figures", "varshare.analysis.claims")
from varshare.config import CHALLENGERS, COMPARED_METHODS as COMPARED


def suite_algos(suite):
    """The algorithms a suite trains some compared method with (a panel each)."""
    return [algo for (s, algo), methods in TRAINED.items() if s == suite and set(methods) & set(COMPARED)]


def improvement_algos(suite):
    """The algorithms that train VarShare or L2-Soft beside another compared method on the suite."""
    return [algo for algo in suite_algos(suite)
            if set(TRAINED[suite, algo]) & set(CHALLENGERS) and len(set(TRAINED[suite, algo]) & set(COMPARED)) > 1]


PROFILE_SUITES = [suite for suite in CLAIM_SUITES if suite_algos(suite)]
IMPROVEMENT_SUITES = [suite for suite in PROFILE_SUITES if improvement_algos(suite)]


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


rule figure_profiles:
    """rliable's performance profiles of a suite: the fraction of runs × tasks whose final normalised
    score exceeds τ, per compared method, with 95% stratified-bootstrap bands; a panel per algorithm."""
    input:
        curves="data/results/{suite}/task_curves.csv",
        score_range="data/results/{suite}/score_range.json",
        code=RLIABLE_SOURCES,
    output:
        png=report("figures/profiles_{suite}.png", caption="../report/rliable.rst",
                   category="Method comparison", subcategory="{suite}, rliable"),
        pdf="figures/profiles_{suite}.pdf",
    params:
        algos=lambda w: " ".join(suite_algos(w.suite)),
        title=lambda w: f"{SUITE_TITLE[w.suite]}: performance profiles ({PRESET.preset} preset)",
        bootstrap_seed=PRESET.bootstrap_seed,
    log:
        "logs/figures/profiles_{suite}.log",
    shell:
        "varshare rliable-figures --results data/results/{wildcards.suite} --score-range {input.score_range}"
        " --algos {params.algos} --title {params.title:q} --bootstrap-seed {params.bootstrap_seed}"
        " --profiles-png {output.png} --profiles-pdf {output.pdf} > {log} 2>&1"


rule figure_improvement:
    """rliable's probability of improvement of a suite: P(X > Y) of VarShare and L2-Soft over each
    other compared method trained, final normalised scores, 95% CIs; a panel per algorithm."""
    input:
        curves="data/results/{suite}/task_curves.csv",
        score_range="data/results/{suite}/score_range.json",
        code=RLIABLE_SOURCES,
    output:
        png=report("figures/improvement_{suite}.png", caption="../report/rliable.rst",
                   category="Method comparison", subcategory="{suite}, rliable"),
        pdf="figures/improvement_{suite}.pdf",
    params:
        algos=lambda w: " ".join(improvement_algos(w.suite)),
        title=lambda w: f"{SUITE_TITLE[w.suite]}: probability of improvement ({PRESET.preset} preset)",
        bootstrap_seed=PRESET.bootstrap_seed,
    log:
        "logs/figures/improvement_{suite}.log",
    shell:
        "varshare rliable-figures --results data/results/{wildcards.suite} --score-range {input.score_range}"
        " --algos {params.algos} --title {params.title:q} --bootstrap-seed {params.bootstrap_seed}"
        " --improvement-png {output.png} --improvement-pdf {output.pdf} > {log} 2>&1"
