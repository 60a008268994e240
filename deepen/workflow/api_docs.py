"""The command and API reference (docs/api.md), written from the code: each ``deepen`` subcommand's help as argparse
prints it, and each API function's signature and docstring, so the page cannot say what the code does not.

    python -m deepen.workflow.api_docs > docs/api.md      # tests/test_docs.py fails when they differ
"""

from __future__ import annotations

import inspect
import os

HEADER = """# The deepen command and Python API

One expansion, a config check or a cost table without writing a workflow run; the workflow itself from any folder.
Written from the code (`python -m deepen.workflow.api_docs > docs/api.md`; a test fails when this page and the code
disagree). Each subcommand is a thin layer over what the workflow's rules run: `deepen expand` runs the jobs the
job table lists for one model through the rules' own stage functions, so its model is the workflow's, tensor for
tensor, for the same settings.

```bash
deepen expand HuggingFaceTB/SmolLM2-135M --method llama_pro -o smollm2-llama-pro      # the shortest way to a deeper model
deepen expand model.gguf -m copy -O placement='{interval: 3}' -O zero_init=true -o out
deepen expand base/ --mergekit-config solar.yaml -o solar/
deepen check my.yaml
deepen costs config/llama8b_slurm.yaml --gpus 8 --gpu-memory 80 --base-config Llama-3.1-8B/config.json
deepen run my.yaml -- --profile profiles/slurm
deepen export deeper/ -o deeper.gguf --type q8_0
```
"""


def command_help() -> list[str]:
    from deepen.workflow.cli import parser

    os.environ["COLUMNS"] = "100"  # the help as an 100-column terminal prints it, the same on every machine
    top = parser()
    out = ["## The command", "", "```text", top.format_help().rstrip(), "```", ""]
    subparsers = next(a for a in top._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subparsers.choices.items():
        out += [f"### deepen {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    return out


def api_reference() -> list[str]:
    import deepen

    doc = inspect.getdoc(deepen).splitlines()
    code = [line[4:] for line in doc if line.startswith("    ")]
    out = ["## The Python API", "", "The same as the command's, from `import deepen`:", "", "```python", *code, "```",
           ""]
    # deepen.expand is the stage package, which calls deepen.expand_model
    for name, fn in (("plan", deepen.plan), ("expand", deepen.expand_model), ("check", deepen.check),
                     ("costs", deepen.costs)):
        out += [f"### deepen.{name}", "", "```python", f"deepen.{name}{inspect.signature(fn)}", "```", "",
                "```text", inspect.getdoc(fn), "```", ""]
    return out


def reference() -> str:
    return HEADER + "\n" + "\n".join(command_help() + api_reference()).rstrip() + "\n"


if __name__ == "__main__":
    print(reference(), end="")
