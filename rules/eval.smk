rule task_data:
    input: test="results/data/test.txt"
    output: directory("results/eval/task_data")
    log: "logs/task_data.log"
    params: eval=canonical(config["eval"])
    resources: **job(1024, 10)
    conda: CONDA_ENV
    script: "../scripts/build_task_data.py"


# What every evaluation reads besides its model: the embedded tasks' data and templates.
EVAL_INPUTS = {"task_data": "results/eval/task_data", "templates": task_templates()}


rule evaluate:
    input:
        model="results/cpt/{method}/{freeze}/seed{seed}/final",
        **EVAL_INPUTS,
    output: "results/eval/{method}/{freeze}/seed{seed}.json"
    log: "logs/evaluate/{method}/{freeze}/seed{seed}.log"
    params: eval=EVAL_PARAMS
    threads: config["resources"]["train_threads"]
    resources: **stage_job("evaluate", gpu=True, floor=2048)
    conda: CONDA_ENV
    script: "../scripts/evaluate.py"


# The base and every expanded model before CPT, on the same tasks (eval.step0).
use rule evaluate as evaluate_init with:
    input:
        model=init_model,
        **EVAL_INPUTS,
    output: "results/eval/init/{model}.json"
    log: "logs/evaluate/init/{model}.log"
    wildcard_constraints:
        model=f"base|{MODEL_PATTERN}",


# The fixed val slice every step-0 and CPT evaluation reads, a micro batch per forward pass.
FIXED_SLICE = canonical({**{k: config["cpt"][k] for k in ("seq_len", "eval_tokens")},
                         "batch_size": stage_costs.fixed_slice_batch(config["cpt"])})


rule init_loss:
    input:
        model=init_model,
        val="results/tokens/val.bin",
    output: "results/init/{model}.json"
    log: "logs/init_loss/{model}.log"
    params:
        eval=FIXED_SLICE,
        device=DEVICE,
    wildcard_constraints:
        model=f"base|{MODEL_PATTERN}",
    threads: config["resources"]["train_threads"]
    resources: **stage_job("init_loss", gpu=True, floor=2048)
    conda: CONDA_ENV
    script: "../scripts/init_loss.py"


# Seam diagnostics (deepen/evaluate/seams.py) of each method's expanded model (its first seed's), before CPT and after each
# of its CPT rows' first seed.
rule seams:
    input:
        model="results/models/{model}",
        plan="results/layers/{model}/plan.json",
        trained=lambda wildcards: list(trained_rows(wildcards.model).values()),
        val="results/tokens/val.bin",
    output: "results/seams/{model}.json"
    log: "logs/seams/{model}.log"
    params:
        eval={**FIXED_SLICE, "eval_tokens": config["report"]["seam_tokens"] or config["cpt"]["eval_tokens"]},
        freezes=lambda wildcards: list(trained_rows(wildcards.model)),
        device=DEVICE,
    threads: config["resources"]["train_threads"]
    resources: **stage_job("seams", gpu=True, floor=2048)
    conda: CONDA_ENV
    script: "../scripts/seams.py"
