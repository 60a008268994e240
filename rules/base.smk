if JOBS.pretrain_base:

    rule pretrain_base:
        input:
            tokenizer=TOKENIZER_DIR,
            **TOKEN_FILES,
        output: **outputs("pretrain_base")
        log: "logs/pretrain_base.log"
        params:
            model=canonical(config["base"]["model"]),
            train=computed(config["base"]["train"]),
            seed=config["seed"],
        threads: config["resources"]["base_threads"]
        resources: **JOBS.job(JOBS.mem_mb(16, 4096), JOBS.training_runtime(config["base"]["train"]), gpu=True)
        conda: CONDA_ENV
        script: "../scripts/pretrain_base.py"


if JOBS.import_base:

    localrules:
        base_info,

    rule import_base:
        input: gguf=JOBS.gguf_file
        output: **outputs("import_base")
        log: "logs/import_base.log"
        params:
            dtype=config["base_model"]["dtype"],
            max_shard_mb=config["reconstruct"]["max_shard_mb"],
        resources: **JOBS.job(JOBS.mem_mb(0.2), JOBS.streaming_runtime(3))
        conda: CONDA_ENV
        script: "../scripts/import_base.py"

    rule base_info:
        input:
            base="results/base",
            init="results/init/base.json",
        output: **outputs("base_info")
        log: "logs/base_info.log"
        resources: **JOBS.job(1024, 10)
        conda: CONDA_ENV
        script: "../scripts/base_info.py"
