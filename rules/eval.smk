rule task_data:
    input:
        test=OUTPUTS["corpus"]["test"],
        tokenizer=TOKENIZER_DIR,
    output: **outputs("task_data")
    log: "logs/task_data.log"
    params: **JOBS.rule_params("task_data")
    resources: **JOBS.resources("task_data")
    conda: CONDA_ENV
    script: "../scripts/build_task_data.py"


# What every evaluation reads besides its model: the embedded tasks' data and templates.
EVAL_INPUTS = {"task_data": OUTPUTS["task_data"]["data"], "templates": JOBS.task_templates()}


rule evaluate:
    input:
        model=OUTPUTS["continual_pretrain"]["final"],
        **EVAL_INPUTS,
    output: **outputs("evaluate")
    log: "logs/evaluate/{method}/{freeze}/seed{seed}.log"
    params: **JOBS.rule_params("evaluate")
    threads: config["resources"]["train_threads"]
    resources: **JOBS.resources("evaluate")
    conda: CONDA_ENV
    script: "../scripts/evaluate.py"


# The base and every expanded model before CPT, on the same tasks (eval.step0).
use rule evaluate as evaluate_init with:
    input:
        model=lambda wildcards: JOBS.init_model(wildcards.model),
        **EVAL_INPUTS,
    output: **outputs("evaluate_init")
    log: "logs/evaluate/init/{model}.log"
    wildcard_constraints:
        model=f"base|{JOBS.model_pattern}",


rule init_loss:
    input:
        model=lambda wildcards: JOBS.init_model(wildcards.model),
        val=TOKEN_FILES["val"],
    output: **outputs("init_loss")
    log: "logs/init_loss/{model}.log"
    params: **JOBS.rule_params("init_loss")
    wildcard_constraints:
        model=f"base|{JOBS.model_pattern}",
    threads: config["resources"]["train_threads"]
    resources: **JOBS.resources("init_loss")
    conda: CONDA_ENV
    script: "../scripts/init_loss.py"


# Seam diagnostics (deepen/evaluate/seams.py) of each method's expanded model (its first seed's), before CPT and
# after each of its CPT rows' first seed.
rule seams:
    input:
        model=OUTPUTS["reconstruct"]["model"],
        plan=OUTPUTS["generate_layers"]["plan"],
        trained=lambda wildcards: list(JOBS.trained_rows(wildcards.model).values()),
        val=TOKEN_FILES["val"],
    output: **outputs("seams")
    log: "logs/seams/{model}.log"
    params: **JOBS.rule_params("seams")
    threads: config["resources"]["train_threads"]
    resources: **JOBS.resources("seams")
    conda: CONDA_ENV
    script: "../scripts/seams.py"


# The base's layer profile (deepen/evaluate/seams.py): each layer's cosine and the val-loss change when it is skipped,
# measured once; the methods with an `auto` placement place their new layers by it.
rule layer_profile:
    input:
        model=BASE_DIR,
        val=TOKEN_FILES["val"],
    output: **outputs("layer_profile")
    log: "logs/layer_profile.log"
    params: **JOBS.rule_params("layer_profile")
    threads: config["resources"]["train_threads"]
    resources: **JOBS.resources("layer_profile")
    conda: CONDA_ENV
    script: "../scripts/layer_profile.py"


# A few fixed prompts answered greedily by every model at step 0 ({stage}: init) and by each row's seed-0 model
# after CPT (cpt): in summary.md and the exported models' cards.
rule samples:
    input: models=lambda wildcards: list(JOBS.sample_models(wildcards.stage).values())
    output: **outputs("samples")
    log: "logs/samples/{stage}.log"
    params: **JOBS.rule_params("samples")
    wildcard_constraints:
        stage="init|cpt",
    threads: config["resources"]["train_threads"]
    resources: **JOBS.resources("samples")
    conda: CONDA_ENV
    script: "../scripts/samples.py"
