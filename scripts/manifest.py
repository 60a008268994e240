"""Rule manifest: sha256, settings, code and package versions of every artifact."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.workflow.manifest import write_manifest

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    write_manifest(dict(s.params.artifacts), dict(s.params.config), Path(s.scriptdir).parent, s.output[0],
                   dict(s.params.base))
