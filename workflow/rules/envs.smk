rule envs:
    """Write the validated task specs of one suite: the data every later step reads."""
    input:
        # Rerun when the suite definitions change (Snakemake does not track imported modules).
        "src/varshare/envs/suites.py",
        "src/varshare/envs/specs.py",
    output:
        "data/tasks/{suite}.json",
    log:
        "logs/envs/{suite}.log",
    wildcard_constraints:
        suite="|".join(KNOWN_SUITES),
    shell:
        "varshare envs --suite {wildcards.suite} --out {output} > {log} 2>&1"
