"""``bench/serving_arms.py``: what a round's arms were worth, from its served rows and a truth."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import serving_arms  # noqa: E402

# true CTR by (product, arm) in two contexts
TRUTH = {("p1", ("a",)): (0.02, 0.04), ("p1", ("b",)): (0.06, 0.10), ("p2", ("c",)): (0.05, 0.05)}
WEIGHTS = np.array([0.75, 0.25])


def value(product_id: str, elements: tuple[str, ...], context: int) -> float:
    return TRUTH[product_id, elements][context]


def rows(*served: tuple[str, str, str, int]) -> pd.DataFrame:
    return pd.DataFrame([{"product_id": p, "source": s, "elements": (e,), "context": c} for p, s, e, c in served])


def test_each_figure_weighs_the_products_by_their_served_impressions():
    served = rows(("p1", "current", "a", 0), ("p1", "approved", "b", 1), ("p1", "current", "a", 1),
                  ("p2", "current", "c", 0))
    got = serving_arms.round_values(served, value, WEIGHTS)
    worth_a, worth_b = 0.75 * 0.02 + 0.25 * 0.04, 0.75 * 0.06 + 0.25 * 0.10
    assert got["served"] == pytest.approx((0.02 + 0.10 + 0.04 + 0.05) / 4)  # each impression in its context
    assert got["arms' mean"] == pytest.approx((3 * (worth_a + worth_b) / 2 + 0.05) / 4)
    assert got["best arm"] == pytest.approx((3 * worth_b + 0.05) / 4)
    assert got["current"] == pytest.approx((3 * worth_a + 0.05) / 4)
    assert got["arms per product"] == 1.5 and got["impressions"] == 4


def test_a_policy_over_the_arms_earns_between_the_worst_and_the_best_arm():
    rng = np.random.default_rng(0)
    arms = [("p1", "a"), ("p1", "b"), ("p2", "c")]
    served = rows(*[(p, "current" if e != "b" else "approved", e, int(rng.random() < 0.25))
                    for p, e in (arms[i] for i in rng.integers(0, 3, size=2000))])
    got = serving_arms.round_values(served, value, WEIGHTS)
    assert got["arms' mean"] <= got["best arm"]
    # only the best arm of every product shown: served (context drawn as the weights say) is near the best arm
    best = rows(*[("p1", "approved", "b", int(rng.random() < 0.25)) for _ in range(4000)])
    one = serving_arms.round_values(best, value, WEIGHTS)
    assert one["best arm"] == one["arms' mean"] == pytest.approx(0.07)
    assert one["served"] == pytest.approx(0.07, abs=0.002)


def test_the_table_pairs_the_current_creatives_change_by_seed_and_reports_the_share_of_the_gap():
    def r(served, mean, best, current):
        return {"served": served, "arms' mean": mean, "best arm": best, "current": current,
                "arms per product": 2.0, "impressions": 100.0}
    per_seed = {1: [r(0.03, 0.03, 0.03, 0.03), r(0.04, 0.03, 0.05, 0.035)],
                2: [r(0.02, 0.02, 0.02, 0.02), r(0.03, 0.02, 0.04, 0.030)]}
    table = serving_arms.table(per_seed)
    assert table.loc[0, "share of the gap"] == "-"  # one arm per product: no gap
    assert table.loc[1, "share of the gap"] == "0.50"  # served +0.01 of a +0.02 gap on both seeds
    assert table.loc[1, "current - round 1's"].startswith("+0.0075 [")  # +0.005 and +0.010
