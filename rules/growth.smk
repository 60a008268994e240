# Gstack model growth: the target (the base's shape) from scratch, small models, grown runs, report.


# What every growth run reads.
GROWTH_DATA = {"tokenizer": TOKENIZER_DIR, **TOKEN_FILES}


# A table and a plot of small files: not worth a cluster job.
localrules:
    growth_report,


rule growth_scratch:
    input: **GROWTH_DATA
    output: **outputs("growth_scratch")
    log: "logs/growth/scratch/seed{seed}.log"
    params: **JOBS.rule_params("growth_scratch")
    threads: config["resources"]["train_threads"]
    resources: **JOBS.resources("growth_scratch")
    conda: CONDA_ENV
    script: "../scripts/growth_run.py"


use rule growth_scratch as growth_small with:
    output: **outputs("growth_small")
    log: "logs/growth/small/g{g}_d{d}/seed{seed}.log"


use rule growth_scratch as growth_grown with:
    input:
        small=OUTPUTS["growth_small"]["model"],
        **GROWTH_DATA,
    output: **outputs("growth_grown")
    log: "logs/growth/{operator}/g{g}_d{d}/seed{seed}.log"


rule growth_report:
    input:
        scratch_metrics=expand(OUTPUTS["growth_scratch"]["metrics"], seed=range(config["growth"]["seeds"])),
        scratch_info=expand(OUTPUTS["growth_scratch"]["info"], seed=range(config["growth"]["seeds"])),
        metrics=JOBS.growth_paths(OUTPUTS["growth_grown"]["metrics"]),
        info=JOBS.growth_paths(OUTPUTS["growth_grown"]["info"]),
        small_metrics=JOBS.growth_paths(OUTPUTS["growth_small"]["metrics"]),
        small_info=JOBS.growth_paths(OUTPUTS["growth_small"]["info"]),
    output:
        png=report(OUTPUTS["growth_report"]["png"], caption="../report/growth_curves.rst", category="Model growth"),
        md=OUTPUTS["growth_report"]["md"],
        csv=report(OUTPUTS["growth_report"]["csv"], caption="../report/growth_csv.rst", category="Model growth"),
    log: "logs/growth/report.log"
    params: **JOBS.rule_params("growth_report")
    resources: **JOBS.resources("growth_report")
    conda: CONDA_ENV
    script: "../scripts/growth_report.py"
