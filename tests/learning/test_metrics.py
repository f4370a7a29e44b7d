"""Metrics against hand-computed cases and their brute-force definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adcraft.learning.metrics import (
    auc,
    average_ranks,
    binomial_log_loss,
    calibration_table,
    expected_calibration_error,
    gauc,
    log_loss,
    pairwise_accuracy,
    spearman,
)


def brute_force_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    """Every (positive, negative) pair, weight w_i w_j, ties one half."""
    positive, negative = labels == 1, labels == 0
    sp, sn = scores[positive][:, None], scores[negative][None, :]
    pair_weight = weights[positive][:, None] * weights[negative][None, :]
    wins = (sp > sn) + 0.5 * (sp == sn)
    return float(np.sum(pair_weight * wins) / np.sum(pair_weight))


def test_auc_hand_computed_with_a_tie() -> None:
    # Pairs (pos, neg): (0.8, 0.1) win, (0.8, 0.4) win, (0.4, 0.1) win, (0.4, 0.4) tie → 3.5 / 4.
    assert auc([1, 0, 1, 0], [0.8, 0.1, 0.4, 0.4]) == pytest.approx(0.875)
    assert auc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 1.0
    assert auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert auc([True, False, True], [3.0, 3.0, 3.0]) == 0.5


def test_auc_matches_brute_force_on_random_data_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 200))
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]
        scores = rng.integers(0, 8, n) / 8.0  # few distinct values: many ties
        weights = rng.uniform(0.0, 3.0, n)
        assert auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores, np.ones(n)))
        assert auc(labels, scores, weights) == pytest.approx(brute_force_auc(labels, scores, weights))


def test_weighted_auc_equals_auc_of_rows_repeated_by_weight() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 60)
    scores = rng.normal(size=60).round(1)
    weights = rng.integers(0, 5, 60)
    repeated = auc(np.repeat(labels, weights), np.repeat(scores, weights))
    assert auc(labels, scores, weights) == pytest.approx(repeated)
    assert auc(labels, scores, weights) != pytest.approx(auc(labels, scores))


def test_gauc_weights_groups_by_impressions_and_skips_one_class_groups() -> None:
    labels = [1, 0, 0, 1, 0, 1, 1, 1]
    scores = [0.9, 0.1, 0.5, 0.2, 0.3, 0.7, 0.0, 0.1]
    groups = ["a", "a", "a", "b", "b", "b", "c", "c"]
    # a: 1.0 (3 rows); b: positives 0.2 and 0.7 against 0.3 → 0.5 (3 rows); c: one class, skipped.
    assert gauc(labels, scores, groups) == pytest.approx((3 * 1.0 + 3 * 0.5) / 6)
    weights = [1, 1, 1, 2, 2, 2, 1, 1]
    assert gauc(labels, scores, groups, weights) == pytest.approx((3 * 1.0 + 6 * 0.5) / 9)


def test_gauc_equals_mean_of_per_group_brute_force() -> None:
    rng = np.random.default_rng(2)
    groups = rng.integers(0, 12, 400)
    labels = rng.integers(0, 2, 400)
    scores = rng.integers(0, 5, 400).astype(float)
    weights = rng.uniform(0.5, 2.0, 400)
    total, mass = 0.0, 0.0
    for g in np.unique(groups):
        rows = groups == g
        if len(np.unique(labels[rows])) == 2:
            total += weights[rows].sum() * brute_force_auc(labels[rows], scores[rows], weights[rows])
            mass += weights[rows].sum()
    assert gauc(labels, scores, groups, weights) == pytest.approx(total / mass)


def test_log_loss_hand_computed_and_clipped() -> None:
    expected = -(math.log(0.8) + math.log(1 - 0.3)) / 2
    assert log_loss([1, 0], [0.8, 0.3]) == pytest.approx(expected)
    assert log_loss([1, 0], [0.8, 0.3], weights=[3, 1]) == pytest.approx(
        -(3 * math.log(0.8) + math.log(0.7)) / 4
    )
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-7))


def test_binomial_log_loss_equals_log_loss_of_expanded_rows() -> None:
    clicks, trials, probs = np.array([2, 0, 5]), np.array([10, 4, 5]), np.array([0.2, 0.05, 0.9])
    labels = np.concatenate([np.r_[np.ones(c), np.zeros(t - c)] for c, t in zip(clicks, trials)])
    expanded = np.repeat(probs, trials)
    assert binomial_log_loss(clicks, trials, probs) == pytest.approx(log_loss(labels, expanded))


def test_ece_is_near_zero_for_a_calibrated_predictor_and_not_for_a_biased_one() -> None:
    rng = np.random.default_rng(3)
    probs = rng.beta(1.0, 20.0, 50_000)  # CTR-like predictions crowded near 0
    labels = rng.random(50_000) < probs
    assert expected_calibration_error(labels, probs) < 0.003
    biased = np.clip(probs * 1.5, 0.0, 1.0)
    assert expected_calibration_error(labels, biased) > 0.015


def test_calibration_table_has_equal_mass_bins_and_keeps_ties_together() -> None:
    probs = np.r_[np.linspace(0.01, 0.99, 100)]
    labels = (np.arange(100) % 2).astype(int)
    table = calibration_table(labels, probs, n_bins=4)
    assert table.count.tolist() == [25, 25, 25, 25]
    assert np.all(table.lower <= table.mean_prediction) and np.all(table.mean_prediction <= table.upper)
    assert np.all(table.upper[:-1] < table.lower[1:])
    tied = calibration_table([0, 1, 0, 1, 1, 0], [0.1, 0.1, 0.1, 0.1, 0.7, 0.8], n_bins=3)
    assert tied.count.tolist() == [4, 2]  # the tie run (midpoint 2 of 6) fills bin 1
    assert tied.observed_rate[0] == 0.5 and tied.mean_prediction[0] == pytest.approx(0.1)


def test_pairwise_accuracy_counts_coin_flips_as_half() -> None:
    assert pairwise_accuracy([0.9, 0.2, 0.5, 0.6], [1, 0, 1, 0]) == pytest.approx(2.5 / 4)


def test_spearman_of_a_monotone_transform_is_one_and_handles_ties() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=200)
    assert spearman(a, np.exp(3 * a)) == pytest.approx(1.0)
    assert spearman(a, -(a**3)) == pytest.approx(-1.0)
    assert average_ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    # Ranks (1, 2.5, 2.5, 4) and (1, 2, 3, 4): Pearson of the ranks.
    expected = np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1]
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: auc([1, 0, 1], [0.1, 0.2]), "same length"),
        (lambda: auc([1, 0], [0.1, float("nan")]), "NaN"),
        (lambda: auc([1, 2], [0.1, 0.2]), "0/1"),
        (lambda: auc([1, 1], [0.1, 0.2]), "both positive and negative"),
        (lambda: auc([1, 0], [0.1, 0.2], weights=[1, -1]), "non-negative"),
        (lambda: gauc([1, 1, 0], [0.1, 0.2, 0.3], ["a", "a", "b"]), "no group"),
        (lambda: log_loss([1, 0], [0.5, 1.2]), r"\[0, 1\]"),
        (lambda: binomial_log_loss([3], [2], [0.5]), "clicks <= trials"),
        (lambda: expected_calibration_error([1, 0], [0.2, 0.3], n_bins=0), "n_bins"),
        (lambda: pairwise_accuracy([0.4, -0.1], [1, 0]), r"\[0, 1\]"),
        (lambda: spearman([1, 1, 1], [1, 2, 3]), "constant"),
        (lambda: spearman([1, 2, float("nan")], [1, 2, 3]), "NaN"),
        (lambda: auc([], []), "empty"),
    ],
)
def test_bad_inputs_raise_value_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_click_metrics_on_aggregated_rows_equal_raw_impressions():
    from adcraft.learning.metrics import auc, click_metrics, log_loss

    rng = np.random.default_rng(4)
    trials = rng.integers(1, 20, 60).astype(float)
    probs = rng.uniform(0.05, 0.6, 60)
    clicks = rng.binomial(trials.astype(int), probs).astype(float)
    groups = rng.choice(["a", "b", "c"], 60)
    labels = np.concatenate([np.repeat(1.0, int(clicks.sum())), np.repeat(0.0, int((trials - clicks).sum()))])
    scores = np.concatenate([np.repeat(probs, clicks.astype(int)), np.repeat(probs, (trials - clicks).astype(int))])
    got = click_metrics(clicks, trials, probs, groups)
    assert got["auc"] == pytest.approx(auc(labels, scores))
    assert got["log_loss"] == pytest.approx(log_loss(labels, scores))
    assert got["impressions"] == trials.sum() and 0.5 < got["gauc"] <= 1.0
    with pytest.raises(ValueError, match="clicks"):
        click_metrics(trials + 1, trials, probs)


def test_click_metrics_of_a_log_where_every_impression_is_clicked_are_finite_or_nan():
    from adcraft.learning.metrics import click_metrics

    got = click_metrics([5, 3], [5, 3], [0.5, 0.6], ["a", "b"])  # CTR 1 everywhere: no negative impression
    assert np.isnan(got["auc"]) and np.isnan(got["gauc"])
    assert got["observed_ctr"] == 1.0 and np.isfinite(got["log_loss"]) and np.isfinite(got["ece"])
