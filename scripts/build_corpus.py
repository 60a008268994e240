"""Rule corpus: split the corpus by whole documents into train/val/test."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.data.corpus import build_corpus

with to_log(snakemake.log[0]):  # noqa: F821
    build_corpus(snakemake.params.corpus, Path(snakemake.output.manifest).parent)  # noqa: F821
