# Supervised fine-tuning after expansion: the base, the dense expansion and DLO over it (docs/methods.md, DLO).


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
    log: "logs/sft/data.log"
    params: data=canonical(config["sft"]["data"])
    resources: **job(2048, 10)
    conda: CONDA_ENV
    script: "../scripts/sft_data.py"


rule sft:
    input:
        model=sft_model,
        data="results/sft/data/train.jsonl",
    output: **run_outputs("results/sft/{variant}/seed{seed}")
    log: "logs/sft/{variant}/seed{seed}.log"
    params:
        train=computed(config["sft"].get("train", {})),
        dlo=lambda wildcards: canonical(config["sft"]["dlo"]) if wildcards.variant == "dlo" else None,
    threads: config["resources"]["train_threads"]
    resources:
        **job(mem_mb(12 * deepest_expansion(), 4096), training_runtime(config["sft"]["train"], deepest_expansion()), gpu=True),
    conda: CONDA_ENV
    script: "../scripts/sft.py"


use rule evaluate as evaluate_sft with:
    input:
        model="results/sft/{variant}/seed{seed}/final",
        **EVAL_INPUTS,
    output: "results/sft/{variant}/seed{seed}/eval.json"
    log: "logs/evaluate_sft/{variant}/seed{seed}.log"


rule sft_report:
    input:
        info=sft_paths("results/sft/{variant}/seed{seed}/info.json"),
        metrics=sft_paths("results/sft/{variant}/seed{seed}/metrics.jsonl"),
        evals=sft_paths("results/sft/{variant}/seed{seed}/eval.json"),
    output:
        md="results/report/sft.md",
        csv=report("results/report/sft.csv", caption="../report/sft_csv.rst", category="SFT and DLO"),
        png=report("results/report/dlo_execution.png", caption="../report/dlo_execution.rst", category="SFT and DLO"),
    log: "logs/sft/report.log"
    params: runs=SFT_RUNS, expansion=config["sft"]["expansion"]
    resources: **job(2048, 10)
    conda: CONDA_ENV
    script: "../scripts/sft_report.py"
