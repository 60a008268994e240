"""OpT-DeUS: align the lower neighbour to the upper with optimal transport (deepen/expand/ot_align.py), then average."""

from __future__ import annotations

from deepen.expand.methods.registry import Option, method


@method("opt_deus", needs_upper=True, options={
    "solver": Option({"enum": ["emd", "sinkhorn"]}, None,
                     "exact or entropic optimal transport (default: emd; sinkhorn with as_released)"),
    "reg": Option({"type": "number", "exclusiveMinimum": 0}, 0.06, "sinkhorn regularisation"),
    "attention": Option({"enum": ["heads", "rows"]}, None,
                        "align whole heads (default) or rows of q, k, v independently (default with as_released)"),
    "mlp": Option({"enum": ["joint", "separate"]}, None,
                  "one plan per MLP neuron (default) or separate plans for gate, up, down (default with as_released)"),
    "as_released": Option({"type": "boolean"}, False,
                          "the released fusion: unscaled sinkhorn plans, per-row attention with o_proj's columns left "
                          "in place (the residual map is solved on o_proj's own rows), separate MLP plans"),
})
def opt_deus_layer(opts, source, entry):
    """Use with ``zero_init: true``."""
    from deepen.expand.ot_align import OTSettings, fuse_layers

    as_released = opts["as_released"]
    heads = source.model_config.get("num_attention_heads")
    kv = source.model_config.get("num_key_value_heads") or heads
    # The released code solves every plan with sinkhorn; the corrected variant defaults to exact plans.
    solver = opts.get("solver") or ("sinkhorn" if as_released else "emd")
    settings = OTSettings(solver=solver, reg=opts["reg"], as_released=as_released)
    lower, upper = entry["between"]
    arch = source.arch
    return fuse_layers(source.layer(lower), source.layer(upper), heads, kv, settings, arch.mlp_input_norm,
                       arch.output_norms, attention=opts.get("attention") or ("rows" if as_released else "heads"),
                       mlp=opts.get("mlp") or ("separate" if as_released else "joint"))
