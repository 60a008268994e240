"""Adding a family is one entry: this module registers Helium (Kyutai's Llama-layout model, which deepen does not ship)
as data, from outside the package, and every stage takes it: the methods expand it into models transformers loads,
LLaMA Pro keeps its function, and the aligned base computes the base's function."""

import pytest
import torch
from transformers import AutoModelForCausalLM, HeliumConfig

from deepen.expand.align import align_base
from deepen.models import families
from deepen.models.families import LLAMA_TENSORS, Family, family_for
from deepen.expand.weights import extract_stage
from test_families import DEFAULT_METHODS, SIZES, expand, forward

# the whole of what a new family needs: where its tensors live and which transformers class loads it
HELIUM = Family(model_types=("helium",), layer_prefix="model.layers", layer_tensors=LLAMA_TENSORS,
                hf_class="HeliumForCausalLM")


@pytest.fixture
def helium(monkeypatch):
    """Helium registered for the test alone."""
    monkeypatch.setattr(families, "FAMILIES", dict(families.FAMILIES))
    families.register(HELIUM)
    return HELIUM


def random_helium(path):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(HeliumConfig(**SIZES, head_dim=8, tie_word_embeddings=False))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)  # random norms, so that a wrong copy shows
    model.save_pretrained(path)
    return path


def test_an_unregistered_family_is_refused_by_name():
    with pytest.raises(families.UnsupportedFamily, match="helium"):
        family_for("helium")


def test_a_family_added_as_one_entry_goes_through_every_method(helium, tmp_path):
    assert family_for("helium") is helium
    random_helium(tmp_path / "base")
    for m in helium.matrices:
        extract_stage(tmp_path / "base", m, tmp_path / "weights" / f"{m}.safetensors")
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(1))
    base_logits, _ = forward(tmp_path / "base", ids)
    methods = [m for m, opts in DEFAULT_METHODS.items() if opts["generator"] != "lesa"]  # LESA's own: test_families
    assert {"llama_pro", "solar", "opt_deus"} <= set(methods)
    for method in methods:
        logits, model = forward(expand(tmp_path, method, DEFAULT_METHODS[method]), ids)
        assert type(model).__name__ == "HeliumForCausalLM" and model.config.num_hidden_layers > 6, method
        assert torch.isfinite(logits).all(), method
        if method == "llama_pro":
            assert (logits - base_logits).abs().max().item() <= 1e-5


def test_a_family_added_as_one_entry_can_be_aligned(helium, tmp_path):
    base = random_helium(tmp_path / "base")
    record = align_base(base, tmp_path / "aligned")
    ids = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(1))
    aligned, _ = forward(tmp_path / "aligned", ids)
    original, _ = forward(base, ids)
    assert (aligned - original).abs().max() <= 1e-5
    assert all(layer["neurons_moved"] > 0.5 for layer in record["layers"])
