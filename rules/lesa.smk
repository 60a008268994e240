rule svd:
    input: weights=JOBS.outputs("extract_weights")["weights"]
    output: **outputs("svd")
    log: "logs/svd/{matrix}.log"
    params:
        matrix="{matrix}",
        device=DEVICE,
    resources: **JOBS.stage_job("svd", gpu=True)
    conda: CONDA_ENV
    script: "../scripts/svd.py"


# LESA's layer predictors, one per matrix type: on the SVD blocks (results/predictor) or, the ablation, on raw
# weight rows (results/predictor_nosvd).
rule predictor:
    input: blocks=lambda wildcards: JOBS.space_blocks(PREDICTOR_SPACES[wildcards.predictor])
    output: **per_matrix("predictor", FAMILY.linear)
    log: "logs/{predictor}.log"
    params:
        key=lambda wildcards: JOBS.space_key(PREDICTOR_SPACES[wildcards.predictor]),
        train=JOBS.predictor_train,
        device=DEVICE,
    wildcard_constraints:
        predictor="|".join(PREDICTOR_SPACES),
    resources: **JOBS.stage_job("predictor", gpu=True)
    conda: CONDA_ENV
    script: "../scripts/predictor.py"


rule predictor_heldout:
    input: blocks=lambda wildcards: JOBS.space_blocks(wildcards.space)
    output: **per_matrix("predictor_heldout", FAMILY.linear)
    log: "logs/predictor_heldout/{space}.log"
    params:
        key=lambda wildcards: JOBS.space_key(wildcards.space),
        train=JOBS.predictor_train,
        layers=config["predictor"]["heldout_layers"],
        device=DEVICE,
    resources: **JOBS.stage_job("predictor_heldout", gpu=True)
    conda: CONDA_ENV
    script: "../scripts/predictor_heldout.py"
