rule report:
    input:
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
        cpt=config["cpt"],
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
    conda:
        "../envs/deepen.yaml"
    script:
        "../scripts/report.py"
