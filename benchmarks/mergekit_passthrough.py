"""Every ``mergekit.yaml`` of a finished run, made by mergekit's own passthrough merge and compared with deepen's model.

deepen writes and reads passthrough configs without mergekit; this checks the claim that mergekit turns each exported
config into the same model. mergekit is not a dependency: install it apart, with the CPU torch first so that it does
not pull a CUDA build, and name its ``mergekit-yaml``:

    python3.11 -m venv /tmp/mergekit && /tmp/mergekit/bin/pip install torch==2.13.0
    /tmp/mergekit/bin/pip install mergekit==0.1.5
    python benchmarks/mergekit_passthrough.py --run-dir RUN --mergekit-yaml /tmp/mergekit/bin/mergekit-yaml

RUN is the directory a run's ``results/`` lies in (the configs name ``results/base``). For each model: the tensors,
equal in value and in bytes (mergekit multiplies a tensor by its factor, so a factor 0 on a negative weight gives
-0.0, where deepen writes +0.0), and the fields of the two configs, as transformers reads them, that differ.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine, parse_options  # noqa: E402
from deepen.models.tensorio import CheckpointReader  # noqa: E402

# the library version that wrote the file and the folder it was read from: not the model
CONFIG_NOISE = {"transformers_version", "_name_or_path"}


def compare(ours: Path, theirs: Path) -> dict:
    """Tensor by tensor, one pair in memory at a time."""
    a, b = CheckpointReader(ours), CheckpointReader(theirs)
    names = set(a.keys()) | set(b.keys())
    equal = bytes_equal = 0
    differ = []
    for name in sorted(names):
        if name not in a or name not in b or a.shape(name) != b.shape(name) or a.dtype(name) != b.dtype(name):
            differ.append(name)
            continue
        x, y = a.get(name), b.get(name)
        if torch.equal(x, y):
            equal += 1
            bytes_equal += torch.equal(x.reshape(-1).view(torch.uint8), y.reshape(-1).view(torch.uint8))
        else:
            differ.append(name)
    # the configs as transformers reads them: a base imported from GGUF writes only the fields it knows, and
    # mergekit writes every field of the config class, the defaults included
    config_a, config_b = (AutoConfig.from_pretrained(m).to_dict() for m in (ours, theirs))
    fields = sorted(k for k in set(config_a) | set(config_b)
                    if k not in CONFIG_NOISE and config_a.get(k) != config_b.get(k))
    return {"tensors": len(names), "equal": equal, "bytes_equal": bytes_equal, "differ": differ,
            "config_fields_differ": {k: [config_a.get(k), config_b.get(k)] for k in fields}}


def main(argv=None) -> int:
    opts = parse_options(__doc__, argv, run_dir="", mergekit_yaml="mergekit-yaml")
    run = Path(opts.run_dir).resolve()
    configs = sorted((run / "results/models").glob("*/mergekit.yaml"))
    if not configs:
        raise SystemExit(f"no results/models/*/mergekit.yaml under {run}")
    version = subprocess.run([str(Path(opts.mergekit_yaml).parent / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('mergekit'))"],
                             capture_output=True, text=True).stdout.strip() or "unknown"
    print(f"machine: {machine()}; mergekit {version}")
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:
            row = config.parent.name
            out = Path(tmp) / row
            start = time.perf_counter()
            # offline, and no model card: mergekit's card asks the Hub about every model name it cannot resolve
            proc = subprocess.run([opts.mergekit_yaml, str(config), str(out), "--no-write-model-card"], cwd=run,
                                  capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            seconds = time.perf_counter() - start
            if proc.returncode:
                print(f"{row}: mergekit failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
                failed += 1
                continue
            result = compare(config.parent, out)
            same = not result["differ"] and not result["config_fields_differ"]
            failed += not same
            print(f"{row}: {result['equal']}/{result['tensors']} tensors equal, {result['bytes_equal']} equal in "
                  f"bytes; config fields that differ: {result['config_fields_differ'] or 'none'}; "
                  f"mergekit {seconds:.1f} s" + ("" if same else f"; DIFFER: {result['differ'][:8]}"))
    print(f"{len(configs) - failed} of {len(configs)} models made by mergekit equal deepen's")
    return int(failed > 0)


if __name__ == "__main__":
    raise SystemExit(main())
