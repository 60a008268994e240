rule svd:
    input: weights="results/weights/{matrix}.safetensors"
    output:
        svd="results/svd/{matrix}.safetensors",
        report="results/svd/{matrix}.json",
    log: "logs/svd/{matrix}.log"
    params:
        matrix="{matrix}",
        device=DEVICE,
    resources: **stage_job("svd", gpu=True)
    conda: CONDA_ENV
    script: "../scripts/svd.py"


# LESA's layer predictors, one per matrix type: on the SVD blocks (results/predictor) or, the ablation, on raw
# weight rows (results/predictor_nosvd).
rule predictor:
    input: blocks=lambda wildcards: space_blocks(PREDICTOR_SPACES[wildcards.predictor])
    output:
        models=expand("results/{{predictor}}/{matrix}.pt", matrix=LESA_MATRICES),
        curves=expand("results/{{predictor}}/{matrix}.json", matrix=LESA_MATRICES),
    log: "logs/{predictor}.log"
    params:
        key=lambda wildcards: space_key(PREDICTOR_SPACES[wildcards.predictor]),
        train=PREDICTOR_TRAIN,
        device=DEVICE,
    wildcard_constraints:
        predictor="|".join(PREDICTOR_SPACES),
    resources: **stage_job("predictor", gpu=True)
    conda: CONDA_ENV
    script: "../scripts/predictor.py"


rule predictor_heldout:
    input: blocks=lambda wildcards: space_blocks(wildcards.space)
    output: fits=expand("results/predictor_heldout/{{space}}/{matrix}.json", matrix=LESA_MATRICES)
    log: "logs/predictor_heldout/{space}.log"
    params:
        key=lambda wildcards: space_key(wildcards.space),
        train=PREDICTOR_TRAIN,
        layers=config["predictor"]["heldout_layers"],
        device=DEVICE,
    resources: **stage_job("predictor_heldout", gpu=True)
    conda: CONDA_ENV
    script: "../scripts/predictor_heldout.py"
