rule report:
    input:
        unpack(report_panel_files),
        metrics=run_paths("results/cpt/{method}/{freeze}/seed{seed}/metrics.jsonl"),
        info=run_paths("results/cpt/{method}/{freeze}/seed{seed}/info.json"),
        evals=run_paths("results/eval/{method}/{freeze}/seed{seed}.json"),
        init=expand("results/init/{model}.json", model=INIT_MODELS),
    output:
        csv=report("results/report/summary.csv", caption="../report/summary_csv.rst", category="Summary"),
        runs_csv=report("results/report/runs.csv", caption="../report/runs_csv.rst", category="Summary"),
        init_csv=report("results/report/init.csv", caption="../report/init_csv.rst", category="Summary"),
        md=report("results/report/summary.md", caption="../report/summary_md.rst", category="Summary"),
        curves=report("results/report/loss_curves.png", caption="../report/loss_curves.rst", category="Loss curves"),
    log: "logs/report.log"
    params:
        runs=RUNS,
        target=config["report"]["target_loss"],
        reference=config["report"]["reference"],
        base_desc=base_description(),
        cpt=computed(config["cpt"]),
        init_models=INIT_MODELS,
        method_models=method_models(),
        trained=trained_methods(config),
        claims=canonical(config["report"]["claims"]),
        panels=panel_params(REPORT_FACTS),
    resources: **job(2048, 10)
    conda: CONDA_ENV
    script: "../scripts/report.py"


rule svd_continuity:
    input: svd=expand("results/svd/{matrix}.safetensors", matrix=config["report"]["continuity_matrices"])
    output:
        png=report("results/report/svd_continuity.png", caption="../report/svd_continuity.rst", category="LESA"),
        ratios="results/report/svd_continuity.json",
    log: "logs/svd_continuity.log"
    params: matrices=config["report"]["continuity_matrices"]
    resources: **job(mem_mb(0.5), streaming_runtime(1))
    conda: CONDA_ENV
    script: "../scripts/svd_continuity.py"


if PRETRAIN_BASE:

    localrules:
        base_training_curve,

    rule base_training_curve:
        input:
            metrics="results/base_training/metrics.jsonl",
            info="results/base_training/info.json",
        output: report("results/report/base_training.png", caption="../report/base_training.rst", category="Base model")
        log: "logs/base_training_curve.log"
        params: plateau=canonical(config["base"]["train"]["plateau"])
        resources: **job(1024, 10)
        conda: CONDA_ENV
        script: "../scripts/base_training_curve.py"


rule manifest:
    input: list(artifact_settings())
    output: "results/manifest.json"
    log: "logs/manifest.log"
    params:
        artifacts=artifact_settings(),
        config=canonical(config),
    resources: **job(1024, streaming_runtime(2 + len(RUNS) * deepest_expansion()))
    conda: CONDA_ENV
    script: "../scripts/manifest.py"
