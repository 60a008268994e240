"""Rule pretrain_base: the tiny Llama of the embedded default."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import pretrain_base_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    train = {**s.params.train, "report_to": s.config["base"]["train"].get("report_to", "none")}
    pretrain_base_stage(s.params.model, train, s.params.seed, s.input.tokenizer, s.input.train, s.input.val,
                        s.output.model, Path(s.output.metrics).parent, threads=s.threads)
