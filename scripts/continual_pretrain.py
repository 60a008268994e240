"""Rule continual_pretrain: the same token budget for every row."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import cpt_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    train = {**s.params.train, "report_to": s.config["cpt"].get("report_to", "none")}
    cpt_stage(s.wildcards.method, s.input.model, s.input.train, s.input.val, train, Path(s.output.metrics).parent,
              s.output.final, s.output.info, threads=s.threads)
