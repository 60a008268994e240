if PRETRAIN_BASE:

    rule pretrain_base:
        input:
            tokenizer=TOKENIZER_DIR,
            train="results/tokens/train.bin",
            val="results/tokens/val.bin",
        output:
            model=directory("results/base"),
            metrics="results/base_training/metrics.jsonl",
            info="results/base_training/info.json",
        log: "logs/pretrain_base.log"
        params:
            model=canonical(config["base"]["model"]),
            train=computed(config["base"]["train"]),
            seed=config["seed"],
        threads: config["resources"]["base_threads"]
        resources: **job(mem_mb(16, 4096), training_runtime(config["base"]["train"]), gpu=True)
        conda: CONDA_ENV
        script: "../scripts/pretrain_base.py"


if IMPORT_BASE:

    localrules:
        base_info,

    rule import_base:
        input: gguf=GGUF_FILE
        output: directory("results/base")
        log: "logs/import_base.log"
        params:
            dtype=config["base_model"]["dtype"],
            max_shard_mb=config["reconstruct"]["max_shard_mb"],
        resources: **job(mem_mb(0.2), streaming_runtime(3))
        conda: CONDA_ENV
        script: "../scripts/import_base.py"

    rule base_info:
        input:
            base="results/base",
            init="results/init/base.json",
        output: "results/base_import/info.json"
        log: "logs/base_info.log"
        resources: **job(1024, 10)
        conda: CONDA_ENV
        script: "../scripts/base_info.py"
