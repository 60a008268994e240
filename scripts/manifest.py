"""Rule manifest: sha256, settings, code and package versions of every artifact."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.manifest import write_manifest  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    write_manifest(dict(s.params.artifacts), dict(s.params.config), Path(s.scriptdir).parent, s.output[0])
