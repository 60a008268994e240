"""Rule reconstruct: execute a layer plan into an HF model directory."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import reconstruct_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    reconstruct_stage(s.wildcards.model, s.input.base, s.input.tokenizer, s.input.plan, s.input.new_layers,
                      s.output[0], s.params.max_shard_mb)
