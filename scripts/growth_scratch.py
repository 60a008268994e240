"""Rule growth_scratch: the growth target trained from scratch (the FLOPs budget)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.logs import to_log  # noqa: E402
from deepen.pipeline import growth_scratch_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    growth_scratch_stage(s.params.model, s.params.train, s.params.steps, int(s.wildcards.seed), s.input.tokenizer,
                         s.input.train, s.input.val, s.output.model, Path(s.output.metrics).parent, threads=s.threads)
