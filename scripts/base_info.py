"""Rule base_info: what was imported, and the imported base's perplexity on the fixed val slice."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import base_info_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    base_info_stage(s.input.base, s.input.init, s.output[0])
