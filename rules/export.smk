# A model of the run out to llama.cpp, ollama and the Hub: its GGUF, an ollama Modelfile, and a Hub-ready folder
# whose card holds what the run measured (deepen/models/export_stage.py).
rule export_model:
    input: unpack(lambda wildcards: JOBS.export_inputs(wildcards.export))
    output: **outputs("export_model")
    log: "logs/export/{export}.log"
    params: **JOBS.rule_params("export_model")
    resources: **JOBS.resources("export_model")
    conda: CONDA_ENV
    script: "../scripts/export_model.py"
