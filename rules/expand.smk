rule extract_weights:
    input: base=BASE_DIR
    output: **per_matrix("extract_weights", FAMILY.matrices)
    log: "logs/extract_weights.log"
    params: **JOBS.rule_params("extract_weights")
    resources: **JOBS.resources("extract_weights")
    conda: CONDA_ENV
    script: "../scripts/extract_weights.py"


rule generate_layers:
    input: unpack(lambda wildcards: JOBS.generation_inputs(wildcards.model))
    output: **outputs("generate_layers")
    log: "logs/generate_layers/{model}.log"
    params: **JOBS.rule_params("generate_layers")
    resources: **JOBS.resources("generate_layers")
    conda: CONDA_ENV
    script: "../scripts/generate_layers.py"


rule reconstruct:
    input:
        base=lambda wildcards: JOBS.method_base_dir(wildcards.model.partition("/")[0]),
        tokenizer=TOKENIZER_DIR,
        **OUTPUTS["generate_layers"],
    output: **outputs("reconstruct")
    log: "logs/reconstruct/{model}.log"
    params: **JOBS.rule_params("reconstruct")
    resources: **JOBS.resources("reconstruct")
    conda: CONDA_ENV
    script: "../scripts/reconstruct.py"
