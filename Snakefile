# The VarShare study. Build everything with:  snakemake --cores 8 figures/all
# The workflow itself lives in workflow/ (rules per stage); this file only includes it.
include: "workflow/Snakefile"
