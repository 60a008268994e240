"""Seed statistics for the report: t-intervals of a mean and of a paired difference."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values with the half-width of its two-sided confidence interval (nan when n < 2)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def excludes_zero(self) -> bool:
        return not math.isnan(self.half_width) and (self.low > 0 or self.high < 0)

    def format(self, digits: int = 4) -> str:
        if self.n == 0:
            return ""
        if math.isnan(self.half_width):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def t_quantile(confidence: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, df))


def t_interval(values, confidence: float = 0.95) -> Interval:
    """Student-t interval of the mean: mean ± t(df=n-1) · s / sqrt(n), s the sample standard deviation."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    mean = sum(values) / n
    if n == 1:
        return Interval(mean, math.nan, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Interval(mean, t_quantile(confidence, n - 1) * sd / math.sqrt(n), n)


def paired_difference(values: dict, reference: dict, confidence: float = 0.95) -> Interval:
    """Interval of the mean of ``values[s] - reference[s]`` over the seeds ``s`` both have: pairing by
    seed removes what the two runs share (data order), so smaller differences become visible."""
    seeds = sorted(set(values) & set(reference))
    return t_interval([values[s] - reference[s] for s in seeds], confidence)
