"""What a job asks a cluster for (memory, run time), estimated from the model's size and the config, for the jobs
outside the comparison's tensor stages (the base's pretraining, growth, SFT, the report); those have a cost model
of their own (deepen/workflow/stage_costs.py).

Streaming stages scale with the bytes they read and write, training with its FLOPs. A job killed for its time
limit costs a rerun, a generous one only queue priority, so the estimates are multiplied by ``runtime_safety``
(config ``resources``).
"""

import math

from deepen.models.flops import layer_matmul_params

# Starting Python and importing torch and transformers, loading and saving: measured 2-8 s per job on
# 2 CPU cores (docs/configuration_guide.md); a shared filesystem on a cluster is slower.
STARTUP_MINUTES = 5
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def parameter_count(model_config: dict) -> int:
    """Approximate parameters of a decoder-only transformer: attention and MLP weights of every layer,
    the embedding and the output head."""
    layers, h = model_config["num_hidden_layers"], model_config["hidden_size"]
    return layers * layer_matmul_params(model_config) + 2 * model_config.get("vocab_size", 32000) * h


def memory_mb(params: int, bytes_per_param: float, floor: int = 1024) -> int:
    """Memory for a job that holds ``bytes_per_param`` bytes per base parameter, plus the interpreter."""
    return max(floor, int(params * bytes_per_param / 2**20) + 512)


def request_minutes(seconds: float, safety: float) -> int:
    """A run-time request: startup, and ``safety`` × the estimated seconds."""
    return STARTUP_MINUTES + math.ceil(safety * seconds / 60)


def streaming_minutes(nbytes: float, passes: float, bytes_per_second: float, safety: float) -> int:
    """A stage that reads or writes ``passes`` × ``nbytes`` (extraction, SVD, reconstruction)."""
    return request_minutes(nbytes * passes / bytes_per_second, safety)


def training_minutes(params: int, tokens: float, flops_per_second: float, safety: float,
                     eval_fraction: float = 0.1) -> int:
    """Training on ``tokens`` tokens at 6 FLOPs per parameter and token, with the periodic evaluations
    (forward only, 2 FLOPs per parameter and token) counted as a fraction of the training tokens."""
    flops = 6 * params * tokens + 2 * params * tokens * eval_fraction
    return request_minutes(flops / flops_per_second, safety)
