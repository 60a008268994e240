"""LESA: the streaming SVD, the predictor, and the generator wired to reconstruction."""

import pytest
import torch
from safetensors.torch import load_file

from deepen.models.families import LLAMA
from deepen.expand.weights import LayerWeights
from deepen.expand.execute import generate_layers
from deepen.expand.methods.contract import LayerSource
from deepen.expand.reconstruct import reconstruct_stage
from deepen.expand.weights import extract_stage
from deepen.expand.lesa.predictor import BlockSource, LayerPredictor, lesa_loss, train_predictor
from deepen.expand.lesa.svd import float32_array, svd_stage
from deepen.models.tensorio import CheckpointReader, write_tensors


@pytest.mark.parametrize("float64_gram", [False, True], ids=["cpu_route", "gpu_route"])
@pytest.mark.parametrize("layers, d_out, d_in", [(5, 12, 8), (3, 30, 4)])
def test_streaming_svd_matches_the_explicit_svd(tmp_path, layers, d_out, d_in, float64_gram):
    """Both routes: numpy's float32 Gram (the CPU's) and torch's float64 Gram (a GPU's, here run on the CPU)."""
    torch.manual_seed(0)
    stack = torch.randn(layers, d_out, d_in)
    write_tensors(tmp_path / "w.safetensors", {"weights": stack})
    report = svd_stage(tmp_path / "w.safetensors", tmp_path / "svd.safetensors", tmp_path / "svd.json",
                       float64_gram=float64_gram)
    assert report["gram"] == ("float64" if float64_gram else "float32")
    out = load_file(tmp_path / "svd.safetensors")
    concat = torch.cat(list(stack.double()), dim=1)  # d_out × L·d_in
    s_ref = torch.linalg.svdvals(concat)
    rank = min(d_out, layers * d_in)
    assert out["S"].shape == (rank,) and report["rank"] == rank
    assert torch.allclose(out["S"].double(), s_ref[:rank], rtol=1e-6)
    us = out["U"] * out["S"][None, :]
    for layer in range(layers):
        rel = torch.linalg.norm(us @ out["V"][layer] - stack[layer]) / torch.linalg.norm(stack[layer])
        assert rel < 1e-5
    assert report["max_relative_reconstruction_error"] < 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_float32_array_converts_exactly_as_torch_does(dtype):
    block = (torch.randn(7, 5, generator=torch.Generator().manual_seed(0)) * 1e3).to(dtype)
    block[0, :3] = torch.tensor([float("inf"), -0.0, 1e-40]).to(dtype)
    converted = float32_array(block)
    assert converted.dtype.name == "float32" and converted.shape == (7, 5)
    assert torch.equal(torch.from_numpy(converted), block.to(torch.float32))
    assert torch.signbit(torch.from_numpy(converted)[0, 1])  # torch.equal does not tell -0.0 from 0.0


def test_tiny_singular_values_are_guarded(tmp_path):
    torch.manual_seed(0)
    low_rank = torch.randn(4, 10, 2) @ torch.randn(4, 2, 6)  # rank ≤ 2 per layer, d_out 10 > total rank 8
    stack = torch.cat([low_rank, torch.zeros(1, 10, 6)])
    write_tensors(tmp_path / "w.safetensors", {"weights": stack})
    report = svd_stage(tmp_path / "w.safetensors", tmp_path / "svd.safetensors", tmp_path / "svd.json")
    v = load_file(tmp_path / "svd.safetensors")["V"]
    assert torch.isfinite(v).all()
    assert report["guarded_singular_values"] >= 2
    assert report["max_relative_reconstruction_error"] < 1e-5


def test_lesa_loss_has_the_norm_term():
    y = torch.ones(4, 3)
    pred = 2 * torch.ones(4, 3)
    mse = 1.0
    gap = (torch.linalg.norm(pred) - torch.linalg.norm(y)).item()
    assert lesa_loss(pred, y, 0.5).item() == pytest.approx(0.5 * mse + 0.5 * gap**2)


@pytest.fixture(scope="module")
def lesa_inputs(tiny_llama_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("lesa")
    for m in LLAMA.matrices:
        extract_stage(tiny_llama_dir, m, root / "weights" / f"{m}.safetensors")
    for m in LLAMA.matrices:
        if m not in LLAMA.norms:
            svd_stage(root / "weights" / f"{m}.safetensors", root / "svd" / f"{m}.safetensors", root / "svd" / f"{m}.json")
    return root


class SecondInput(torch.nn.Module):
    def forward(self, lower, upper):
        return upper


def test_predictor_returning_the_upper_block_reproduces_the_upper_layer(tiny_llama_dir, lesa_inputs, tmp_path):
    linear = [m for m in LLAMA.matrices if m not in LLAMA.norms]
    preloaded = {"svd": {m: BlockSource(lesa_inputs / "svd" / f"{m}.safetensors", "V") for m in linear},
                 "predictors": {m: SecondInput() for m in linear}}
    source = LayerSource(LayerWeights(lesa_inputs / "weights", LLAMA.matrices), LLAMA, cache=preloaded)
    info = generate_layers({"generator": "lesa", "placement": "top_half", "norm_source": "mean"}, source,
                           tmp_path / "layers", "lesa")
    reconstruct_stage("lesa", tiny_llama_dir, tiny_llama_dir, tmp_path / "layers/plan.json",
                      tmp_path / "layers/new_layers.safetensors", tmp_path / "model", 64)
    base, out = CheckpointReader(tiny_llama_dir), CheckpointReader(tmp_path / "model")
    new = [(i, e) for i, e in enumerate(info["plan"]) if e["from"] == "new"]
    assert len(new) == 3
    for i, entry in new:
        lower, upper = entry["between"]
        for m in linear:
            want = base.get(LLAMA.tensor_name(upper, m))
            got = out.get(LLAMA.tensor_name(i, m))
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-6), (i, m)
        for m in LLAMA.norms:
            want = 0.5 * (base.get(LLAMA.tensor_name(lower, m)) + base.get(LLAMA.tensor_name(upper, m)))
            assert torch.allclose(out.get(LLAMA.tensor_name(i, m)), want)


def test_layer0_norm_source(lesa_inputs, tmp_path):
    linear = [m for m in LLAMA.matrices if m not in LLAMA.norms]
    preloaded = {"predictors": {m: SecondInput() for m in linear}}
    weights = LayerWeights(lesa_inputs / "weights", LLAMA.matrices)
    generate_layers({"generator": "lesa", "placement": "top_half", "norm_source": "layer0", "svd": False},
                    LayerSource(weights, LLAMA, cache=preloaded), tmp_path, "lesa_nosvd")
    new = load_file(tmp_path / "new_layers.safetensors")
    for m in LLAMA.norms:
        assert torch.equal(new[f"new.0.{m}"], weights.get(m, 0))
    # without SVD the predictor sees raw rows: upper layer of new #0 (between 2 and 3) is layer 3
    assert torch.equal(new["new.0.q_proj"], weights.get("q_proj", 3))


def test_predictor_training_is_deterministic_and_learns(lesa_inputs):
    cfg = dict(hidden=32, lr=1e-3, batch_size=16, epochs=3, norm_weight=5e-4, seed=0)
    source = BlockSource(lesa_inputs / "svd" / "gate_proj.safetensors", "V")
    m1, r1 = train_predictor(source, cfg, log=lambda s: None)
    m2, r2 = train_predictor(source, cfg, log=lambda s: None)
    assert r1["train_loss"] == r2["train_loss"]
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert r1["train_loss"][-1] < r1["train_loss"][0]
    assert isinstance(m1, LayerPredictor)


class RecordingSource(BlockSource):
    """Remembers which target layers each minibatch drew its rows from."""

    def __init__(self, *args):
        super().__init__(*args)
        self.batches = []

    def gather(self, layers, rows):
        if not self.batches or len(self.batches[-1]) == 3:
            self.batches.append([])
        self.batches[-1].append(set(layers.tolist()))
        return super().gather(layers, rows)


def test_the_generating_predictor_trains_on_every_triplet_with_rows_mixed_across_triplets(lesa_inputs):
    """As the released code: every interior triplet trains (none withheld), and a minibatch draws its rows from
    all triplets together rather than one triplet at a time."""
    cfg = dict(hidden=8, lr=1e-3, batch_size=16, epochs=1, norm_weight=5e-4, seed=0)
    source = RecordingSource(lesa_inputs / "svd" / "gate_proj.safetensors", "V")
    _, report = train_predictor(source, cfg, log=lambda s: None)
    assert report["train_layers"] == [1, 2, 3, 4]  # the tiny Llama's 6 layers: every interior one
    targets = [batch[1] for batch in source.batches]  # the middle gather of each batch: its target layers
    assert set().union(*targets) == {1, 2, 3, 4}
    assert sum(len(t) > 1 for t in targets) > len(targets) // 2
    # the neighbours are gathered from the same rows, one layer below and above
    assert all(low == {t - 1 for t in mid} and up == {t + 1 for t in mid} for low, mid, up in source.batches)
    assert len(source.batches) == -(-4 * source.rows // 16)


def test_leave_one_out_fits_withhold_their_layer_and_score_it_against_the_trivial_predictors(lesa_inputs):
    from deepen.expand.lesa.predictor import heldout_fit

    cfg = dict(hidden=8, lr=1e-3, batch_size=16, epochs=2, norm_weight=5e-4, seed=0)
    source = BlockSource(lesa_inputs / "svd" / "up_proj.safetensors", "V")
    fits = heldout_fit(source, cfg, [2, 3], log=lambda s: None)["fits"]
    assert [f["layer"] for f in fits] == [2, 3]
    for f in fits:
        assert len(f["heldout_mse"]) == 2
        assert set(f["against_baselines"]) == {"predictor", "mean_of_neighbours", "copy_lower", "copy_upper", "zero"}
        assert f["against_baselines"]["predictor"] == pytest.approx(f["heldout_mse"][-1])
        mid = source.get(f["layer"])
        assert f["against_baselines"]["zero"] == pytest.approx(torch.mean(mid**2).item())
    _, withheld = train_predictor(source, cfg, log=lambda s: None, withhold=2)
    assert withheld["train_layers"] == [1, 3, 4]
    with pytest.raises(ValueError, match="not interior layers"):
        heldout_fit(source, cfg, [0], log=lambda s: None)
