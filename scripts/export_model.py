"""Rule export_model: a model's Hub-ready folder: its files, its GGUF, and a card with what the run measured."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.models.export_stage import folder_stage
from deepen.workflow.manifest import code_version

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    folder_stage(s.input.model, s.input.gguf, s.input.modelfile, s.output.folder, dict(s.params.facts),
                 expanded=s.input.expanded, summary_csv=s.input.summary, init_csv=s.input.init,
                 benchmarks_csv=s.input.get("benchmarks"), samples_json=s.input.get("samples"),
                 code=code_version(Path(s.scriptdir).parent))
