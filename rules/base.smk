if PRETRAIN_BASE:

    rule pretrain_base:
        input:
            tokenizer=TOKENIZER_DIR,
            train="results/data/train.txt",
            val="results/data/val.txt",
        output:
            model=directory("results/base"),
            metrics="results/base_training/metrics.jsonl",
            info="results/base_training/info.json",
        log:
            "logs/pretrain_base.log",
        params:
            model=canonical(config["base"]["model"]),
            train=canonical(config["base"]["train"]),
            seed=config["seed"],
        threads: config["resources"]["base_threads"]
        resources:
            mem_mb=mem_mb(16, 4096),
            runtime=training_runtime(config["base"]["train"]),
            cpus_per_task=lambda wildcards, threads: threads,
            gpu=RES["gpus"],
        conda:
            "../envs/deepen.yaml"
        script:
            "../scripts/pretrain_base.py"
