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
        runtime=60,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/svd.py"


rule predictor:
    input:
        blocks="results/svd/{matrix}.safetensors",
    output:
        model="results/predictor/{matrix}.pt",
        curve="results/predictor/{matrix}.json",
    log:
        "logs/predictor/{matrix}.log",
    params:
        key="V",
        train=lambda wildcards: {**config["predictor"], "seed": config["seed"]},
    threads: 1
    resources:
        mem_mb=mem_mb(0.5),
        runtime=120,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/predictor.py"


rule predictor_nosvd:
    input:
        blocks="results/weights/{matrix}.safetensors",
    output:
        model="results/predictor_nosvd/{matrix}.pt",
        curve="results/predictor_nosvd/{matrix}.json",
    log:
        "logs/predictor_nosvd/{matrix}.log",
    params:
        key="stack",
        train=lambda wildcards: {**config["predictor"], "seed": config["seed"]},
    threads: 1
    resources:
        mem_mb=mem_mb(0.5),
        runtime=120,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/predictor.py"
