# The VarShare study. Build everything with:  snakemake --cores 8   (the same as: snakemake --cores 8 figures/all)
# The workflow itself lives in workflow/ (rules per stage); this file includes it and names the
# default target (Snakemake takes it from the main Snakefile only, never from an included file).
include: "workflow/Snakefile"


rule all:
    """The default target: every artefact of the study, listed in figures/all."""
    default_target: True
    input:
        "figures/all",
