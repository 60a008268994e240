"""Rule corpus: split the corpus by whole documents into train/val/test."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import corpus_stage  # noqa: E402

with to_log(snakemake.log[0]):  # noqa: F821
    corpus_stage(snakemake.params.corpus, Path(snakemake.output.manifest).parent)  # noqa: F821
