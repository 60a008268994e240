rule continual_pretrain:
    input:
        model=cpt_model,
        train="results/data/train.txt",
        val="results/data/val.txt",
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
        mem_mb=mem_mb(24 * config["cpt"]["nproc"], 4096),
        runtime=480,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/continual_pretrain.py"
