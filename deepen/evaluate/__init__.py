"""Evaluation: step-0 losses, seam diagnostics, the embedded tasks and the standard benchmarks through lm-eval."""
