"""What each stage costs: FLOPs, bytes read and written and peak memory of one job, from the model's shape and the
config, with no tensor touched. The rules' ``runtime`` and ``mem_mb`` come from here (deepen/workflow/jobs.py), the
docs' stage-cost table too (benchmarks/stage_costs.py, which also checks the model against CPU measurements).

Counting conventions: a multiply-add is 2 FLOPs (deepen/models/flops.py); a symmetric eigendecomposition with its
eigenvectors of an n×n matrix 9 n³ (tridiagonal reduction and back-transformation, Golub & Van Loan); an exact
assignment (the Hungarian algorithm, network simplex) n³ *serial* operations, which run on one core at a rate of
their own. Elementwise work (copies, averages, norms) is left out: the bytes it moves bound it. Linear matrices are
those of a Llama layer (q, k, v, o, gate, up, down); families with fused or biased matrices differ by a few percent.
Memory counts the tensors a job holds at its peak; the interpreter and its libraries come on top
(``INTERPRETER_BYTES``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deepen.core.schema import training_defaults
from deepen.expand.plan import added_layers, is_auto, new_layers
from deepen.models.flops import layer_matmul_params, training_flops_per_token
from deepen.workflow.resources import parameter_count, request_minutes

# Python, torch and transformers imported: the resident size of a stage process before it loads anything
# (benchmarks/stage_costs.py measures it).
INTERPRETER_BYTES = 0.5e9


@dataclass(frozen=True)
class StageCost:
    """One job of a stage (``jobs`` of them in the config's workflow)."""

    stage: str
    jobs: int
    flops: float
    bytes_read: float
    bytes_written: float
    peak_bytes: float
    serial_ops: float = 0.0  # exact assignments: one core
    accelerated: bool = True  # False: the stage computes on the CPU in every job (copies, files)
    # what the host holds when the tensors live on a GPU (a model loaded, then moved); None: peak_bytes
    gpu_host_bytes: float | None = None

    def seconds(self, flops_per_second: float, io_bytes_per_second: float, serial_ops_per_second: float = 1e9) -> float:
        return (self.flops / flops_per_second + (self.bytes_read + self.bytes_written) / io_bytes_per_second
                + self.serial_ops / serial_ops_per_second)


@dataclass(frozen=True)
class Shape:
    """What the costs depend on, from a Hugging Face config dict."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    weight_bytes: int  # bytes per stored weight of the base

    @classmethod
    def of(cls, model_config: dict, weight_bytes: int = 4) -> Shape:
        h, heads = model_config["hidden_size"], model_config["num_attention_heads"]
        return cls(model_config["num_hidden_layers"], h, model_config["intermediate_size"], heads,
                   model_config.get("num_key_value_heads") or heads, model_config.get("head_dim") or h // heads,
                   model_config.get("vocab_size", 32000), weight_bytes)

    @property
    def config(self) -> dict:
        return {"num_hidden_layers": self.layers, "hidden_size": self.hidden, "intermediate_size": self.intermediate,
                "num_attention_heads": self.heads, "num_key_value_heads": self.kv_heads, "head_dim": self.head_dim,
                "vocab_size": self.vocab}

    def matrices(self) -> dict[str, tuple[int, int]]:
        """(rows, columns) of each linear matrix of a layer: out × in, as stored."""
        q, kv, h, i = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.hidden, self.intermediate
        return {"q_proj": (q, h), "k_proj": (kv, h), "v_proj": (kv, h), "o_proj": (h, q),
                "gate_proj": (i, h), "up_proj": (i, h), "down_proj": (h, i)}

    @property
    def layer_params(self) -> int:
        return layer_matmul_params(self.config)

    def params(self, layers: int | None = None) -> int:
        """Weights of a model of ``layers`` layers (default the base's): the linear matrices, embedding and head."""
        return parameter_count({**self.config, "num_hidden_layers": self.layers if layers is None else layers})


def forward_flops_per_token(shape: Shape, layers: int, seq_len: int) -> float:
    """Matrix products of one token's forward pass through ``layers`` layers and the head (attention core
    included, causal masking not subtracted)."""
    cfg = {**shape.config, "num_hidden_layers": layers}
    attention_core = 4 * seq_len * shape.heads * shape.head_dim
    return float(layers * (2 * layer_matmul_params(cfg) + attention_core) + 2 * shape.vocab * shape.hidden)


def forward_peak_bytes(shape: Shape, layers: int, batch: int, seq_len: int, dtype_bytes: int = 4) -> float:
    """An evaluation forward pass: the weights, and the logits with their log-softmax (float32) beside the hidden
    states of the layer in flight."""
    tokens = batch * seq_len
    return shape.params(layers) * dtype_bytes + tokens * (3 * shape.vocab * 4 + 8 * max(shape.hidden,
                                                                                       shape.intermediate) * dtype_bytes)


def training_peak_bytes(shape: Shape, layers: int, trainable_layers: int, micro_batch: int, seq_len: int,
                        checkpointing: bool = False) -> float:
    """Training in float32 with AdamW: every weight, and for the trainable ones a gradient and two moments; the
    activations a backward pass keeps, per token and layer about 14 hidden-size and 4 intermediate-size floats
    (one hidden state per layer with checkpointing), and the logits three times over (values, softmax,
    gradient)."""
    trainable = trainable_layers * shape.layer_params + (2 * shape.vocab * shape.hidden if trainable_layers == layers
                                                         else 0)
    tokens = micro_batch * seq_len
    per_layer = shape.hidden if checkpointing else 14 * shape.hidden + 4 * shape.intermediate
    return 4 * shape.params(layers) + 12 * trainable + 4 * tokens * (layers * per_layer + 3 * shape.vocab)


def extract_cost(shape: Shape) -> StageCost:
    """Every matrix type of every layer into one float32 file per type: the base read, its matrices written."""
    matrix_weights = shape.layers * shape.layer_params
    biggest = max(r * c for r, c in shape.matrices().values())
    return StageCost("extract_weights", 1, 0.0, matrix_weights * shape.weight_bytes, 4 * matrix_weights,
                     2 * 4 * biggest, accelerated=False)


def svd_cost(shape: Shape, matrix: str) -> StageCost:
    """The shared-basis SVD of one matrix type (deepen/expand/lesa/svd.py): the Gram matrix Σ W_l W_lᵀ (a symmetric
    rank-k update, half a product), its eigenvectors, the projections Uᵀ W_l, and two reads of the stacked
    matrices."""
    out, inp = shape.matrices()[matrix]
    L = shape.layers
    rank = min(out, L * inp)
    flops = L * out * out * inp + 9 * out**3 + 2 * L * rank * out * inp
    stacked = 4 * L * out * inp
    written = 4 * (out * rank + L * rank * inp + rank)
    # the Gram matrix and eigh's workspace (float64 on the GPU route), then the projected blocks, mapped in memory
    # but all touched when V is scaled
    return StageCost("svd", 1, float(flops), 2 * stacked, written, max(3 * 8 * out * out, 4 * L * rank * inp))


def predictor_params(width: int, hidden: int) -> int:
    """LESA's layer predictor (deepen/expand/lesa/predictor.py): 2·width → hidden → hidden → width, with biases."""
    return 2 * width * hidden + hidden + hidden * hidden + hidden + hidden * width + width


def predictor_cost(shape: Shape, matrix: str, predictor: dict, fits: int = 1, stage: str = "predictor") -> StageCost:
    """``fits`` trainings of the predictor of one matrix type: an AdamW step per minibatch of rows of every
    interior layer's block, ``epochs`` times (6 FLOPs per weight and row, 4 for the first layer's, whose input
    needs no gradient; biases left out)."""
    out, inp = shape.matrices()[matrix]
    rank = min(out, shape.layers * inp)
    hidden = predictor["hidden"]
    params = predictor_params(inp, hidden)
    first = 2 * inp * hidden  # the first layer's weights: the input needs no gradient
    rows = (shape.layers - 2) * rank * predictor["epochs"] * fits
    blocks = 4 * shape.layers * rank * inp
    return StageCost(stage, 1, float(rows * (6 * (first + hidden * hidden + hidden * inp) - 2 * first)), blocks,
                     16 * params, blocks + 16 * params
                     + 4 * 3 * predictor["batch_size"] * (2 * inp + predictor["hidden"]))


def align_cost(shape: Shape) -> StageCost:
    """Aligning the base (deepen/expand/align.py), layer by layer to its lower neighbour: float64 distance matrices of
    the MLP neurons (features: a neuron's gate and up rows and down column) and of the key-value groups, and an exact
    assignment of each."""
    L, h, i = shape.layers, shape.hidden, shape.intermediate
    group_features = (shape.heads + 2 * shape.kv_heads) * shape.head_dim * h // shape.kv_heads
    flops = (L - 1) * (2 * i * i * 3 * h + 2 * shape.kv_heads**2 * group_features)
    base = shape.params() * shape.weight_bytes
    # five layers in float64 (the raw and aligned layer, its lower neighbour's, one permuted copy in flight), the
    # neurons' features of two layers twice over, the distance matrices
    return StageCost("align_base", 1, float(flops), base, base,
                     3 * 8 * i * i + 5 * 8 * shape.layer_params + 4 * 8 * 3 * h * i,
                     serial_ops=float((L - 1) * (i**3 + shape.kv_heads**3)))


def generate_cost(shape: Shape, generator: str, new_layers: int, predictor: dict | None = None) -> StageCost:
    """The new layers of one expanded model: for LESA the predictor's forward pass over every row and U·S·V per
    matrix; for OpT-DeUS an OT plan between the neighbours' neurons and heads and the plan applied; for the
    others copies and averages (bytes only)."""
    h, i, lp = shape.hidden, shape.intermediate, shape.layer_params
    flops, serial = 0.0, 0.0
    if generator == "lesa":
        for out, inp in shape.matrices().values():
            rank = min(out, shape.layers * inp)
            flops += 2 * predictor_params(inp, predictor["hidden"]) * rank + 2 * out * rank * inp
    elif generator == "opt_deus":
        flops = 2 * (2 * i * i * 3 * h) + 2 * shape.heads**2 * 3 * shape.head_dim * h
        serial = float(i**3 + shape.heads**3)
    flops *= new_layers
    # per new layer two neighbours read (float32 matrices), one layer written
    # the neighbours (float32, and float64 copies for OT), the new layer, the neurons' features, OT's distance matrices
    peak = 32 * lp + 4 * 8 * 3 * h * i + 3 * 8 * i * i if generator == "opt_deus" else 4 * 4 * lp
    return StageCost("generate_layers", 1, flops, new_layers * 2 * 4 * lp, new_layers * 4 * lp, peak,
                     serial_ops=serial * new_layers)


def reconstruct_cost(shape: Shape, layers: int) -> StageCost:
    """The expanded model written: the base's files and the new layers read, ``layers`` layers written."""
    new = layers - shape.layers
    written = shape.params(layers) * shape.weight_bytes
    return StageCost("reconstruct", 1, 0.0, shape.params() * shape.weight_bytes + 4 * new * shape.layer_params,
                     written, 2 * 4 * shape.vocab * shape.hidden + 4 * shape.layer_params, accelerated=False)


def loss_cost(stage: str, shape: Shape, layers: int, tokens: float, seq_len: int, batch: int, passes: float = 1,
              models: int = 1, dtype_bytes: int = 4) -> StageCost:
    """``passes`` forward passes over ``tokens`` val tokens with each of ``models`` models of ``layers`` layers
    (step-0 losses: one; seams: the whole model and once without each added layer, before and after CPT)."""
    flops = forward_flops_per_token(shape, layers, seq_len) * tokens * passes * models
    return StageCost(stage, 1, flops, models * shape.params(layers) * dtype_bytes, 0.0,
                     forward_peak_bytes(shape, layers, batch, seq_len, dtype_bytes),
                     gpu_host_bytes=4 * shape.params(layers))


def cpt_cost(shape: Shape, layers: int, trainable: list[int] | None, freeze: str, cpt: dict) -> StageCost:
    """One CPT run: ``steps`` × ``batch_size`` × ``seq_len`` training tokens (deepen/models/flops.py) and the
    fixed-slice evaluation every ``eval_interval`` steps."""
    cfg = {**shape.config, "num_hidden_layers": layers}
    seq = cpt["seq_len"]
    tokens = cpt["steps"] * cpt["batch_size"] * seq
    evals = cpt["steps"] // max(1, cpt.get("eval_interval") or cpt["steps"]) + 1
    flops = (training_flops_per_token(cfg, seq, trainable, freeze) * tokens
             + forward_flops_per_token(shape, layers, seq) * cpt.get("eval_tokens", 0) * evals)
    micro = cpt.get("micro_batch_size") or max(1, cpt["batch_size"] // max(1, {**training_defaults(), **cpt}["nproc"]))
    trainable_layers = layers if freeze == "all" else len(trainable or [])
    return StageCost("continual_pretrain", 1, flops, shape.params(layers) * shape.weight_bytes + 2 * tokens,
                     4 * shape.params(layers),
                     training_peak_bytes(shape, layers, trainable_layers, micro, seq,
                                         bool(cpt.get("gradient_checkpointing"))),
                     gpu_host_bytes=4 * shape.params(layers))


def minutes(cost: StageCost, flops_per_second: float, io_bytes_per_second: float, safety: float,
            serial_ops_per_second: float = 1e9) -> int:
    """A job's run-time request: startup, and ``safety`` × the estimate."""
    return request_minutes(cost.seconds(flops_per_second, io_bytes_per_second, serial_ops_per_second), safety)


def memory_mb(cost: StageCost, on_gpu: bool = False, processes: int = 1, floor: int = 1024) -> int:
    """A job's host memory request: per process its peak (on a GPU what the host holds meanwhile) and the
    interpreter, a quarter more for the allocator's slack."""
    held = cost.gpu_host_bytes if on_gpu and cost.accelerated and cost.gpu_host_bytes is not None else cost.peak_bytes
    return max(floor, math.ceil(processes * (1.25 * held + INTERPRETER_BYTES) / 2**20))


def evaluation_tokens(ev: dict, embedded: list[str]) -> float:
    """Tokens lm-eval scores per model: each embedded task at most ``max_docs`` documents of up to a chunk of text
    (2 characters per token, generously); a registered task up to ~15,000 items (MMLU: 57 subjects) of four choices
    of ~150 tokens, unless ``eval.limit`` cuts it."""
    tokens = sum(ev["max_docs"] * max(ev["ppl_chunk_chars"], 1000) / 2 for t in ev["tasks"] if t in embedded)
    for task in ev["tasks"]:
        if task not in embedded:
            limit = ev["limit"].get(task) if isinstance(ev["limit"], dict) else ev["limit"]
            tokens += (limit * (57 if task == "mmlu" else 1) if limit else 15000) * 4 * 150
    return tokens


def in_turn(costs: list[StageCost]) -> StageCost:
    """One job doing the work of ``costs`` one after another: their sums, the largest peak."""
    first = costs[0]
    return StageCost(first.stage, 1, sum(c.flops for c in costs), sum(c.bytes_read for c in costs),
                     sum(c.bytes_written for c in costs), max(c.peak_bytes for c in costs),
                     sum(c.serial_ops for c in costs), first.accelerated)


def fixed_slice_batch(cpt: dict) -> int:
    """Sequences per forward pass of the step-0 losses and seams: CPT's micro batch where set (a global batch of
    256 × 4096 tokens is no forward pass), else its batch."""
    return cpt.get("micro_batch_size") or cpt["batch_size"]


def workflow_costs(config: dict, model_config: dict, weight_bytes: int = 4,
                   embedded_tasks: list[str] = ()) -> dict[str, StageCost]:
    """Each tensor stage of ``config``'s workflow: the cost of its most expensive job, and how many jobs it runs."""
    from deepen.workflow import design
    from deepen.expand import methods as registry

    shape = Shape.of(model_config, weight_bytes)
    L = shape.layers
    methods = config["methods"]
    plans = {m: registry.build_plan(opts, L) for m, opts in methods.items()}
    needs = {a for opts in methods.values() for a in registry.required_artifacts(opts)}
    aligned = any(registry.runs_aligned(opts) for opts in methods.values())
    bases = 2 if aligned else 1
    matrices = list(shape.matrices())
    models = [m for m in design.init_models(config) if m != "base"]
    runs = design.runs(config)
    cpt, predictor = config["cpt"], config["predictor"]
    deepest = max([L] + [len(p) for p in plans.values()])
    costs = {"extract_weights": extract_cost(shape)}

    def widest(make) -> StageCost:
        return max((make(m) for m in matrices), key=lambda c: c.seconds(1e10, 1e8))

    def jobs(cost: StageCost, n: int) -> StageCost:
        return StageCost(**{**cost.__dict__, "jobs": n})

    # every stage, as a rule exists for it; jobs 0 where the config runs none
    costs["svd"] = jobs(widest(lambda m: svd_cost(shape, m)), bases * len(matrices) * ("svd" in needs))
    # a predictor job trains one space's predictors, every matrix type in turn
    spaces = [s for s in ("predictor", "predictor_nosvd") if s in needs]
    costs["predictor"] = jobs(in_turn([predictor_cost(shape, m, predictor) for m in matrices]), bases * len(spaces))
    fits = len(predictor.get("heldout_layers") or [0])
    costs["predictor_heldout"] = jobs(in_turn([predictor_cost(shape, m, predictor, fits, "predictor_heldout")
                                               for m in matrices]), bases * len(spaces))
    costs["align_base"] = jobs(align_cost(shape), int(aligned))
    generated = [generate_cost(shape, methods[method]["generator"], len(new_layers(plans[method])), predictor)
                 for method in {m.partition("/")[0] for m in models}]
    costs["generate_layers"] = jobs(max(generated, key=lambda c: c.seconds(1e10, 1e8), default=generate_cost(
        shape, "copy", 0)), len(models))
    costs["reconstruct"] = jobs(reconstruct_cost(shape, deepest), len(models))
    slice_args = dict(seq_len=cpt["seq_len"], batch=fixed_slice_batch(cpt))
    costs["init_loss"] = jobs(loss_cost("init_loss", shape, deepest, cpt["eval_tokens"], **slice_args),
                              len(models) + 1)
    seam_tokens = config["report"].get("seam_tokens") or cpt["eval_tokens"]
    freezes = len({f for _, f, _ in runs})
    seams = [loss_cost("seams", shape, len(p), seam_tokens, passes=1 + len(p) - L, models=1 + freezes, **slice_args)
             for p in plans.values() if len(p) > L]
    costs["seams"] = jobs(max(seams, key=lambda c: c.flops, default=loss_cost("seams", shape, L, 0, **slice_args)),
                          len(seams))
    # the base's layer profile: the whole base, then once without each of its layers
    auto = any(is_auto(opts.get("placement")) for opts in methods.values())
    costs["layer_profile"] = jobs(loss_cost("layer_profile", shape, L, seam_tokens, passes=1 + L, **slice_args),
                                  int(auto))
    trained = [cpt_cost(shape, len(plans[m]) if m in plans else L,
                        added_layers(plans[m]) if m in plans else None, f, cpt)
               for m, f, _ in runs]
    costs["continual_pretrain"] = jobs(max(trained, key=lambda c: c.flops), len(runs))
    ev = config["eval"]
    steps0 = len(models) + 1 if ev.get("step0") else 0
    costs["evaluate"] = jobs(loss_cost("evaluate", shape, deepest, evaluation_tokens(ev, list(embedded_tasks)),
                                       seq_len=256, batch=ev["batch_size"]), len(runs) + steps0)
    return costs
