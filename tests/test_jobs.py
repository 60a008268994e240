"""The job table (deepen/workflow/jobs.py): the jobs it lists are the jobs Snakemake plans, rule by rule, for the
configs that ship; no two jobs write the same file; the GPU runner's derivations are the table's."""

import re
from collections import Counter

import pytest
import yaml

from conftest import REPO, copy_workflow, snakemake
from deepen.workflow.config_check import validate_config
from deepen.workflow.jobs import OUTPUTS, JobTable, cpt_settings, generation_options, predictor_settings


def table(name: str, **changes) -> JobTable:
    config = {**yaml.safe_load((REPO / "config" / name).read_text()), **changes}
    validate_config(config, REPO / "config/schema.yaml", REPO / "config/tasks", load_datasets=False)
    return JobTable(config, str(REPO))


def planned_jobs(workdir, configfile: str) -> Counter:
    """Snakemake's own count of the jobs a dry run plans, by rule."""
    out = snakemake(workdir, "-n", "--cores", "1", "--configfile", configfile).stdout
    stats = out.split("Job stats:")[1].split("total")[0]
    return Counter({rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)})


@pytest.mark.parametrize("name", ["quick.yaml", "config.yaml"])
def test_the_table_lists_the_jobs_snakemake_plans(name, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    # the aligned base's artifacts are made by the base's rules under their `use rule … as <rule>_aligned` names
    listed = Counter(job.rule + "_aligned" if job.aligned else job.rule
                     for job in table(name).jobs()) + Counter({"manifest": 1, "all": 1})
    assert listed == planned_jobs(workdir, f"config/{name}")


def test_no_two_jobs_write_the_same_file():
    for name in ("quick.yaml", "config.yaml", "toy.yaml"):
        written = Counter(path for job in table(name).jobs() for path in job.outputs)
        assert not [p for p, n in written.items() if n > 1], name
        assert all(job.rule in OUTPUTS for job in table(name).jobs())


def test_the_manifest_entries_carry_what_made_each_artifact():
    artifacts = table("quick.yaml").artifacts()
    run = artifacts["results/cpt/llama_pro/new_only/seed0/final"]
    assert run["rule"] == "continual_pretrain" and run["model"] == "results/models/llama_pro"
    assert run["cpt"]["freeze"] == "new_only" and run["cpt"]["seed"] == 0 and "seeds" not in run["cpt"]
    assert artifacts["results/models/random/seed0"]["method"]["seed"] == 0
    assert artifacts["results/tokens/train.bin"]["rule"] == "tokens"
    assert artifacts["results/seams/llama_pro.json"]["trained"] == {
        f: f"results/cpt/llama_pro/{f}/seed0/final" for f in ("new_only", "all")}


def test_the_gpu_runner_reads_the_table_s_derivations():
    jobs = table("quick.yaml")
    assert cpt_settings(jobs.config, "all", 1) == jobs.cpt_train("all", "1")
    assert generation_options(jobs.config, "random/seed0") == jobs.generation_params("random/seed0")
    assert predictor_settings(jobs.config) == jobs.predictor_train
    with pytest.raises(ValueError, match="makes one model per seed"):
        generation_options(jobs.config, "random")


def rule_bodies() -> dict[str, str]:
    """{rule name: its text} of every rule and checkpoint in rules/*.smk (``use rule … as NAME with:`` too)."""
    out = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        starts = list(re.finditer(r"^\s*(?:use rule \w+ as (\w+) with|(?:rule|checkpoint) (\w+)):", text, re.M))
        for match, end in zip(starts, [m.start() for m in starts[1:]] + [len(text)]):
            out[match.group(1) or match.group(2)] = text[match.end():end]
    return out


def test_every_rule_takes_its_params_and_resources_from_the_table_only():
    """No rule states a param or a resource of its own: each ``params:`` and ``resources:`` is the table's entry for
    that very rule, so there is no second copy to drift."""
    bodies = rule_bodies()
    for name, body in bodies.items():
        for key in ("params", "resources"):
            stated = re.findall(rf"^\s*{key}:(.*)$", body, re.M)
            call = "rule_params" if key == "params" else "resources"
            assert all(s.strip() == f'**JOBS.{call}("{name}")' for s in stated), (name, key, stated)
    # every job's rule asks the table (itself, or the rule it is made from: Snakemake's `use rule` keeps the source's
    # params and resources, which the table gives both alike)
    sources = {copy: source for source, copy in re.findall(r"^\s*use rule (\w+) as (\w+) with", "\n".join(
        f.read_text() for f in (REPO / "rules").glob("*.smk")), re.M)}
    for cfg in ("quick.yaml", "config.yaml", "toy.yaml"):
        jobs = table(cfg)
        for name in {job.rule for job in jobs.jobs()}:
            source = sources.get(name, name)
            assert f'**JOBS.resources("{source}")' in bodies[source], name
            assert jobs.resources(name) == jobs.resources(source), name
            assert jobs.rule_params(name).keys() == jobs.rule_params(source).keys(), name


def path_literals(source: str) -> list[str]:
    """The string constants of ``source`` (f-strings' literal parts too) that spell a path under results/; docstrings
    left out."""
    import ast

    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings and re.search(r"(^|[^\w])results/", node.value)]


def test_no_result_path_is_spelled_outside_the_table():
    """Every path under results/ has one owner, deepen/core/paths.py: the methods, the report's panels and the job
    table name what they read by key."""
    owner = REPO / "deepen/core/paths.py"
    spelled = {str(p.relative_to(REPO)): found for p in sorted((REPO / "deepen").rglob("*.py")) if p != owner
               for found in [path_literals(p.read_text())] if found}
    assert not spelled, spelled
    # the check sees a path in a plain string and in an f-string's literal part, not in a docstring
    assert path_literals('"""results/x"""\nA = "results/svd/q.json"\nB = f"results/eval/{m}.json"\n') == [
        "results/svd/q.json", "results/eval/"]
