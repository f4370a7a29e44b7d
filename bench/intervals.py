"""Confidence intervals shared by the benchmark scripts: Student's t over seeds or markets."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}, the two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    return float(stats.t.ppf(0.975, df))


def t_half_width(values) -> float:
    """Half-width of the 95% t-interval of the mean, t_{0.975, n-1} sd / sqrt(n), of the finite ``values``
    (NaN with fewer than two)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan
    return t_quantile_975(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
