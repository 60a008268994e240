"""Seed statistics, FLOPs, the plateau stop and the report built from them, on fixed numbers."""

import json
import math
from types import SimpleNamespace

import pytest

from deepen.report import curves, rows as report_rows, summary
from deepen.models.flops import training_flops_per_token
from deepen.core.stats import paired_difference, t_interval
from deepen.train.trainer import _metrics_callback, plateau_reached

T_975_DF2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom


def test_t_interval_by_hand():
    iv = t_interval([1.0, 2.0, 3.0])  # mean 2, sample sd 1
    assert iv.mean == pytest.approx(2.0)
    assert iv.half_width == pytest.approx(T_975_DF2 / math.sqrt(3))
    assert (iv.low, iv.high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    one = t_interval([5.0])
    assert one.mean == 5.0 and math.isnan(one.half_width) and not one.excludes_zero()


def test_paired_difference_by_hand():
    method = {0: 5.00, 1: 5.20, 2: 4.90}
    ref = {0: 5.10, 1: 5.25, 2: 5.05, 3: 9.0}  # seed 3 has no partner: ignored
    d = paired_difference(method, ref)  # differences -0.10, -0.05, -0.15: mean -0.1, sd 0.05
    assert d.n == 3 and d.mean == pytest.approx(-0.1)
    assert d.half_width == pytest.approx(T_975_DF2 * 0.05 / math.sqrt(3))
    assert not d.excludes_zero()  # -0.1 ± 0.124 straddles zero
    tight = paired_difference({0: 1.00, 1: 1.01, 2: 0.99}, {0: 1.10, 1: 1.12, 2: 1.08})  # -0.10, -0.11, -0.09
    assert tight.half_width == pytest.approx(T_975_DF2 * 0.01 / math.sqrt(3))
    assert tight.excludes_zero()


TINY = {"num_hidden_layers": 3, "hidden_size": 4, "intermediate_size": 8, "num_attention_heads": 2,
        "num_key_value_heads": 1, "vocab_size": 10}


def test_flops_by_hand():
    # per layer: q,o 4x4 each, k,v 4x2 each, gate/up/down 3 x 4x8 -> 144 weights; seq 5
    # forward 3 (2·144 + 4·5·4) + 2·10·4 = 1184
    assert training_flops_per_token(TINY, 5, None, "all") == 1184 + 1424 + 2 * (3 * 144 + 40)
    # = 6 N + 12 · layers · seq · d with N = 472 matrix weights
    assert training_flops_per_token(TINY, 5, None, "all") == 6 * 472 + 12 * 3 * 5 * 4
    # only the top layer trains: the gradient travels through it and the lm_head only
    assert training_flops_per_token(TINY, 5, [2], "new_only") == 1184 + (448 + 80) + 2 * 144
    assert training_flops_per_token(TINY, 5, [0], "new_only") > training_flops_per_token(TINY, 5, [2], "new_only")
    with pytest.raises(ValueError):
        training_flops_per_token(TINY, 5, [], "new_only")


CURVE = [10.0, 8.0, 7.0, 6.5, 6.4, 6.38, 6.37, 6.36, 6.35]


def test_plateau_criterion_on_a_synthetic_curve():
    # window 2, 1%: best of the last two against the best before them
    # 7 vs 10, 6.5 vs 8, 6.4 vs 7, 6.38 vs 6.5 (1.8%), 6.37 vs 6.4 (0.47%: stop)
    first = next(k for k in range(1, len(CURVE) + 1) if plateau_reached(CURVE[:k], 2, 0.01))
    assert first == 7
    assert not plateau_reached(CURVE[:2], 2, 0.01)  # too few evaluations to judge


def test_plateau_stops_training_at_the_right_step(tmp_path):
    callback = _metrics_callback(tmp_path / "metrics.jsonl", 64, 0.0, {"window": 2, "min_rel_improvement": 0.01})
    args, control = SimpleNamespace(max_steps=1000), SimpleNamespace(should_training_stop=False)
    stopped = None
    for i, loss in enumerate(CURVE):
        state = SimpleNamespace(global_step=10 * i, is_world_process_zero=True)
        callback.on_evaluate(args, state, control, metrics={"eval_loss": loss})
        if control.should_training_stop:
            stopped = 10 * i
            break
    assert stopped == 60 and callback.stopped_at == 60
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 7


def _write_run(tmp_path, method, freeze, seed, curve, trainable=100):
    folder = tmp_path / method / freeze / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(
        json.dumps({"step": 10 * i, "tokens": 640 * i, "train_loss": None, "val_loss": v, "lr": 0.1, "seconds": i})
        + "\n" for i, v in enumerate(curve)))
    (folder / "info.json").write_text(json.dumps({
        "generator": "copy", "freeze": freeze, "layers": 12, "params": 1000, "trainable_params": trainable,
        "train_flops_per_token": 1e6, "tokens_per_step": 64, "steps": 10 * (len(curve) - 1), "val_tokens": 100352}))
    (folder / "eval.json").write_text(json.dumps({"results": {"deepen_cloze": {"acc,none": 0.25 + seed / 100}}}))
    return {"method": method, "freeze": freeze, "seed": seed, **{k: folder / f"{k}.{ext}" for k, ext in
                                                                (("metrics", "jsonl"), ("info", "json"), ("eval", "json"))}}


@pytest.fixture
def fixed_runs(tmp_path):
    curves = {  # final losses: reference 5.10/5.12/5.08; better 5.00/5.01/4.99 (paired -0.1 ± 0.0248)
        ("llama_pro", "new_only"): [5.5, 5.3, 5.10], ("llama_pro", "new_only", 1): [5.5, 5.3, 5.12],
        ("llama_pro", "new_only", 2): [5.5, 5.3, 5.08],
        ("lesa", "new_only"): [5.6, 5.05, 5.00], ("lesa", "new_only", 1): [5.6, 5.2, 5.01],
        ("lesa", "new_only", 2): [5.6, 5.3, 4.99],
    }
    runs = []
    for key, curve in curves.items():
        method, freeze, seed = (*key, 0) if len(key) == 2 else key
        runs.append(_write_run(tmp_path, method, freeze, seed, curve))
    return runs


def test_report_rows_from_fixed_numbers(fixed_runs, tmp_path):
    rows = report_rows.load_runs(fixed_runs)
    table, target = report_rows.summarise(rows, "llama_pro", "llama_pro")
    assert target == pytest.approx(5.10)
    by_row = {r["row"]: r for r in table}
    ref, lesa = by_row["llama_pro/new_only"], by_row["lesa/new_only"]
    assert ref["minus_reference"] is None
    assert lesa["final_val_loss"].mean == pytest.approx(5.0)
    assert lesa["final_val_loss"].half_width == pytest.approx(T_975_DF2 * 0.01 / math.sqrt(3))
    assert lesa["minus_reference"].mean == pytest.approx(-0.10)
    assert lesa["minus_reference"].excludes_zero()
    # target 5.10 reached by lesa at steps 10 (5.05), 20, 20; by llama_pro only where its final <= 5.10
    assert lesa["target_reached"] == 3 and lesa["steps_to_target"].mean == pytest.approx(50 / 3)
    assert lesa["tflops_to_target"].mean == pytest.approx(50 / 3 * 64 * 1e6 / 1e12)
    assert ref["target_reached"] == 2
    assert lesa["eval"]["deepen_cloze/acc"].mean == pytest.approx(0.26)

    paths = {k: tmp_path / f"{k}.{ext}" for k, ext in (("csv", "csv"), ("md", "md"), ("curves", "png"))}
    settings = {"base_desc": "test", "cpt": {"steps": 20, "batch_size": 2, "seq_len": 32, "lr": 1e-3},
                "val_tokens": 100352, "seeds": 3, "model_size": "0.0 M-parameter"}
    report_rows.write_csv(table, paths["csv"])
    summary.write_markdown(table, rows, target, "llama_pro", "llama_pro", settings, paths["md"])
    curves.plot_loss_curves(rows, target, paths["curves"])
    md = paths["md"].read_text()
    assert "**-0.1000 ± 0.0248**" in md  # significant, so bold
    assert "significantly lower: `lesa/new_only` (-0.1000)" in md
    csv_text = paths["csv"].read_text().splitlines()
    assert "final_val_loss_ci95" in csv_text[0] and "minus_reference_significant" in csv_text[0]
    assert paths["curves"].stat().st_size > 10_000


def test_a_one_seed_row_gets_no_verdict(fixed_runs, tmp_path):
    fixed_runs.append(_write_run(tmp_path, "lesa_nosvd", "new_only", 0, [5.6, 5.3, 5.2]))
    rows = report_rows.load_runs(fixed_runs)
    table, target = report_rows.summarise(rows, "llama_pro", "llama_pro")
    settings = {"base_desc": "test", "cpt": {"steps": 20, "batch_size": 2, "seq_len": 32, "lr": 1e-3},
                "val_tokens": 100352, "seeds": 3, "min_seeds": 1, "model_size": "0.0 M-parameter"}
    summary.write_markdown(table, rows, target, "llama_pro", "llama_pro", settings, tmp_path / "s.md")
    md = (tmp_path / "s.md").read_text()
    # paired with llama_pro's seed 0 only (5.2 - 5.10): a difference, but neither significant nor not
    assert "significantly lower: `lesa/new_only` (-0.1000); significantly higher: none" in md
    assert "One shared seed, so no interval and no verdict: `lesa_nosvd/new_only` (+0.1000)" in md
    assert "| `lesa_nosvd/new_only` | 1 |" in md and "| `lesa/new_only` | 3 |" in md
    assert "3 seeds (1 for some rows)" in md


def test_claims_get_a_verdict_each_from_fixed_numbers(fixed_runs):
    from deepen.report.claims import check_claims

    rows = report_rows.load_runs(fixed_runs)
    finals = {(r["method"], r["freeze"]): report_rows.finals(r) for r in rows.values()}
    runs = {(r["method"], r["freeze"]): {s: x["metrics"] for s, x in r["seeds"].items()} for r in rows.values()}
    init = {"base": [5.5], "llama_pro": [5.5], "lesa": [5.6], "solar": [5.9], "random": [7.0, 7.2],
            "lesa_nosvd": [5.8]}
    claims = [
        {"text": "a", "row": "lesa", "compare": "init", "below": ["solar", "random", "interp_copy"]},
        {"text": "b", "row": "lesa", "compare": "init", "below": ["llama_pro"]},
        {"text": "c", "row": "lesa", "below": ["llama_pro"]},
        {"text": "d", "row": "llama_pro", "below": ["lesa"]},
        {"text": "e", "row": "lesa_nosvd", "compare": ["init", "final"], "above": ["lesa"]},
        {"text": "f", "row": "lesa", "reaches_target_within": 0.5},
        {"text": "g", "row": "lesa", "reaches_target_within": 0.25},
        {"text": "h", "row": "llama_pro", "reaches_target_within": 0.5},
    ]
    v = {c.claim["text"]: c for c in check_claims(claims, init, finals, runs, steps=20, target=5.10,
                                                   target_name="the target")}
    # lesa starts below solar and random; interp_copy is not in this run, so the claim cannot be decided
    assert v["a"].verdict == "cannot decide" and "`interp_copy` not in this run" in v["a"].evidence[2]
    assert v["b"].verdict == "contradicts"  # 5.6 is above 5.5
    assert v["c"].verdict == "supports" and "-0.1000 ± 0.0248" in v["c"].evidence[0]  # significant, 3 seeds
    assert v["d"].verdict == "contradicts"
    # starts higher (5.8 > 5.6), but lesa_nosvd has no CPT run here: the end cannot be decided
    assert v["e"].verdict == "cannot decide" and "not trained in this run" in v["e"].evidence[1]
    # lesa reaches 5.10 at steps 10, 20, 20 of 20: half (10) by one seed only
    assert v["f"].verdict == "cannot decide"
    # at a quarter (5 steps): seeds 1 and 2 are still above at step 10 >= 5 (contradict); seed 0 crosses
    # between steps 0 and 10, before or after step 5: the evaluations cannot place it
    assert v["g"].verdict == "cannot decide" and "step 10, step 20, step 20" in v["g"].evidence[0]
    # llama_pro's seeds reach 5.10 at step 20 (twice) or never, and are above it at step 10 >= half
    assert v["h"].verdict == "contradicts"
    assert v["c"].sentence().startswith("**supports**: c.")


def test_the_step0_table_covers_untrained_models_and_random_seeds(tmp_path):
    from deepen.report.step0 import init_section, init_table

    def entry(loss, layers=12):
        return {"val_loss": loss, "val_tokens": 16384, "layers": layers, "params": 2e6}

    models = {"base": entry(4.0, 8), "llama_pro": entry(4.0), "lesa": entry(4.3), "random/seed0": entry(6.0),
              "random/seed1": entry(6.2)}
    table = init_table(models, {"llama_pro": ["llama_pro"], "lesa": ["lesa"], "random": ["random/seed0", "random/seed1"]},
                       trained=["llama_pro"])
    by = {r["method"]: r for r in table}
    assert [r["method"] for r in table][-1] == "random"
    assert by["random"]["models"] == 2 and by["random"]["init_val_loss"].mean == pytest.approx(6.1)
    assert by["lesa"]["minus_base"] == pytest.approx(0.3) and not by["lesa"]["trained"]
    text = "\n".join(init_section(table))
    assert "| `lesa` | 1 | 12 | 2.00 M | 4.3000 | +0.3000 | — |" in text
    assert "16,384 held-out tokens" in text
