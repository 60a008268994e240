"""Up-scaling methods: the registry (:mod:`.registry`) and the methods of the literature, which register
themselves when this package is imported."""

from deepen.expand.methods.registry import (ALIGN, COMMON_OPTIONS, METHODS, Method, Option, build_plan,  # noqa: F401
                                            is_stochastic, method, method_of, option_problems, placed_plan,
                                            register, required_artifacts, runs_aligned, with_defaults)
from deepen.expand.methods import interpolation, lesa, opt_deus, reuse  # noqa: E402, F401  (they register themselves)
