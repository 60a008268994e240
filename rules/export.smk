# A model of the run out to llama.cpp and ollama (its GGUF and a Modelfile, rule export_gguf), and to the Hub (a
# folder whose card holds what the run measured, rule export_model): deepen/models/export_stage.py. The GGUF is
# written once per model; the folder follows the report.
rule export_gguf:
    input: model=lambda wildcards: JOBS.export_inputs(wildcards.export)["model"]
    output: **outputs("export_gguf")
    log: "logs/export/{export}.gguf.log"
    params: **JOBS.rule_params("export_gguf")
    resources: **JOBS.resources("export_gguf")
    conda: CONDA_ENV
    script: "../scripts/export_gguf.py"


rule export_model:
    input:
        unpack(lambda wildcards: JOBS.export_inputs(wildcards.export)),
        **OUTPUTS["export_gguf"],
    output: **outputs("export_model")
    log: "logs/export/{export}.log"
    params: **JOBS.rule_params("export_model")
    resources: **JOBS.resources("export_model")
    conda: CONDA_ENV
    script: "../scripts/export_model.py"
