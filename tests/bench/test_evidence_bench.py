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
