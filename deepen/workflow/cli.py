"""The ``deepen`` command: each subcommand a thin layer over what the workflow's rules run.

    deepen expand BASE --method NAME [-O KEY=VALUE ...] -o OUT   one expanded model, no Snakemake
    deepen check CONFIG...                                     the config check, as the workflow runs it
    deepen costs CONFIG... [--gpus N --gpu-memory GB ...]      each stage's time, memory and disk before a run
    deepen run [CONFIG...] [-- SNAKEMAKE OPTIONS]               the workflow, from any folder
    deepen export MODEL_DIR -o FILE.gguf [--type f16]          a model folder deepen made, as GGUF + Modelfile

Bad input ends with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input: printed as one line, exit status 2."""


def _options(pairs: list[str]) -> dict:
    """KEY=VALUE pairs, each value read as YAML (``placement={interval: 3}``, ``zero_init=false``)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"option {pair!r}: write KEY=VALUE (the value as YAML, e.g. placement={{interval: 3}})")
        out[key] = yaml.safe_load(value)
    return out


def merge_configs(base: dict, more: dict) -> dict:
    """``more`` over ``base``, mappings merged key by key, as Snakemake merges config files."""
    out = dict(base)
    for key, value in more.items():
        out[key] = merge_configs(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def load_configs(paths: list[str]) -> dict:
    """Config files merged in order, as ``snakemake --configfile A B`` merges them (later keys win, mappings
    merged)."""
    merged: dict = {}
    for path in paths:
        if not Path(path).is_file():
            raise UserError(f"{path}: no such config file")
        merged = merge_configs(merged, yaml.safe_load(Path(path).read_text()) or {})
    return merged


def cmd_expand(args) -> int:
    from deepen.workflow.expansion import expand_to, method_options, plan_of

    options = _options(args.option)
    if args.plan_only:
        plan = plan_of(args.base, args.method, options, args.mergekit_config)
        name, _ = method_options(args.method, options, args.mergekit_config)
        print(f"{name}: {sum(e['from'] == 'base' for e in plan)} base layers -> {len(plan)} layers")
        for i, entry in enumerate(plan):
            source = (f"base layer {entry['layer']}" if entry["from"] == "base"
                      else f"new #{entry['id']} between base layers {entry['between'][0]} and {entry['between'][1]}")
            print(f"  {i:3d}  {source}")
        return 0
    if not args.output:
        raise UserError("-o/--output OUT is required (or --plan-only)")
    out = expand_to(args.base, args.output, args.method, options, args.mergekit_config, work_dir=args.work_dir,
                    device=args.device, force=args.force, say=lambda line: print(f"  {line}", file=sys.stderr),
                    threads=args.threads)
    print(out)
    return 0


def cmd_check(args) -> int:
    from deepen.workflow.config_check import validate_config
    from deepen.workflow.expansion import workflow_dir

    root = workflow_dir()
    config = load_configs(args.configs) if args.configs else yaml.safe_load((root / "config/config.yaml").read_text())
    validate_config(config, root / "config" / "schema.yaml", root / "config" / "tasks",
                    load_datasets=not args.no_datasets)
    print(f"{' + '.join(args.configs) or 'the default config'}: valid")
    return 0


def cmd_costs(args) -> int:
    import tempfile

    from deepen.workflow.config_check import validate_config
    from deepen.workflow.expansion import workflow_dir
    from deepen.workflow.preflight import cost_table

    root = workflow_dir()
    config = load_configs(args.configs)
    resources = config.setdefault("resources", {})
    if args.gpus is not None:
        resources["gpus"] = args.gpus
    if args.flops_per_second is not None:
        resources["train_flops_per_second"] = args.flops_per_second
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        # the costs need the base's shape only: its config.json may stand in for it, and a corpus not here yet
        # is not read
        if args.base_config:
            if not Path(args.base_config).is_file():
                raise UserError(f"--base-config {args.base_config}: no such file")
            (Path(tmp) / "base").mkdir()
            (Path(tmp) / "base" / "config.json").write_text(Path(args.base_config).read_text())
            config["base_model"] = str(Path(tmp) / "base")
            notes.append(f"the base's shape from {args.base_config}")
        corpus = config.get("corpus", {})
        if corpus.get("path") and not Path(corpus["path"]).exists():
            (Path(tmp) / "corpus").mkdir()
            notes.append(f"corpus.path {corpus['path']} is not here: not needed for the costs")
            config["corpus"] = {**corpus, "path": str(Path(tmp) / "corpus")}
        if isinstance(config.get("base_model"), str) and not Path(config["base_model"]).exists() \
                and config["base_model"].startswith(("/", ".", "~")):
            raise UserError(f"base_model {config['base_model']} is not here: give its config.json with --base-config "
                            "(the costs need the shape only)")
        checked = validate_config(config, root / "config" / "schema.yaml", root / "config" / "tasks",
                                  load_datasets=False)
        text, fits = cost_table(checked, gpu_memory_gb=args.gpu_memory)
    print("\n".join([f"({n})" for n in notes] + [text]))
    return 0 if fits else 1


def cmd_run(args, snakemake_args: list[str]) -> int:
    from deepen.workflow.expansion import workflow_dir

    root = workflow_dir()
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(root / "Snakefile"), "--directory", os.getcwd()]
    if args.configs:
        command += ["--configfile", *[str(Path(c).resolve()) for c in args.configs]]
    if not any(a in ("--cores", "-c", "--jobs", "-j", "--profile") or a.startswith(("--cores=", "-c")) for a in
               snakemake_args):
        command += ["--cores", str(args.cores)]
    print(" ".join(command + snakemake_args), file=sys.stderr)
    return subprocess.call(command + snakemake_args)


def cmd_export(args) -> int:
    from deepen.models.export_stage import gguf_stage

    source = Path(args.model_dir)
    if not (source / "config.json").exists():
        raise UserError(f"{source}: not a model folder (no config.json)")
    out = Path(args.output)
    if out.exists() and not args.force:
        raise UserError(f"{out} exists (--force replaces it)")
    info = gguf_stage(source, out, out.with_suffix(".Modelfile"), args.type, args.name or source.name,
                      tokenizer_gguf=args.tokenizer_gguf)
    print(json.dumps(info, indent=1))
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="deepen", description="Depth up-scaling of pretrained language models, every "
                                 "method side by side.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("expand", help="make one expanded model, no Snakemake",
                       description="Make one expanded model from BASE with one method, through the stage functions "
                       "the workflow runs. NAME: a paper's method with the default comparison's settings (llama_pro, "
                       "solar, lesa, opt_deus, avg_deus) or a generator (copy, average, lesa, opt_deus, ...).")
    p.add_argument("base", help="a model folder, a .gguf file or a Hub name (owner/name)")
    p.add_argument("--method", "-m", default="llama_pro", help="a paper's method or a generator (default: llama_pro)")
    p.add_argument("--option", "-O", action="append", metavar="KEY=VALUE",
                   help="a method option, its value as YAML; repeatable (e.g. -O placement='{interval: 3}')")
    p.add_argument("--mergekit-config", metavar="FILE", help="a mergekit passthrough config: the method it says")
    p.add_argument("--output", "-o", metavar="OUT", help="the model folder to write (refused if it exists)")
    p.add_argument("--plan-only", action="store_true", help="print the layer plan and write nothing")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--work-dir", metavar="DIR", help="keep the intermediate artifacts here (default: a temporary "
                   "folder)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where tensors compute")
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="CPU threads")
    p.set_defaults(func=cmd_expand)

    p = sub.add_parser("check", help="check configs as the workflow does, before any job",
                       description="Check CONFIG files (merged in order, as --configfile merges them) with the "
                       "workflow's own config check; prints one line per problem.")
    p.add_argument("configs", nargs="*", metavar="CONFIG")
    p.add_argument("--no-datasets", action="store_true", help="skip loading the datasets the config names")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("costs", help="each stage's time, memory and disk for a config, before it runs",
                       description="The stage cost table for CONFIG on the machines given: per stage and in all, "
                       "time, peak memory against the memory given, and the disk the run holds; exit status 1 when a "
                       "stage will not fit.")
    p.add_argument("configs", nargs="+", metavar="CONFIG")
    p.add_argument("--gpus", type=int, default=None, help="GPUs per job (resources.gpus)")
    p.add_argument("--gpu-memory", type=float, default=None, metavar="GB", help="memory of one GPU, in GB")
    p.add_argument("--flops-per-second", type=float, default=None, metavar="F",
                   help="training throughput per job (resources.train_flops_per_second)")
    p.add_argument("--base-config", metavar="CONFIG_JSON", help="the base's config.json, when the model is not here "
                   "(the costs need its shape only)")
    p.set_defaults(func=cmd_costs)

    p = sub.add_parser("run", help="run the workflow in this folder (options after -- go to Snakemake)",
                       description="Run the workflow the package carries with its results in the current folder; "
                       "arguments after -- go to Snakemake (e.g. -- -n, -- --profile profiles/slurm).")
    p.add_argument("configs", nargs="*", metavar="CONFIG")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores (unless -- gives --cores)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("export", help="write a model folder deepen made as GGUF, with an ollama Modelfile",
                       description="Write MODEL_DIR as a GGUF file for llama.cpp and an ollama Modelfile beside it.")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--output", "-o", required=True, metavar="FILE.gguf")
    p.add_argument("--type", default="f16", choices=["f32", "f16", "bf16", "q8_0"])
    p.add_argument("--tokenizer-gguf", metavar="FILE", help="copy the tokenizer from this GGUF (the base's)")
    p.add_argument("--name", help="general.name in the file (default: the folder's name)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=cmd_export)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, rest = argv[:at], argv[at + 1:]
    args = parser().parse_args(argv)
    from deepen.models.gguf_file import GGUFError
    from deepen.workflow.config_check import ConfigError

    try:
        return args.func(args, rest) if args.command == "run" else args.func(args)
    except (UserError, ConfigError, GGUFError, FileExistsError, FileNotFoundError) as e:
        print(f"deepen {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
