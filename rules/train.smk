rule continual_pretrain:
    input:
        model=lambda wildcards: JOBS.cpt_model(wildcards.method, wildcards.seed),
        **TOKEN_FILES,
    output: **outputs("continual_pretrain")
    log: "logs/continual_pretrain/{method}/{freeze}/seed{seed}.log"
    params: **JOBS.rule_params("continual_pretrain")
    threads: max(config["resources"]["train_threads"], config["cpt"]["nproc"])
    resources: **JOBS.resources("continual_pretrain")
    conda: CONDA_ENV
    script: "../scripts/continual_pretrain.py"
