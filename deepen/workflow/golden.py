"""A run's golden record: per expanded model, its layer plan, the Frobenius norm of each tensor it generated and its
step-0 val loss. The quick run's record is checked in (tests/golden/quick.json) and compared in CI, so that a change
to any of them is made on purpose: the record is rewritten in the same commit.

    python -m deepen.workflow.golden write RUN_DIR tests/golden/quick.json     # after a deliberate change
    python -m deepen.workflow.golden check RUN_DIR tests/golden/quick.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from deepen.core.paths import result_path

# How far a figure may move and still be the same: float32 sums in another order (another thread count, another
# vector path of the same kind of machine) move a step-0 loss by ~1e-6 and a norm by ~1e-6 of itself; a changed
# input moves them by far more.
LOSS_TOLERANCE = 1e-4
NORM_RELATIVE_TOLERANCE = 1e-4


def record(run_dir, models: list[str]) -> dict:
    """{model: {plan, norms, step0_loss}} of ``models`` (names as the job table's: 'lesa', 'random/seed0'); the
    base has its loss only."""
    import torch
    from safetensors import safe_open

    run_dir, out = Path(run_dir), {}
    for model in models:
        loss = json.loads((run_dir / result_path("init_loss", "loss", model=model)).read_text())["val_loss"]
        entry = {"step0_loss": loss}
        if model != "base":
            plan = json.loads((run_dir / result_path("generate_layers", "plan", model=model)).read_text())
            entry["plan"] = plan["plan"]
            with safe_open(run_dir / result_path("generate_layers", "new_layers", model=model), "pt") as f:
                entry["norms"] = {k: float(torch.linalg.vector_norm(f.get_tensor(k).double())) for k in sorted(f.keys())}
        out[model] = entry
    return out


def differences(found: dict, golden: dict, loss_tol: float = LOSS_TOLERANCE,
                norm_tol: float = NORM_RELATIVE_TOLERANCE) -> list[str]:
    """What differs between a run's record and the golden one, beyond the tolerances; [] when nothing does."""
    out = []
    for model in sorted(set(found) | set(golden)):
        if model not in golden or model not in found:
            out.append(f"{model}: {'not in the golden record' if model not in golden else 'not in this run'}")
            continue
        a, b = found[model], golden[model]
        if abs(a["step0_loss"] - b["step0_loss"]) > loss_tol:
            out.append(f"{model}: step-0 loss {a['step0_loss']:.6f}, golden {b['step0_loss']:.6f}")
        if a.get("plan") != b.get("plan"):
            out.append(f"{model}: its layer plan differs")
        norms_a, norms_b = a.get("norms", {}), b.get("norms", {})
        if norms_a.keys() != norms_b.keys():
            out.append(f"{model}: generates other tensors ({sorted(set(norms_a) ^ set(norms_b))[:4]} ...)")
            continue
        moved = [k for k in norms_a if not math.isclose(norms_a[k], norms_b[k], rel_tol=norm_tol, abs_tol=1e-12)]
        if moved:
            k = moved[0]
            out.append(f"{model}: {len(moved)} of {len(norms_a)} generated tensors' norms differ ({k}: "
                       f"{norms_a[k]:.6g}, golden {norms_b[k]:.6g})")
    return out


def run_models(run_dir) -> list[str]:
    """The models a finished run gave a step-0 loss, from its manifest."""
    manifest = json.loads((Path(run_dir) / result_path("manifest", "manifest")).read_text())
    prefix, suffix = result_path("init_loss", "loss").split("{model}")
    return sorted(p[len(prefix):-len(suffix)] for p in manifest["artifacts"] if p.startswith(prefix)
                  and p.endswith(suffix))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepen.workflow.golden", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["write", "check"])
    parser.add_argument("run_dir", help="a finished run's working directory")
    parser.add_argument("golden", help="the golden record (json)")
    args = parser.parse_args(argv)
    found = record(args.run_dir, run_models(args.run_dir))
    if args.action == "write":
        Path(args.golden).write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.golden}: {len(found)} models")
        return 0
    diff = differences(found, json.loads(Path(args.golden).read_text()))
    print("\n".join(diff) if diff else f"the run matches {args.golden} ({len(found)} models)")
    return 1 if diff else 0


if __name__ == "__main__":
    raise SystemExit(main())
