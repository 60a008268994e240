"""Rule generate_layers: a method's layer plan and new tensors."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.expand.execute import generate_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    # every named input but the base, its weights, its layer profile and the user's files the method reads is an
    # artifact the method declared: one file per matrix type
    own = ("base", "weights", "profile", "reads")
    artifacts = {name: Path(s.input[name][0]).parent for name in s.input.keys() if name not in own}
    generate_stage(s.wildcards.model, dict(s.params.options), s.input.base, Path(s.input.weights[0]).parent,
                   Path(s.output.plan).parent, artifacts, device=s.params.device,
                   profile_path=s.input.get("profile"))
