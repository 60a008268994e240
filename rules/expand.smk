rule extract_weights:
    input: base=BASE_DIR
    output: expand("results/weights/{matrix}.safetensors", matrix=ARCH.matrices)
    log: "logs/extract_weights.log"
    params: matrices=ARCH.matrices
    resources: **stage_job("extract_weights")
    conda: CONDA_ENV
    script: "../scripts/extract_weights.py"


rule generate_layers:
    input: unpack(generation_inputs)
    output:
        new_layers="results/layers/{model}/new_layers.safetensors",
        plan="results/layers/{model}/plan.json",
    log: "logs/generate_layers/{model}.log"
    params:
        options=generation_params,
        device=DEVICE,
    resources: **stage_job("generate_layers", gpu=True)
    conda: CONDA_ENV
    script: "../scripts/generate_layers.py"


rule reconstruct:
    input:
        base=lambda wildcards: method_base_dir(wildcards.model.partition("/")[0]),
        tokenizer=TOKENIZER_DIR,
        plan="results/layers/{model}/plan.json",
        new_layers="results/layers/{model}/new_layers.safetensors",
    output: directory("results/models/{model}")
    log: "logs/reconstruct/{model}.log"
    params: max_shard_mb=config["reconstruct"]["max_shard_mb"]
    resources: **stage_job("reconstruct")
    conda: CONDA_ENV
    script: "../scripts/reconstruct.py"
