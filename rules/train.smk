rule continual_pretrain:
    input:
        model=cpt_model,
        train="results/tokens/train.bin",
        val="results/tokens/val.bin",
    output: **run_outputs("results/cpt/{method}/{freeze}/seed{seed}")
    log: "logs/continual_pretrain/{method}/{freeze}/seed{seed}.log"
    params: train=cpt_params
    threads: max(config["resources"]["train_threads"], config["cpt"]["nproc"])
    resources:
        # several nodes: GPUs per node, through multinode_resources
        **stage_job("continual_pretrain", gpu=config["cpt"]["nodes"] == 1, processes=config["cpt"]["nproc"],
                    job_nodes=config["cpt"]["nodes"], floor=4096 * config["cpt"]["nproc"], **multinode_resources()),
    conda: CONDA_ENV
    script: "../scripts/continual_pretrain.py"
