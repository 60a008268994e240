# Supervised fine-tuning after expansion: the base, the dense expansion and DLO over it (docs/methods.md, DLO).


# Text to a few thousand examples, and a table and a plot of small files: not worth a cluster job.
localrules:
    sft_data,
    sft_report,


rule sft_data:
    input:
        train=OUTPUTS["corpus"]["train"],
        test=OUTPUTS["corpus"]["test"],
    output: **outputs("sft_data")
    log: "logs/sft/data.log"
    params: data=canonical(config["sft"]["data"])
    resources: **JOBS.job(2048, 10)
    conda: CONDA_ENV
    script: "../scripts/sft_data.py"


rule sft:
    input:
        model=lambda wildcards: JOBS.sft_model(wildcards.variant, wildcards.seed),
        data=OUTPUTS["sft_data"]["train"],
    output: **outputs("sft")
    log: "logs/sft/{variant}/seed{seed}.log"
    params:
        train=computed(config["sft"].get("train", {})),
        dlo=lambda wildcards: canonical(config["sft"]["dlo"]) if wildcards.variant == "dlo" else None,
    threads: config["resources"]["train_threads"]
    resources:
        **JOBS.job(JOBS.mem_mb(12 * JOBS.deepest_expansion(), 4096),
                   JOBS.training_runtime(config["sft"]["train"], JOBS.deepest_expansion()), gpu=True),
    conda: CONDA_ENV
    script: "../scripts/sft.py"


use rule evaluate as evaluate_sft with:
    input: model=OUTPUTS["sft"]["final"], **EVAL_INPUTS
    output: **outputs("evaluate_sft")
    log: "logs/evaluate_sft/{variant}/seed{seed}.log"


rule sft_report:
    input:
        info=JOBS.sft_paths(OUTPUTS["sft"]["info"]),
        metrics=JOBS.sft_paths(OUTPUTS["sft"]["metrics"]),
        evals=JOBS.sft_paths(OUTPUTS["evaluate_sft"]["eval"]),
    output:
        md=OUTPUTS["sft_report"]["md"],
        csv=report(OUTPUTS["sft_report"]["csv"], caption="../report/sft_csv.rst", category="SFT and DLO"),
        png=report(OUTPUTS["sft_report"]["png"], caption="../report/dlo_execution.rst", category="SFT and DLO"),
    log: "logs/sft/report.log"
    params: runs=JOBS.sft_runs, expansion=config["sft"]["expansion"]
    resources: **JOBS.job(2048, 10)
    conda: CONDA_ENV
    script: "../scripts/sft_report.py"
