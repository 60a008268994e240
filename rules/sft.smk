# Supervised fine-tuning after expansion: the base, the dense expansion and DLO over it (README, DLO).


# Text to a few thousand examples, and a table and a plot of small files: not worth a cluster job.
localrules:
    sft_data,
    sft_report,


rule sft_data:
    input:
        train="results/data/train.txt",
        test="results/data/test.txt",
    output:
        train="results/sft/data/train.jsonl",
        heldout="results/sft/data/heldout.jsonl",
        counts="results/sft/data/counts.json",
    log:
        "logs/sft/data.log",
    params:
        data=canonical(config["sft"]["data"]),
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
        cpus_per_task=lambda wildcards, threads: threads,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/sft_data.py"


rule sft:
    input:
        model=sft_model,
        data="results/sft/data/train.jsonl",
    output:
        metrics="results/sft/{row}/seed{seed}/metrics.jsonl",
        info="results/sft/{row}/seed{seed}/info.json",
        final=directory("results/sft/{row}/seed{seed}/final"),
    log:
        "logs/sft/{row}/seed{seed}.log",
    params:
        train=canonical(config["sft"].get("train", {})),
        dlo=lambda wildcards: canonical(config["sft"]["dlo"]) if wildcards.row == "dlo" else None,
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=mem_mb(12 * deepest_expansion(), 4096),
        runtime=training_runtime(config["sft"]["train"], deepest_expansion()),
        cpus_per_task=lambda wildcards, threads: threads,
        gpu=RES["gpus"],
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/sft.py"


rule evaluate_sft:
    input:
        model="results/sft/{row}/seed{seed}/final",
        task_data="results/eval/task_data",
        templates=task_templates(),
    output:
        "results/sft/{row}/seed{seed}/eval.json",
    log:
        "logs/evaluate_sft/{row}/seed{seed}.log",
    params:
        eval=EVAL_PARAMS,
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=mem_mb(4 * deepest_expansion(), 2048),
        runtime=evaluation_runtime(),
        cpus_per_task=lambda wildcards, threads: threads,
        gpu=RES["gpus"],
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/evaluate.py"


rule sft_report:
    input:
        info=sft_paths("results/sft/{row}/seed{seed}/info.json"),
        metrics=sft_paths("results/sft/{row}/seed{seed}/metrics.jsonl"),
        evals=sft_paths("results/sft/{row}/seed{seed}/eval.json"),
    output:
        md="results/report/sft.md",
        csv=report("results/report/sft.csv", category="SFT and DLO"),
        png=report("results/report/dlo_execution.png", category="SFT and DLO"),
    log:
        "logs/sft/report.log",
    params:
        runs=SFT_RUNS,
        expansion=config["sft"]["expansion"],
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
        cpus_per_task=lambda wildcards, threads: threads,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/sft_report.py"
