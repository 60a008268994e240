rule task_data:
    input:
        test="results/data/test.txt",
    output:
        directory("results/eval/task_data"),
    log:
        "logs/task_data.log",
    params:
        eval=canonical(config["eval"]),
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
        cpus_per_task=lambda wildcards, threads: threads,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/build_task_data.py"


rule evaluate:
    input:
        model="results/cpt/{method}/{freeze}/seed{seed}/final",
        task_data="results/eval/task_data",
        templates=task_templates(),
    output:
        "results/eval/{method}/{freeze}/seed{seed}.json",
    log:
        "logs/evaluate/{method}/{freeze}/seed{seed}.log",
    params:
        eval=EVAL_PARAMS,
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=mem_mb(4 * deepest_expansion(), 2048),
        runtime=evaluation_runtime(),
        cpus_per_task=lambda wildcards, threads: threads,
        gpu=RES["gpus"],
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/evaluate.py"


rule init_loss:
    input:
        model=init_model,
        val="results/tokens/val.bin",
    output:
        "results/init/{model}.json",
    log:
        "logs/init_loss/{model}.log",
    params:
        eval=canonical({k: config["cpt"][k] for k in ("seq_len", "eval_tokens", "batch_size")}),
    wildcard_constraints:
        model=f"base|{MODEL_PATTERN}",
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=mem_mb(4 * deepest_expansion(), 2048),
        runtime=evaluation_runtime(),
        cpus_per_task=lambda wildcards, threads: threads,
        gpu=RES["gpus"],
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/init_loss.py"
