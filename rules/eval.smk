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
        templates=expand("config/tasks/{task}.yaml", task=config["eval"]["tasks"]),
    output:
        "results/eval/{method}/{freeze}/seed{seed}.json",
    log:
        "logs/evaluate/{method}/{freeze}/seed{seed}.log",
    params:
        tasks=config["eval"]["tasks"],
        batch_size=config["eval"]["batch_size"],
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
