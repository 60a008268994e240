rule svd:
    input: weights=JOBS.outputs("extract_weights")["weights"]
    output: **outputs("svd")
    log: "logs/svd/{matrix}.log"
    params: **JOBS.rule_params("svd")
    resources: **JOBS.resources("svd")
    conda: CONDA_ENV
    script: "../scripts/svd.py"


# LESA's layer predictors, one per matrix type: on the SVD blocks (results/predictor) or, the ablation, on raw
# weight rows (results/predictor_nosvd).
rule predictor:
    input: blocks=lambda wildcards: JOBS.space_blocks(PREDICTOR_SPACES[wildcards.predictor])
    output: **per_matrix("predictor", FAMILY.linear)
    log: "logs/{predictor}.log"
    params: **JOBS.rule_params("predictor")
    wildcard_constraints:
        predictor="|".join(PREDICTOR_SPACES),
    resources: **JOBS.resources("predictor")
    conda: CONDA_ENV
    script: "../scripts/predictor.py"


rule predictor_heldout:
    input: blocks=lambda wildcards: JOBS.space_blocks(wildcards.space)
    output: **per_matrix("predictor_heldout", FAMILY.linear)
    log: "logs/predictor_heldout/{space}.log"
    params: **JOBS.rule_params("predictor_heldout")
    resources: **JOBS.resources("predictor_heldout")
    conda: CONDA_ENV
    script: "../scripts/predictor_heldout.py"
