rule continual_pretrain:
    input:
        model=lambda wildcards: JOBS.cpt_model(wildcards.method, wildcards.seed),
        **TOKEN_FILES,
    output: **outputs("continual_pretrain")
    log: "logs/continual_pretrain/{method}/{freeze}/seed{seed}.log"
    params: cpt=lambda wildcards: JOBS.cpt_train(wildcards.freeze, wildcards.seed)
    threads: max(config["resources"]["train_threads"], config["cpt"]["nproc"])
    resources: **JOBS.cpt_resources()
    conda: CONDA_ENV
    script: "../scripts/continual_pretrain.py"
