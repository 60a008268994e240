# Gstack model growth: the target (the base's shape) from scratch, small models, grown runs, report.


# A table and a plot of small files: not worth a cluster job.
localrules:
    growth_report,


rule growth_scratch:
    input:
        tokenizer=TOKENIZER_DIR,
        train="results/tokens/train.bin",
        val="results/tokens/val.bin",
    output:
        model=directory("results/growth/scratch/seed{seed}/model"),
        metrics="results/growth/scratch/seed{seed}/metrics.jsonl",
        info="results/growth/scratch/seed{seed}/info.json",
    log:
        "logs/growth/scratch/seed{seed}.log",
    params:
        model=GROWTH_MODEL,
        train=GROWTH_TRAIN,
        steps=config["growth"]["steps"],
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=mem_mb(16, 4096),
        runtime=training_runtime({**GROWTH_TRAIN, "steps": config["growth"]["steps"]}),
        cpus_per_task=lambda wildcards, threads: threads,
        gpu=RES["gpus"],
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/growth_scratch.py"


rule growth_small:
    input:
        tokenizer=TOKENIZER_DIR,
        train="results/tokens/train.bin",
        val="results/tokens/val.bin",
    output:
        model=directory("results/growth/small/g{g}_d{d}/seed{seed}/model"),
        metrics="results/growth/small/g{g}_d{d}/seed{seed}/metrics.jsonl",
        info="results/growth/small/g{g}_d{d}/seed{seed}/info.json",
    log:
        "logs/growth/small/g{g}_d{d}/seed{seed}.log",
    params:
        model=GROWTH_MODEL,
        train=GROWTH_TRAIN,
        steps=config["growth"]["steps"],
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=mem_mb(16, 4096),
        runtime=training_runtime({**GROWTH_TRAIN, "steps": config["growth"]["steps"]}),
        cpus_per_task=lambda wildcards, threads: threads,
        gpu=RES["gpus"],
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/growth_small.py"


rule growth_grown:
    input:
        small="results/growth/small/g{g}_d{d}/seed{seed}/model",
        tokenizer=TOKENIZER_DIR,
        train="results/tokens/train.bin",
        val="results/tokens/val.bin",
    output:
        model=directory("results/growth/{operator}/g{g}_d{d}/seed{seed}/model"),
        metrics="results/growth/{operator}/g{g}_d{d}/seed{seed}/metrics.jsonl",
        info="results/growth/{operator}/g{g}_d{d}/seed{seed}/info.json",
    log:
        "logs/growth/{operator}/g{g}_d{d}/seed{seed}.log",
    params:
        model=GROWTH_MODEL,
        train=GROWTH_TRAIN,
        steps=config["growth"]["steps"],
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=mem_mb(16, 4096),
        runtime=training_runtime({**GROWTH_TRAIN, "steps": config["growth"]["steps"]}),
        cpus_per_task=lambda wildcards, threads: threads,
        gpu=RES["gpus"],
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/growth_grown.py"


rule growth_report:
    input:
        scratch_metrics=expand("results/growth/scratch/seed{seed}/metrics.jsonl", seed=GROWTH_SEEDS),
        scratch_info=expand("results/growth/scratch/seed{seed}/info.json", seed=GROWTH_SEEDS),
        metrics=growth_paths("results/growth/{operator}/g{g}_d{d}/seed{seed}/metrics.jsonl"),
        info=growth_paths("results/growth/{operator}/g{g}_d{d}/seed{seed}/info.json"),
        small_metrics=growth_paths("results/growth/small/g{g}_d{d}/seed{seed}/metrics.jsonl"),
        small_info=growth_paths("results/growth/small/g{g}_d{d}/seed{seed}/info.json"),
    output:
        png=report("results/report/growth_curves.png", category="Model growth"),
        md="results/report/growth.md",
        csv=report("results/report/growth.csv", category="Model growth"),
    log:
        "logs/growth/report.log",
    params:
        runs=GROWTH_RUNS,
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
        cpus_per_task=lambda wildcards, threads: threads,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/growth_report.py"
