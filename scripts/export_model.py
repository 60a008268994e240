"""Rule export_model: a model's GGUF, its ollama Modelfile and its Hub-ready folder."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.models.export_stage import export_stage
from deepen.workflow.manifest import code_version

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    export_stage(s.input.model, s.output.gguf, s.output.modelfile, s.output.folder, s.params.type,
                 dict(s.params.facts), tokenizer_gguf=s.params.tokenizer_gguf or None, expanded=s.input.expanded,
                 summary_csv=s.input.summary, init_csv=s.input.init, benchmarks_csv=s.input.get("benchmarks"),
                 samples_json=s.input.get("samples"),
                 code=code_version(Path(s.scriptdir).parent))
