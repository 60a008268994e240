if JOBS.pretrain_base:

    rule pretrain_base:
        input:
            tokenizer=TOKENIZER_DIR,
            **TOKEN_FILES,
        output: **outputs("pretrain_base")
        log: "logs/pretrain_base.log"
        params: **JOBS.rule_params("pretrain_base")
        threads: config["resources"]["base_threads"]
        resources: **JOBS.resources("pretrain_base")
        conda: CONDA_ENV
        script: "../scripts/pretrain_base.py"


if JOBS.import_base:

    localrules:
        base_info,

    rule import_base:
        input: gguf=JOBS.gguf_file
        output: **outputs("import_base")
        log: "logs/import_base.log"
        params: **JOBS.rule_params("import_base")
        resources: **JOBS.resources("import_base")
        conda: CONDA_ENV
        script: "../scripts/import_base.py"

    rule base_info:
        input:
            base="results/base",
            init="results/init/base.json",
        output: **outputs("base_info")
        log: "logs/base_info.log"
        resources: **JOBS.resources("base_info")
        conda: CONDA_ENV
        script: "../scripts/base_info.py"
