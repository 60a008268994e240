"""Rule export_gguf: a model of the run as a GGUF file, and an ollama Modelfile beside it."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.models.export_stage import gguf_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    gguf_stage(s.input.model, s.output.gguf, s.output.modelfile, s.params.type, s.params.name,
               tokenizer_gguf=s.params.tokenizer_gguf or None, license=s.params.license)
