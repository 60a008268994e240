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
    params: **JOBS.rule_params("sft_data")
    resources: **JOBS.resources("sft_data")
    conda: CONDA_ENV
    script: "../scripts/sft_data.py"


rule sft:
    input:
        model=lambda wildcards: JOBS.sft_model(wildcards.variant, wildcards.seed),
        data=OUTPUTS["sft_data"]["train"],
    output: **outputs("sft")
    log: "logs/sft/{variant}/seed{seed}.log"
    params: **JOBS.rule_params("sft")
    threads: config["resources"]["train_threads"]
    resources: **JOBS.resources("sft")
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
    params: **JOBS.rule_params("sft_report")
    resources: **JOBS.resources("sft_report")
    conda: CONDA_ENV
    script: "../scripts/sft_report.py"
