rule envs:
    """Write the validated task specs of one suite: the data every later step reads."""
    input:
        package_sources("envs/specs.py", "envs/suites.py"),
    output:
        "data/tasks/{suite}.json",
    log:
        "logs/envs/{suite}.log",
    shell:
        "varshare envs --suite {wildcards.suite} --out {output} > {log} 2>&1"
