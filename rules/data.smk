rule corpus:
    output:
        train="results/data/train.txt",
        val="results/data/val.txt",
        test="results/data/test.txt",
        manifest="results/data/manifest.json",
    log:
        "logs/corpus.log",
    params:
        corpus=canonical(config["corpus"]),
    threads: 1
    resources:
        mem_mb=2048,
        runtime=20,
        cpus_per_task=lambda wildcards, threads: threads,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/build_corpus.py"


rule tokenizer:
    input:
        train="results/data/train.txt",
    output:
        directory("results/tokenizer"),
    log:
        "logs/tokenizer.log",
    params:
        vocab_size=config["tokenizer"]["vocab_size"],
    threads: 1
    resources:
        mem_mb=4096,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/train_tokenizer.py"
