"""Tasks beyond the embedded ones: a task in lm-eval's standard YAML format, registered under its own name from
eval.include_path, runs through the path lm-eval's registered tasks (ARC, HellaSwag, ...) take."""

import json

import pytest
import torch

from conftest import REPO
from deepen.evaluate.registered_tasks import registered_task_problems
from deepen.evaluate.harness import evaluate

QUESTIONS = [("What is the colour of the sky?", ["green", "blue", "red"], 1),
             ("How many legs has a cat?", ["four", "two", "six"], 0),
             ("Which is a fruit?", ["stone", "chair", "apple"], 2),
             ("What do bees make?", ["honey", "glass", "iron"], 0),
             ("What falls from clouds?", ["sand", "rain", "coal"], 1),
             ("Which one swims?", ["fish", "rock", "tree"], 0)]

TASK_YAML = """task: local_qa
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
fewshot_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


@pytest.fixture(scope="module")
def local_task(tmp_path_factory):
    root = tmp_path_factory.mktemp("local_task")
    data = root / "qa.jsonl"
    data.write_text("".join(json.dumps({"question": q, "choices": c, "label": a}) + "\n" for q, c, a in QUESTIONS))
    (root / "tasks").mkdir()
    (root / "tasks/local_qa.yaml").write_text(TASK_YAML.format(data=data))
    return root


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A random Llama with a tokenizer trained on the questions: enough for lm-eval to score choices."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from deepen.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("small_model")
    (root / "text.txt").write_text(" ".join(q + " " + " ".join(c) for q, c, _ in QUESTIONS) * 20)
    tokenizer = train_tokenizer(root / "text.txt", 300, root / "model")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=256, bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id))
    model.save_pretrained(root / "model")
    return root / "model"


def test_a_standard_format_task_from_the_include_path_runs_like_a_registered_one(local_task, small_model, tmp_path):
    cfg = {"tasks": ["local_qa"], "batch_size": 4, "num_fewshot": {"local_qa": 2}, "precision": "fp32",
           "include_path": str(local_task / "tasks")}
    # no embedded task asked for: the templates folder is deepen's own, as in the workflow
    result = evaluate(small_model, REPO / "config/tasks", tmp_path, cfg)
    metrics = result["results"]["local_qa"]
    assert 0 <= metrics["acc,none"] <= 1 and 0 <= metrics["acc_norm,none"] <= 1
    assert result["n-shot"]["local_qa"] == 2
    assert result["n-samples"]["local_qa"]["effective"] == len(QUESTIONS)


def test_bf16_evaluation_scores_what_fp32_does_to_rounding(local_task, small_model, tmp_path):
    cfg = {"tasks": ["local_qa"], "batch_size": 4, "num_fewshot": {}, "include_path": str(local_task / "tasks")}
    fp32 = evaluate(small_model, REPO / "config/tasks", tmp_path, {**cfg, "precision": "fp32"})
    bf16 = evaluate(small_model, REPO / "config/tasks", tmp_path, {**cfg, "precision": "bf16"})
    assert fp32["results"]["local_qa"].keys() == bf16["results"]["local_qa"].keys()
    # a random model's choices are near ties; bf16 may flip some, but the same task and count ran
    assert bf16["n-samples"] == fp32["n-samples"]


def test_a_task_whose_data_file_is_missing_is_named_before_any_job(local_task, tmp_path):
    assert registered_task_problems(["local_qa"], str(local_task / "tasks")) == []
    broken = tmp_path / "tasks"
    broken.mkdir()
    (broken / "broken_qa.yaml").write_text(TASK_YAML.replace("local_qa", "broken_qa").format(
        data=tmp_path / "missing.jsonl"))
    problems = registered_task_problems(["broken_qa"], str(broken))
    assert len(problems) == 1 and problems[0].startswith("eval.tasks: 'broken_qa': its dataset cannot be loaded")
