rule continual_pretrain:
    input:
        model=cpt_model,
        train="results/tokens/train.bin",
        val="results/tokens/val.bin",
    output:
        metrics="results/cpt/{method}/{freeze}/seed{seed}/metrics.jsonl",
        info="results/cpt/{method}/{freeze}/seed{seed}/info.json",
        final=directory("results/cpt/{method}/{freeze}/seed{seed}/final"),
    log:
        "logs/continual_pretrain/{method}/{freeze}/seed{seed}.log",
    params:
        train=cpt_params,
    threads: max(config["resources"]["train_threads"], config["cpt"]["nproc"])
    resources:
        mem_mb=mem_mb(12 * deepest_expansion() * config["cpt"]["nproc"], 4096),
        runtime=training_runtime(config["cpt"], deepest_expansion(), config["cpt"]["nproc"]),
        cpus_per_task=lambda wildcards, threads: threads,
        gpu=RES["gpus"] if config["cpt"]["nodes"] == 1 else 0,
        **multinode_resources(),
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/continual_pretrain.py"
