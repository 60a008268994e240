"""Every Snakemake command the README and docs/ show, in its cheap form: the configs it names exist and pass the
config check (merged as --configfile merges them), and every target it names is an output of a job of that run
(the job table's). Commands with placeholders (a file of the reader's, N cores) are listed below with why they are
not run; a new command on a page is checked without being listed."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from deepen.workflow.cli import merge_configs
from deepen.workflow.config_check import validate_config

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMAND = re.compile(r"(?:\.venv/bin/)?snakemake(?: [^`|#\n]*)?")
# commands whose words stand for the reader's own (files, paths, numbers): not runnable as written
PLACEHOLDERS = ("my.yaml", "my_model.yaml", " A B", "<targets>", "--cores N", "/opt/deepen", "--unlock", "--report")
FENCED = re.compile(r"```[a-z]*\n(.*?)```", re.S)
INLINE = re.compile(r"`([^`]+)`")


def doc_commands() -> list[tuple[str, str]]:
    """(page, command) of every snakemake command in a fenced block (one per line) or an inline code span (which
    may wrap over lines)."""
    out = []
    for page in PAGES:
        text = page.read_text()
        lines = [line for block in FENCED.findall(text) for line in block.splitlines()]
        spans = [" ".join(span.split()) for span in INLINE.findall(FENCED.sub("", text))]
        for piece in lines + spans:
            for found in COMMAND.finditer(piece):
                command = found.group(0).strip()
                if command not in ("snakemake", ".venv/bin/snakemake") and not any(p in command for p in PLACEHOLDERS):
                    out.append((page.name, command))
    return sorted(set(out))


def parse(command: str) -> tuple[list[str], list[str]]:
    """(config files, targets) of a snakemake command line."""
    words = shlex.split(command)[1:]
    configs, targets, i = [], [], 0
    while i < len(words):
        word = words[i]
        if word == "--configfile":
            i += 1
            while i < len(words) and not words[i].startswith("-"):
                configs.append(words[i])
                i += 1
            continue
        if word in ("--cores", "-c", "--profile", "--directory", "--snakefile", "-j", "--jobs"):
            i += 2
            continue
        if not word.startswith("-"):
            targets.append(word)
        i += 1
    return configs, targets


@pytest.mark.parametrize("page, command", doc_commands())
def test_a_documented_command_names_configs_that_pass_and_targets_the_run_makes(page, command, tmp_path):
    import json

    from deepen.workflow.jobs import JobTable
    from test_config import LLAMA_3_1_8B

    configs, targets = parse(command)
    config: dict = {}
    for path in configs or ["config/config.yaml"]:
        assert (REPO / path).is_file(), f"{page}: {command}: no {path}"
        config = merge_configs(config, yaml.safe_load((REPO / path).read_text()))
    # a config whose header asks the reader to fill in paths (config/llama8b_slurm.yaml): stand-ins of the same kind
    if str(config.get("base_model", "")).startswith("/path/to"):
        (tmp_path / "model").mkdir()
        (tmp_path / "model/config.json").write_text(json.dumps(LLAMA_3_1_8B))
        config["base_model"] = str(tmp_path / "model")
    if str(config.get("corpus", {}).get("path", "")).startswith("/path/to"):
        (tmp_path / "corpus").mkdir()
        config["corpus"]["path"] = str(tmp_path / "corpus")
    checked = validate_config(config, REPO / "config/schema.yaml", REPO / "config/tasks", load_datasets=False)
    made = {p for job in JobTable(checked, str(REPO)).jobs() for p in job.outputs}
    for target in targets:
        assert target.rstrip("/") in made, f"{page}: {command}: the run makes no {target}"


def test_the_commands_are_found():
    assert len(doc_commands()) >= 10
