"""Rule sft: supervised fine-tuning of one variant (dense, or DLO over the dense expansion)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import sft_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    train = {**s.params.train, "report_to": s.config["sft"].get("train", {}).get("report_to", "none")}
    sft_stage(s.wildcards.variant, s.input.model, Path(s.input.data).parent, train,
              dict(s.params.dlo) if s.params.dlo else None, int(s.wildcards.seed), Path(s.output.metrics).parent,
              s.output.final, s.output.info, threads=s.threads)
