rule corpus:
    output: **outputs("corpus")
    log: "logs/corpus.log"
    params: **JOBS.rule_params("corpus")
    threads: 1  # one process reads the source and splits it
    resources: **JOBS.resources("corpus")
    conda: CONDA_ENV
    script: "../scripts/build_corpus.py"


rule tokenizer:
    input: train=OUTPUTS["corpus"]["train"]
    output: **outputs("tokenizer")
    log: "logs/tokenizer.log"
    params: **JOBS.rule_params("tokenizer")
    resources: **JOBS.resources("tokenizer")
    conda: CONDA_ENV
    script: "../scripts/train_tokenizer.py"


# Each split tokenized once: every training and evaluation job reads windows of these files.
rule tokens:
    input:
        text="results/data/{split}.txt",
        tokenizer=TOKENIZER_DIR,
    output: **outputs("tokens")
    log: "logs/tokens/{split}.log"
    params: **JOBS.rule_params("tokens")
    wildcard_constraints:
        split="train|val",
    threads: config["resources"]["base_threads"]
    resources: **JOBS.resources("tokens")
    conda: CONDA_ENV
    script: "../scripts/tokenize_split.py"
