# deepen: depth up-scaling of a pretrained language model, every method side by side.
# Config: config/config.yaml (the default: SmolLM2, the five main methods); checked against config/schema.yaml at
# start-up.

import os

from snakemake.utils import min_version

min_version("9.0")

# snakemake --report report.html: this description of the run, a caption per figure and table (report/*.rst)
report: "report/workflow.rst"


# `--configfile my.yaml` replaces the embedded default instead of extending it, so a config that lists
# fewer methods runs only those; `--config key=value` still edits the default. The default is the
# workflow's own, wherever the run's working directory (--directory) is.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")



# Cheap rules that read a few small files run where Snakemake runs, not as cluster jobs.
localrules:
    all,
    task_data,
    report,


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/base.smk"
include: "rules/expand.smk"
include: "rules/lesa.smk"
include: "rules/train.smk"
include: "rules/eval.smk"


if JOBS.race:

    include: "rules/race.smk"


include: "rules/report.smk"
include: "rules/align.smk"
include: "rules/export.smk"


if GROWTH:

    include: "rules/growth.smk"


if SFT:

    include: "rules/sft.smk"


onstart:
    # Known only once the executor is chosen: a multi-node CPT run needs SLURM's allocation.
    if config["cpt"]["nodes"] > 1 and getattr(workflow.executor_plugin, "name", "") != "slurm":
        raise WorkflowError(f"cpt.nodes: {config['cpt']['nodes']} nodes per CPT run need the SLURM executor "
                            "(--profile profiles/slurm); on one machine use cpt.nodes: 1 and cpt.nproc")


rule all:
    input:
        OUTPUTS["report"]["csv"],
        OUTPUTS["report"]["md"],
        OUTPUTS["report"]["curves"],
        OUTPUTS["manifest"]["manifest"],
        [OUTPUTS["base_info"]["info"]] if JOBS.import_base else [],
        [OUTPUTS["growth_report"]["png"]] if GROWTH else [],
        [OUTPUTS["sft_report"]["png"]] if SFT else [],
        [OUTPUTS["race_bracket"]["bracket"]] if JOBS.race else [],
        [JOBS.outputs("export_model", export=name)["folder"] for name in JOBS.exports],
    default_target: True
