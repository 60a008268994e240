"""Resource requests grow with the model and the run, from the estimates in deepen/workflow/resources.py."""

from deepen.workflow import resources

LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, vocab_size=128256,
                num_attention_heads=32, num_key_value_heads=8)


def test_parameter_count_of_the_llama_3_2_1b_shape():
    # Llama-3.2-1B has 1.236e9 parameters with its embedding tied to the head; counted untied here
    # (norms left out: 0.07e6).
    n = resources.parameter_count(LLAMA_1B)
    assert abs(n - (1.236e9 + 128256 * 2048)) / n < 1e-3


def test_training_time_scales_with_tokens_and_parameters_and_memory_with_size():
    # 6·N·D plus evaluations at a tenth of the tokens: 6.2e13 FLOPs at 2e10/s is 3100 s, 52 minutes.
    small = resources.training_minutes(1e7, 1e6, 2e10, safety=1)
    assert small == resources.STARTUP_MINUTES + 52
    assert resources.training_minutes(1e7, 2e6, 2e10, safety=1) == resources.STARTUP_MINUTES + 104
    assert resources.training_minutes(2e7, 1e6, 2e10, safety=3) == resources.STARTUP_MINUTES + 310
    assert resources.memory_mb(1e9, 4) > resources.memory_mb(1e8, 4) >= 1024
    assert resources.streaming_minutes(1e11, 2, 1e8, safety=1) == resources.STARTUP_MINUTES + 34
