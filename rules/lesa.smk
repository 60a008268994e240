rule svd:
    input:
        weights="results/weights/{matrix}.safetensors",
    output:
        svd="results/svd/{matrix}.safetensors",
        report="results/svd/{matrix}.json",
    log:
        "logs/svd/{matrix}.log",
    params:
        matrix="{matrix}",
    threads: 1
    resources:
        mem_mb=mem_mb(0.5),
        runtime=streaming_runtime(3),
        cpus_per_task=lambda wildcards, threads: threads,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/svd.py"


rule predictor:
    input:
        blocks=expand("results/svd/{matrix}.safetensors", matrix=LESA_MATRICES),
    output:
        models=expand("results/predictor/{matrix}.pt", matrix=LESA_MATRICES),
        curves=expand("results/predictor/{matrix}.json", matrix=LESA_MATRICES),
    log:
        "logs/predictor.log",
    params:
        key="V",
        train=PREDICTOR_TRAIN,
    threads: 1
    resources:
        mem_mb=mem_mb(0.5),
        runtime=predictor_runtime(),
        cpus_per_task=lambda wildcards, threads: threads,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/predictor.py"


rule predictor_nosvd:
    input:
        blocks=expand("results/weights/{matrix}.safetensors", matrix=LESA_MATRICES),
    output:
        models=expand("results/predictor_nosvd/{matrix}.pt", matrix=LESA_MATRICES),
        curves=expand("results/predictor_nosvd/{matrix}.json", matrix=LESA_MATRICES),
    log:
        "logs/predictor_nosvd.log",
    params:
        key="stack",
        train=PREDICTOR_TRAIN,
    threads: 1
    resources:
        mem_mb=mem_mb(0.5),
        runtime=predictor_runtime(),
        cpus_per_task=lambda wildcards, threads: threads,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/predictor.py"


rule predictor_heldout:
    input:
        blocks=heldout_blocks,
    output:
        fits=expand("results/predictor_heldout/{{space}}/{matrix}.json", matrix=LESA_MATRICES),
    log:
        "logs/predictor_heldout/{space}.log",
    params:
        key=lambda wildcards: "V" if wildcards.space == "svd" else "stack",
        train=PREDICTOR_TRAIN,
        layers=config["predictor"]["heldout_layers"],
    threads: 1
    resources:
        mem_mb=mem_mb(0.5),
        runtime=predictor_runtime(len(config["predictor"]["heldout_layers"] or [0])),
        cpus_per_task=lambda wildcards, threads: threads,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/predictor_heldout.py"
