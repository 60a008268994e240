rule report:
    input:
        unpack(report_extras),
        metrics=expand("results/cpt/{row}/metrics.jsonl", row=ROWS),
        info=expand("results/cpt/{row}/info.json", row=ROWS),
        evals=expand("results/eval/{row}.json", row=ROWS),
        val="results/data/val.txt",
    output:
        csv=report("results/report/summary.csv", category="Summary"),
        md=report("results/report/summary.md", category="Summary"),
        curves=report("results/report/loss_curves.png", category="Loss curves"),
    log:
        "logs/report.log",
    params:
        rows=ROWS,
        target=config["report"]["target_loss"],
        base_desc=config["base_model"] or "tiny Llama pretrained here ({} layers, hidden {})".format(
            BASE_MODEL_CONFIG["num_hidden_layers"], BASE_MODEL_CONFIG["hidden_size"]
        ),
        cpt=canonical(config["cpt"]),
        lesa_matrices=LESA_MATRICES,
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/report.py"


rule svd_continuity:
    input:
        svd=expand("results/svd/{matrix}.safetensors", matrix=config["report"]["continuity_matrices"]),
    output:
        png=report("results/report/svd_continuity.png", category="LESA"),
        ratios="results/report/svd_continuity.json",
    log:
        "logs/svd_continuity.log",
    params:
        matrices=config["report"]["continuity_matrices"],
    threads: 1
    resources:
        mem_mb=mem_mb(0.5),
        runtime=20,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/svd_continuity.py"
