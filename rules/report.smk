rule report:
    input:
        unpack(lambda wildcards: JOBS.report_panel_files()),
        metrics=JOBS.run_paths(OUTPUTS["continual_pretrain"]["metrics"]),
        info=JOBS.run_paths(OUTPUTS["continual_pretrain"]["info"]),
        evals=JOBS.run_paths(OUTPUTS["evaluate"]["eval"]),
        init=expand(OUTPUTS["init_loss"]["loss"], model=JOBS.init_models),
    output:
        csv=report(OUTPUTS["report"]["csv"], caption="../report/summary_csv.rst", category="Summary"),
        runs_csv=report(OUTPUTS["report"]["runs_csv"], caption="../report/runs_csv.rst", category="Summary"),
        init_csv=report(OUTPUTS["report"]["init_csv"], caption="../report/init_csv.rst", category="Summary"),
        md=report(OUTPUTS["report"]["md"], caption="../report/summary_md.rst", category="Summary"),
        curves=report(OUTPUTS["report"]["curves"], caption="../report/loss_curves.rst", category="Loss curves"),
        # the files the run's report panels write beside summary.md
        **JOBS.report_panel_outputs(),
    log: "logs/report.log"
    params: **JOBS.rule_params("report")
    resources: **JOBS.resources("report")
    conda: CONDA_ENV
    script: "../scripts/report.py"


rule svd_continuity:
    input: svd=expand(JOBS.outputs("svd")["svd"], matrix=config["report"]["continuity_matrices"])
    output:
        png=report(JOBS.outputs("svd_continuity")["png"], caption="../report/svd_continuity.rst", category="LESA"),
        ratios=JOBS.outputs("svd_continuity")["ratios"],
    log: "logs/svd_continuity.log"
    params: **JOBS.rule_params("svd_continuity")
    resources: **JOBS.resources("svd_continuity")
    conda: CONDA_ENV
    script: "../scripts/svd_continuity.py"


if JOBS.pretrain_base:

    localrules:
        base_training_curve,

    rule base_training_curve:
        input:
            metrics=OUTPUTS["pretrain_base"]["metrics"],
            info=OUTPUTS["pretrain_base"]["info"],
        output:
            report(OUTPUTS["base_training_curve"]["png"], caption="../report/base_training.rst", category="Base model"),
        log: "logs/base_training_curve.log"
        params: **JOBS.rule_params("base_training_curve")
        resources: **JOBS.resources("base_training_curve")
        conda: CONDA_ENV
        script: "../scripts/base_training_curve.py"


# Every artifact the job table lists, with the rule and settings that made it.
ARTIFACTS = JOBS.artifacts()


rule manifest:
    input:
        list(ARTIFACTS),
        # the race's later rungs are known from its decisions, once they are made
        race=race_decisions if JOBS.race else [],
    output: **outputs("manifest")
    log: "logs/manifest.log"
    params: **JOBS.rule_params("manifest")
    resources: **JOBS.resources("manifest")
    conda: CONDA_ENV
    script: "../scripts/manifest.py"
