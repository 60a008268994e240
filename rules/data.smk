rule corpus:
    output: **outputs("corpus")
    log: "logs/corpus.log"
    params: corpus=canonical(config["corpus"])
    threads: 1  # one process reads the source and splits it
    resources: **JOBS.job(2048, 20)
    conda: CONDA_ENV
    script: "../scripts/build_corpus.py"


rule tokenizer:
    input: train=OUTPUTS["corpus"]["train"]
    output: **outputs("tokenizer")
    log: "logs/tokenizer.log"
    params: vocab_size=config["tokenizer"]["vocab_size"]
    resources: **JOBS.job(4096, 30)
    conda: CONDA_ENV
    script: "../scripts/train_tokenizer.py"


# Each split tokenized once: every training and evaluation job reads windows of these files.
rule tokens:
    input:
        text="results/data/{split}.txt",
        tokenizer=TOKENIZER_DIR,
    output: **outputs("tokens")
    log: "logs/tokens/{split}.log"
    params:
        # corpus.max_tokens samples the training split only
        max_tokens=lambda wildcards: config["corpus"]["max_tokens"] if wildcards.split == "train" else None,
        seed=config["corpus"]["seed"],
    wildcard_constraints:
        split="train|val",
    threads: config["resources"]["base_threads"]
    resources: **JOBS.job(2048, 60)
    conda: CONDA_ENV
    script: "../scripts/tokenize_split.py"
