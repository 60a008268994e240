"""What the Snakemake workflow reads: the config check, the run design, the job table, stage costs, the manifest."""
