rule corpus:
    output:
        train="results/data/train.txt",
        val="results/data/val.txt",
        test="results/data/test.txt",
        manifest="results/data/manifest.json",
    log: "logs/corpus.log"
    params: corpus=canonical(config["corpus"])
    resources: **job(2048, 20)
    conda: CONDA_ENV
    script: "../scripts/build_corpus.py"


rule tokenizer:
    input: train="results/data/train.txt"
    output: directory("results/tokenizer")
    log: "logs/tokenizer.log"
    params: vocab_size=config["tokenizer"]["vocab_size"]
    resources: **job(4096, 30)
    conda: CONDA_ENV
    script: "../scripts/train_tokenizer.py"


# Each split tokenized once: every training and evaluation job reads windows of these files.
rule tokens:
    input:
        text="results/data/{split}.txt",
        tokenizer=TOKENIZER_DIR,
    output:
        tokens="results/tokens/{split}.bin",
        info="results/tokens/{split}.json",
    log: "logs/tokens/{split}.log"
    params:
        # corpus.max_tokens samples the training split only
        max_tokens=lambda wildcards: config["corpus"]["max_tokens"] if wildcards.split == "train" else None,
        seed=config["corpus"]["seed"],
    wildcard_constraints:
        split="train|val",
    threads: config["resources"]["base_threads"]
    resources: **job(2048, 60)
    conda: CONDA_ENV
    script: "../scripts/tokenize_split.py"
