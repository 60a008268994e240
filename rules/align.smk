# The aligned base: the base with every layer's heads and neurons re-ordered to match its lower neighbour's
# (deepen/expand/align.py), and the artifacts a method with `align: true` reads on it, made by the base's own rules
# under results/aligned/.
rule align_base:
    input: base=BASE_DIR
    output: directory(ALIGNED_BASE_DIR)
    log: "logs/aligned/align_base.log"
    params: device=DEVICE
    resources: **stage_job("align_base", gpu=True)
    conda: CONDA_ENV
    script: "../scripts/align_base.py"


use rule extract_weights as extract_weights_aligned with:
    input: base=ALIGNED_BASE_DIR
    output: expand(aligned_path("results/weights/{matrix}.safetensors"), matrix=ARCH.matrices)
    log: "logs/aligned/extract_weights.log"


use rule svd as svd_aligned with:
    input: weights=aligned_path("results/weights/{matrix}.safetensors")
    output:
        svd=aligned_path("results/svd/{matrix}.safetensors"),
        report=aligned_path("results/svd/{matrix}.json"),
    log: "logs/aligned/svd/{matrix}.log"


use rule predictor as predictor_aligned with:
    input: blocks=lambda wildcards: space_blocks(PREDICTOR_SPACES[wildcards.predictor], aligned=True)
    output:
        models=expand(aligned_path("results/{{predictor}}/{matrix}.pt"), matrix=LESA_MATRICES),
        curves=expand(aligned_path("results/{{predictor}}/{matrix}.json"), matrix=LESA_MATRICES),
    log: "logs/aligned/{predictor}.log"


use rule predictor_heldout as predictor_heldout_aligned with:
    input: blocks=lambda wildcards: space_blocks(wildcards.space, aligned=True)
    output: fits=expand(aligned_path("results/predictor_heldout/{{space}}/{matrix}.json"), matrix=LESA_MATRICES)
    log: "logs/aligned/predictor_heldout/{space}.log"


use rule svd_continuity as svd_continuity_aligned with:
    input: svd=expand(aligned_path("results/svd/{matrix}.safetensors"), matrix=config["report"]["continuity_matrices"])
    output:
        png=report("results/report/svd_continuity_aligned.png", caption="../report/svd_continuity_aligned.rst",
                   category="LESA"),
        ratios="results/report/svd_continuity_aligned.json",
    log: "logs/aligned/svd_continuity.log"
