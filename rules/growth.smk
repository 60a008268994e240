# Gstack model growth: the target (the base's shape) from scratch, small models, grown runs, report.


# A table and a plot of small files: not worth a cluster job.
localrules:
    growth_report,


rule growth_scratch:
    input: **GROWTH_DATA
    output: **run_outputs("results/growth/scratch/seed{seed}", "model")
    log: "logs/growth/scratch/seed{seed}.log"
    params:
        model=GROWTH_MODEL,
        train=GROWTH_TRAIN,
        steps=config["growth"]["steps"],
    threads: config["resources"]["train_threads"]
    resources:
        **job(mem_mb(16, 4096), training_runtime({**GROWTH_TRAIN, "steps": config["growth"]["steps"]}), gpu=True),
    conda: CONDA_ENV
    script: "../scripts/growth_run.py"


use rule growth_scratch as growth_small with:
    output: **run_outputs("results/growth/small/g{g}_d{d}/seed{seed}", "model")
    log: "logs/growth/small/g{g}_d{d}/seed{seed}.log"


use rule growth_scratch as growth_grown with:
    input:
        small="results/growth/small/g{g}_d{d}/seed{seed}/model",
        **GROWTH_DATA,
    output: **run_outputs("results/growth/{operator}/g{g}_d{d}/seed{seed}", "model")
    log: "logs/growth/{operator}/g{g}_d{d}/seed{seed}.log"


rule growth_report:
    input:
        scratch_metrics=expand("results/growth/scratch/seed{seed}/metrics.jsonl", seed=GROWTH_SEEDS),
        scratch_info=expand("results/growth/scratch/seed{seed}/info.json", seed=GROWTH_SEEDS),
        metrics=growth_paths("results/growth/{operator}/g{g}_d{d}/seed{seed}/metrics.jsonl"),
        info=growth_paths("results/growth/{operator}/g{g}_d{d}/seed{seed}/info.json"),
        small_metrics=growth_paths("results/growth/small/g{g}_d{d}/seed{seed}/metrics.jsonl"),
        small_info=growth_paths("results/growth/small/g{g}_d{d}/seed{seed}/info.json"),
    output:
        png=report("results/report/growth_curves.png", caption="../report/growth_curves.rst", category="Model growth"),
        md="results/report/growth.md",
        csv=report("results/report/growth.csv", caption="../report/growth_csv.rst", category="Model growth"),
    log: "logs/growth/report.log"
    params: runs=GROWTH_RUNS
    resources: **job(2048, 10)
    conda: CONDA_ENV
    script: "../scripts/growth_report.py"
