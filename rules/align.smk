# The aligned base: the base with every layer's heads and neurons re-ordered to match its lower neighbour's
# (deepen/expand/align.py), and the artifacts a method with `align: true` reads on it, made by the base's own rules
# under results/aligned/.
rule align_base:
    input: base=BASE_DIR
    output: **outputs("align_base")
    log: "logs/aligned/align_base.log"
    params: **JOBS.rule_params("align_base")
    resources: **JOBS.resources("align_base")
    conda: CONDA_ENV
    script: "../scripts/align_base.py"


use rule extract_weights as extract_weights_aligned with:
    input: base=JOBS.aligned_base_dir
    output: **per_matrix("extract_weights", FAMILY.matrices, aligned=True)
    log: "logs/aligned/extract_weights.log"


use rule svd as svd_aligned with:
    input: weights=JOBS.outputs("extract_weights", aligned=True)["weights"]
    output: **outputs("svd", aligned=True)
    log: "logs/aligned/svd/{matrix}.log"


use rule predictor as predictor_aligned with:
    input: blocks=lambda wildcards: JOBS.space_blocks(PREDICTOR_SPACES[wildcards.predictor], aligned=True)
    output: **per_matrix("predictor", FAMILY.linear, aligned=True)
    log: "logs/aligned/{predictor}.log"


use rule predictor_heldout as predictor_heldout_aligned with:
    input: blocks=lambda wildcards: JOBS.space_blocks(wildcards.space, aligned=True)
    output: **per_matrix("predictor_heldout", FAMILY.linear, aligned=True)
    log: "logs/aligned/predictor_heldout/{space}.log"


use rule svd_continuity as svd_continuity_aligned with:
    input: svd=expand(JOBS.outputs("svd", aligned=True)["svd"], matrix=config["report"]["continuity_matrices"])
    output:
        png=report(JOBS.outputs("svd_continuity", aligned=True)["png"], caption="../report/svd_continuity_aligned.rst",
                   category="LESA"),
        ratios=JOBS.outputs("svd_continuity", aligned=True)["ratios"],
    log: "logs/aligned/svd_continuity.log"
