"""Offline metrics for click and preference models: AUC, group AUC, log loss, calibration, pairwise
accuracy and Spearman correlation.

NumPy only. Every function checks its inputs (equal lengths, no NaN, labels in {0, 1},
probabilities in [0, 1], weights finite and non-negative) and raises ``ValueError`` naming the
argument at fault. Optional ``weights`` count rows: a row of weight 3 counts as three identical
rows (so integer weights give exactly the metric of the repeated data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "CalibrationTable",
    "auc",
    "average_ranks",
    "binomial_log_loss",
    "calibration_table",
    "expected_calibration_error",
    "gauc",
    "log_loss",
    "pairwise_accuracy",
    "spearman",
]


def _vector(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a 1-d float64 array without NaN."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric: {error}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN at position {int(np.flatnonzero(np.isnan(array))[0])}")
    return array


def _labels(values: ArrayLike, name: str = "labels") -> np.ndarray:
    array = _vector(values, name)
    if not np.isin(array, (0.0, 1.0)).all():
        bad = array[~np.isin(array, (0.0, 1.0))][0]
        raise ValueError(f"{name} must be 0/1 (or booleans), found {bad!r}")
    return array


def _probabilities(values: ArrayLike, name: str = "probs") -> np.ndarray:
    array = _vector(values, name)
    outside = (array < 0.0) | (array > 1.0)
    if outside.any():
        raise ValueError(f"{name} must lie in [0, 1], found {array[outside][0]!r}")
    return array


def _weights(values: ArrayLike | None, n: int) -> np.ndarray:
    if values is None:
        return np.ones(n)
    array = _vector(values, "weights")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError("weights must be finite and non-negative")
    return array


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise ValueError(f"inputs must have the same length, got {described}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("inputs are empty")
    return n


def _pair_statistics(
    labels: np.ndarray, scores: np.ndarray, codes: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group g: the weighted count of concordant (positive, negative) pairs, ties counting one
    half, and the positive and negative masses ``P_g`` and ``N_g``; ``codes`` are group indices
    0..G-1.

    Rows are sorted by (group, score); a block is a run of equal scores within a group. A positive
    in block b beats the negatives of the group's earlier blocks and ties with those of block b,
    which is the Mann–Whitney rank statistic with mid-ranks, in O(n log n).
    """
    order = np.lexsort((scores, codes))
    group, score = codes[order], scores[order]
    positive = weights[order] * labels[order]
    negative = weights[order] - positive
    starts = np.r_[True, (group[1:] != group[:-1]) | (score[1:] != score[:-1])]
    block = np.cumsum(starts) - 1
    block_positive = np.bincount(block, positive)
    block_negative = np.bincount(block, negative)
    block_group = group[starts]
    negatives_before = np.cumsum(block_negative) - block_negative
    group_start = np.searchsorted(block_group, block_group)  # first block of each block's group
    negatives_below = negatives_before - negatives_before[group_start]
    concordant = block_positive * (negatives_below + 0.5 * block_negative)
    n_groups = int(codes.max()) + 1
    return (
        np.bincount(block_group, concordant, n_groups),
        np.bincount(block_group, block_positive, n_groups),
        np.bincount(block_group, block_negative, n_groups),
    )


def auc(labels: ArrayLike, scores: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Area under the ROC curve.

    ``AUC = Σ_{i∈pos} Σ_{j∈neg} w_i w_j ([s_i > s_j] + ½[s_i = s_j]) / (Σ_pos w_i · Σ_neg w_j)``:
    the probability that a random positive outscores a random negative, ties counting one half
    (the Mann–Whitney U statistic with mid-ranks). Raises when only one class has weight.
    """
    y = _labels(labels)
    s = _vector(scores, "scores")
    n = _same_length(labels=y, scores=s)
    w = _weights(weights, n)
    _same_length(labels=y, weights=w)
    concordant, positive, negative = _pair_statistics(y, s, np.zeros(n, dtype=np.intp), w)
    if positive[0] <= 0 or negative[0] <= 0:
        raise ValueError("AUC needs both positive and negative labels (with positive weight)")
    return float(concordant[0] / (positive[0] * negative[0]))


def gauc(
    labels: ArrayLike, scores: ArrayLike, groups: ArrayLike, weights: ArrayLike | None = None
) -> float:
    """Group AUC: the per-group :func:`auc` averaged with each group's impressions as its weight.

    ``GAUC = Σ_g W_g AUC_g / Σ_g W_g`` over the groups (users, products…) that hold both classes,
    ``W_g`` the group's row count, or its total weight when ``weights`` are given. Groups with a
    single class have no AUC and are skipped; raises when no group is usable.
    """
    y = _labels(labels)
    s = _vector(scores, "scores")
    g = groups if isinstance(groups, np.ndarray) else np.asarray(groups, dtype=object)  # ids: not fixed-width
    if g.ndim != 1:
        raise ValueError(f"groups must be one-dimensional, got shape {g.shape}")
    n = _same_length(labels=y, scores=s, groups=g)
    w = _weights(weights, n)
    _same_length(labels=y, weights=w)
    try:
        _, codes = np.unique(g, return_inverse=True)
    except TypeError as error:
        raise ValueError(f"groups must be comparable values (ids): {error}") from None
    concordant, positive, negative = _pair_statistics(y, s, codes.astype(np.intp), w)
    usable = (positive > 0) & (negative > 0)
    if not usable.any():
        raise ValueError("no group holds both positive and negative labels, so GAUC is undefined")
    group_weight = (positive + negative)[usable]
    group_auc = concordant[usable] / (positive[usable] * negative[usable])
    return float(np.sum(group_weight * group_auc) / np.sum(group_weight))


def log_loss(
    labels: ArrayLike, probs: ArrayLike, weights: ArrayLike | None = None, eps: float = 1e-7
) -> float:
    """Mean binary cross-entropy in nats.

    ``LL = -Σ_i w_i [y_i log p_i + (1 - y_i) log(1 - p_i)] / Σ_i w_i``, with ``p`` clipped to
    ``[eps, 1 - eps]`` so a confident miss costs ``-log(eps)`` instead of infinity.
    """
    y = _labels(labels)
    p = _probabilities(probs)
    n = _same_length(labels=y, probs=p)
    w = _weights(weights, n)
    _same_length(labels=y, weights=w)
    if w.sum() <= 0:
        raise ValueError("weights sum to zero")
    p = np.clip(p, eps, 1.0 - eps)
    losses = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    return float(np.sum(w * losses) / w.sum())


def binomial_log_loss(
    clicks: ArrayLike, trials: ArrayLike, probs: ArrayLike, eps: float = 1e-7
) -> float:
    """:func:`log_loss` of aggregated rows: row i stands for ``trials_i`` impressions of which
    ``clicks_i`` were clicked, all predicted at ``probs_i``.

    ``LL = -Σ_i [c_i log p_i + (t_i - c_i) log(1 - p_i)] / Σ_i t_i`` — exactly the log loss of the
    expanded 0/1 rows. Counts need not be integers (e.g. weighted impressions) but must satisfy
    ``0 ≤ c_i ≤ t_i``.
    """
    c = _vector(clicks, "clicks")
    t = _vector(trials, "trials")
    p = _probabilities(probs)
    _same_length(clicks=c, trials=t, probs=p)
    if not (np.isfinite(c).all() and np.isfinite(t).all()):
        raise ValueError("clicks and trials must be finite")
    if (c < 0).any() or (c > t).any():
        raise ValueError("every row needs 0 <= clicks <= trials")
    if t.sum() <= 0:
        raise ValueError("trials sum to zero")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.sum(c * np.log(p) + (t - c) * np.log1p(-p)) / t.sum())


@dataclass(frozen=True)
class CalibrationTable:
    """Per-bin calibration, bins ordered by prediction; each array has one entry per non-empty bin.

    ``mean_prediction`` and ``observed_rate`` are weighted means of the predictions and labels in
    the bin; ``count`` is its number of rows and ``weight`` their total weight (= count without
    weights); ``lower`` and ``upper`` are its smallest and largest prediction.
    """

    lower: np.ndarray
    upper: np.ndarray
    mean_prediction: np.ndarray
    observed_rate: np.ndarray
    count: np.ndarray
    weight: np.ndarray


def calibration_table(
    labels: ArrayLike, probs: ArrayLike, n_bins: int = 10, weights: ArrayLike | None = None
) -> CalibrationTable:
    """Equal-mass calibration bins: rows sorted by prediction, cut into ``n_bins`` bins of about
    equal total weight.

    Rows with the same prediction always share a bin: a run of ties goes to the bin holding the
    midpoint of its cumulative weight, ``bin = floor(n_bins · (W_before + W_run / 2) / W)``. So bins
    can be unequal, or fewer than ``n_bins``, when predictions repeat; empty bins are dropped.
    Equal-mass bins (instead of equal-width ones) keep every bin's observed rate estimated from
    about ``n / n_bins`` rows even when predictions crowd near 0, as CTRs do.
    """
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    y = _labels(labels)
    p = _probabilities(probs)
    n = _same_length(labels=y, probs=p)
    w = _weights(weights, n)
    _same_length(labels=y, weights=w)
    total = w.sum()
    if total <= 0:
        raise ValueError("weights sum to zero")
    order = np.argsort(p, kind="stable")
    p, y, w = p[order], y[order], w[order]
    starts = np.r_[True, p[1:] != p[:-1]]
    run = np.cumsum(starts) - 1
    run_weight = np.bincount(run, w)
    midpoint = np.cumsum(run_weight) - run_weight / 2
    run_bin = np.minimum((n_bins * midpoint / total).astype(np.intp), n_bins - 1)
    bins = run_bin[run]
    bin_weight = np.bincount(bins, w, n_bins)
    kept = bin_weight > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prediction = np.bincount(bins, w * p, n_bins) / bin_weight
        observed_rate = np.bincount(bins, w * y, n_bins) / bin_weight
    lower = np.full(n_bins, np.nan)
    upper = np.full(n_bins, np.nan)
    first = np.r_[True, bins[1:] != bins[:-1]]
    last = np.r_[bins[1:] != bins[:-1], True]
    lower[bins[first]] = p[first]
    upper[bins[last]] = p[last]
    return CalibrationTable(
        lower=lower[kept],
        upper=upper[kept],
        mean_prediction=mean_prediction[kept],
        observed_rate=observed_rate[kept],
        count=np.bincount(bins, minlength=n_bins)[kept],
        weight=bin_weight[kept],
    )


def expected_calibration_error(
    labels: ArrayLike, probs: ArrayLike, n_bins: int = 10, weights: ArrayLike | None = None
) -> float:
    """``ECE = Σ_b (W_b / W) |mean prediction_b − observed rate_b|`` over the equal-mass bins of
    :func:`calibration_table`.

    A calibrated predictor scores near 0 (its residual is binomial noise of order
    ``sqrt(rate / (n / n_bins))``); a predictor off by a constant δ scores about |δ|.
    """
    table = calibration_table(labels, probs, n_bins, weights)
    gap = np.abs(table.mean_prediction - table.observed_rate)
    return float(np.sum(table.weight * gap) / np.sum(table.weight))


def pairwise_accuracy(prob_first_better: ArrayLike, first_is_better: ArrayLike) -> float:
    """Share of pairs whose better side the model picks (CAIG's reward-model metric).

    The model picks the first creative when ``p > 0.5`` and the second when ``p < 0.5``;
    ``p = 0.5`` is a coin flip and counts one half:
    ``acc = mean([p > ½] y + [p < ½] (1 − y) + ½ [p = ½])``, ``y = 1`` when the first is better.
    """
    p = _probabilities(prob_first_better, "prob_first_better")
    y = _labels(first_is_better, "first_is_better")
    _same_length(prob_first_better=p, first_is_better=y)
    correct = np.where(p > 0.5, y, 1.0 - y)
    return float(np.mean(np.where(p == 0.5, 0.5, correct)))


def average_ranks(values: ArrayLike) -> np.ndarray:
    """Ranks 1..n of ``values``, tied values sharing the average of the ranks they span."""
    x = _vector(values, "values")
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    run_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman's rank correlation: the Pearson correlation of :func:`average_ranks` of ``a`` and
    ``b``, ``ρ = cov(r_a, r_b) / (σ(r_a) σ(r_b))``. Raises when either input is constant (ρ is
    undefined) or has fewer than two values.
    """
    x = _vector(a, "a")
    y = _vector(b, "b")
    n = _same_length(a=x, b=y)
    if n < 2:
        raise ValueError("spearman needs at least two pairs")
    rx = average_ranks(x) - (n + 1) / 2
    ry = average_ranks(y) - (n + 1) / 2
    denominator = np.sqrt(np.sum(rx * rx) * np.sum(ry * ry))
    if denominator == 0:
        raise ValueError("spearman is undefined when a or b is constant")
    return float(np.sum(rx * ry) / denominator)


def click_metrics(
    clicks: ArrayLike, trials: ArrayLike, probs: ArrayLike, groups: ArrayLike | None = None
) -> dict[str, float]:
    """AUC, GAUC (by ``groups``, e.g. product), log loss and ECE of CTR predictions on aggregated rows.

    A row of ``clicks`` out of ``trials`` impressions counts as ``clicks`` positive and
    ``trials - clicks`` negative impressions with the same prediction, so every figure equals the one
    computed on the raw impressions. AUC and GAUC are NaN when undefined (every impression clicked, or
    none), as a validation split of a small log can be.
    """
    clicks = _vector(clicks, "clicks")
    trials = _vector(trials, "trials")
    probs = _probabilities(probs)
    _same_length(clicks=clicks, trials=trials, probs=probs)
    if np.any(clicks < 0) or np.any(clicks > trials):
        raise ValueError("clicks must lie between 0 and trials")
    labels = np.concatenate([np.ones(len(probs)), np.zeros(len(probs))])
    scores = np.concatenate([probs, probs])
    weights = np.concatenate([clicks, trials - clicks])
    out = {
        "impressions": float(trials.sum()),
        "clicks": float(clicks.sum()),
        "auc": _defined(auc, labels, scores, weights),
        "log_loss": binomial_log_loss(clicks, trials, probs),
        "ece": expected_calibration_error(labels, scores, weights=weights),
        "mean_predicted_ctr": float(np.sum(probs * trials) / trials.sum()),
        "observed_ctr": float(clicks.sum() / trials.sum()),
    }
    if groups is not None:
        group_array = groups if isinstance(groups, np.ndarray) else np.asarray(groups, dtype=object)
        out["gauc"] = _defined(gauc, labels, scores, np.concatenate([group_array, group_array]), weights)
    return out


def _defined(metric, *arrays: np.ndarray) -> float:
    """``metric(*arrays)``, or NaN where it is undefined because one class is missing."""
    try:
        return metric(*arrays)
    except ValueError:  # no clicks, or nothing but clicks (in every group, for GAUC)
        return float("nan")
