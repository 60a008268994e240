"""Up-scaling methods: the registry (:mod:`.registry`) and the methods of the literature, which register
themselves when this package is imported."""

from deepen.expand.methods.registry import (ALIGN, COMMON_OPTIONS, METHODS, Method, Option,  # noqa: F401
                                            artifact_patterns, build_plan,
                                            family_problems, is_stochastic, method, method_of,
                                            new_layer_copies, option_problems, placed_plan, register,
                                            required_artifacts, runs_aligned, user_files, with_defaults)
# they register themselves
from deepen.expand.methods import interpolation, lesa, opt_deus, passthrough, reuse  # noqa: E402, F401
