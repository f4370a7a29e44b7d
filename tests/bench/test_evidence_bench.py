"""``bench/evidence.py --per-product``: each product's evidence against its proposal's true lift."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import evidence  # noqa: E402


def products(seed: int = 0, n: int = 400) -> pd.DataFrame:
    """Products whose estimates are the truth plus noise of known spread, with intervals that know it."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.1, 0.2, n)
    estimate = true + rng.normal(0.0, 0.1, n)
    half = 1.645 * 0.1
    return pd.DataFrame({"world": np.where(np.arange(n) % 2 == 0, "visual", "sparse"), "seed": 1,
                         "product_id": [f"p{i}" for i in range(n)], "true lift": true, "estimate": estimate,
                         "low": estimate - half, "high": estimate + half, "launched": estimate - half > 0})


def test_calibrated_intervals_hold_about_their_level_and_the_rule_row_matches_the_rule():
    rows = products()
    worlds, rules = evidence.per_product_summary(rows)
    everything = worlds.set_index("world").loc["all"]
    assert everything["products"] == len(rows)
    assert everything["95% low"] <= 0.9 <= everything["95% high"]
    held = ((rows["low"] <= rows["true lift"]) & (rows["true lift"] <= rows["high"])).mean()
    assert everything["interval holds the truth"] == pytest.approx(held)
    assert everything["corr(estimate, true)"] > 0.8
    rule = rules.set_index("launch where").iloc[0]
    assert rule["launched share"] == pytest.approx(rows["launched"].mean())


def test_the_lower_bound_rule_launches_fewer_products_and_loses_less_often_than_the_estimate_rule():
    _, rules = evidence.per_product_summary(products(seed=3))
    bound, estimate = rules.iloc[0], rules.iloc[1]
    assert bound["launched share"] < estimate["launched share"]
    assert bound["losing among launched"] < estimate["losing among launched"]
    for rule in (bound, estimate):
        assert rule["harm share (losing launched / all)"] <= rule["launched share"]


def test_an_uninformative_estimate_does_not_tell_gainers_from_losers():
    rows = products(seed=5)
    rows["estimate"] = np.random.default_rng(9).permutation(rows["estimate"].to_numpy())
    worlds, _ = evidence.per_product_summary(rows)
    assert abs(worlds.set_index("world").loc["all", "corr(estimate, true)"]) < 0.2


def proposal_sets(seed: int = 0, n: int = 200, bias: float = 0.0) -> pd.DataFrame:
    """Runs whose set-level estimate is the truth plus ``bias`` plus noise of sd 0.05, with 90% intervals that know
    the noise but not the bias."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.2, 0.1, n)
    estimate = true + bias + rng.normal(0.0, 0.05, n)
    half = 1.645 * 0.05
    return pd.DataFrame({"world": np.where(np.arange(n) % 2 == 0, "visual", "drift"), "seed": np.arange(n),
                         "true lift": true, "estimate": estimate, "low": estimate - half, "high": estimate + half,
                         "level": 0.9})


def test_honest_set_intervals_cover_about_their_level_and_a_biased_estimate_is_caught_overstating():
    honest = evidence.interval_summary(proposal_sets()).set_index("world").loc["all"]
    assert honest["runs"] == 200
    assert honest["coverage 95% low"] <= 0.9 <= honest["coverage 95% high"]
    assert honest["low above truth"] < 0.15 and honest["high below truth"] < 0.15
    biased = evidence.interval_summary(proposal_sets(bias=0.3)).set_index("world").loc["all"]
    assert biased["coverage"] < 0.05 and biased["low above truth"] > 0.95
    assert biased["median |estimate - true| / |true|"] > honest["median |estimate - true| / |true|"]
    assert biased["mean estimate"] == pytest.approx(honest["mean estimate"] + 0.3, abs=0.02)


def test_the_median_relative_error_leaves_out_runs_whose_true_lift_is_zero():
    rows = proposal_sets(n=4).assign(**{"true lift": [0.0, 0.1, 0.2, 0.4], "estimate": [0.5, 0.2, 0.2, 0.2]})
    row = evidence.interval_summary(rows).set_index("world").loc["all"]
    assert row["median |estimate - true| / |true|"] == pytest.approx(0.5)  # of 1.0, 0.0 and 0.5


class _Run:
    """What ``ScoredRun.lift`` reads of a scored run: the products, their traffic shares and logging policy's CTRs."""

    def __init__(self) -> None:
        self.market = type("M", (), {"products": pd.DataFrame({"product_id": ["a", "b", "c"]})})()
        self.share = pd.Series({"a": 0.25, "b": 0.75, "c": 0.5})
        self.logging = pd.Series({"a": 0.02, "b": 0.04, "c": 0.03})


def test_the_true_set_lift_weighs_products_by_traffic_over_the_products_scored():
    run = _Run()
    lift = evidence.ScoredRun.lift(run, {"a": 0.03, "b": 0.04})  # c has no proposal: left out of both sums
    assert lift == pytest.approx((0.25 * 0.03 + 0.75 * 0.04) / (0.25 * 0.02 + 0.75 * 0.04) - 1)
    assert evidence.ScoredRun.lift(run, {"a": 0.02, "b": 0.04, "c": 0.03}) == pytest.approx(0.0)
