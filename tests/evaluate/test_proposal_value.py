from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from adcraft.errors import InputError
from adcraft.evaluate.proposal_value import ProposalPolicy, estimate_proposals, lift_by_product
from adcraft.market import load_market
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    root = tmp_path_factory.mktemp("ope")
    config = SimulatorConfig(seed=8, n_products=6, n_impressions=60_000, creatives_per_product=3,
                             canvas=(256, 256), photo_size=160)
    sim = simulate_market(config, root / "market")
    return load_market(sim.market_dir), GroundTruth.load(sim.truth_dir)


def second_creatives(market) -> pd.DataFrame:
    """A proposal set: each product's second past creative at rank 1, its first at rank 2."""
    rows = []
    for pid, group in market.creatives.groupby("product_id"):
        for rank, elements in ((1, group["elements"].iloc[1]), (2, group["elements"].iloc[0])):
            rows.append({"product_id": pid, "rank": rank, "elements": list(elements)})
    return pd.DataFrame(rows)


def true_value(market, truth, proposals) -> float:
    """Traffic-weighted true CTR of each product's rank-1 proposal."""
    ctr = truth.creatives.set_index("creative_id")["true_ctr"]
    key = {(p, tuple(e)): c for c, p, e in zip(market.creatives.creative_id, market.creatives.product_id,
                                               market.creatives.elements)}
    share = truth.products.set_index("product_id")["traffic_share"]
    top = proposals[proposals["rank"] == 1]
    return float(sum(share[p] * ctr[key[(p, tuple(e))]] for p, e in zip(top.product_id, top.elements)))


def test_policies_are_distributions_over_each_products_proposals():
    proposals = pd.DataFrame({"product_id": ["a", "a", "a", "b"], "rank": [1, 2, 3, 1],
                              "elements": [["x"], ["y"], ["z"], ["x"]]})
    top = ProposalPolicy("top1").probabilities(proposals)
    assert top.groupby("product_id")["probability"].sum().tolist() == [1.0, 1.0] and len(top) == 2
    soft = ProposalPolicy("softmax", temperature=1.0).probabilities(proposals)
    a = soft[soft.product_id == "a"].sort_values("rank")["probability"].to_numpy()
    assert a.sum() == pytest.approx(1.0) and a[0] > a[1] > a[2]
    assert a[0] / a[1] == pytest.approx(np.e)
    with pytest.raises(InputError):
        ProposalPolicy("greedy")


@pytest.mark.parametrize("estimator", ["ips", "snips", "dr"])
def test_estimate_agrees_with_the_truth_within_its_uncertainty(logged, estimator):
    market, truth = logged
    proposals = second_creatives(market)
    rate = market.impressions["click"].mean()

    def constant_model(products, combos, contexts):  # a deliberately crude reward model for DR
        return np.full(len(products), rate)

    result = estimate_proposals(market, proposals, estimator, predict=constant_model, n_bootstrap=300, seed=1)
    truth_value = true_value(market, truth, proposals)
    assert abs(result.proposals.value - truth_value) < 4 * result.proposals.std_error
    assert result.proposals.ci_low < result.proposals.value < result.proposals.ci_high
    assert 0 < result.matched_impressions < result.impressions
    assert result.logging.value == pytest.approx(market.impressions["click"].mean())


def test_logs_without_propensities_are_refused(logged):
    market, _ = logged
    stripped = dataclasses.replace(market, impressions=market.impressions.drop(columns=["propensity"]))
    with pytest.raises(InputError, match="propensit"):
        estimate_proposals(stripped, second_creatives(market))


def test_unknown_products_and_unmatched_proposals_are_refused(logged):
    market, _ = logged
    with pytest.raises(InputError, match="products the market does not have"):
        estimate_proposals(market, pd.DataFrame({"product_id": ["zz"], "rank": [1], "elements": [["a"]]}))
    never = second_creatives(market).assign(elements=lambda f: [["nope"] * len(e) for e in f["elements"]])
    with pytest.raises(InputError, match="no logged impression"):
        estimate_proposals(market, never)
    with pytest.raises(InputError, match="reward model"):
        estimate_proposals(market, second_creatives(market), "dr")


def test_per_product_lift_tracks_each_products_true_ctr(logged):
    market, truth = logged
    proposals = second_creatives(market)
    rate = market.impressions["click"].mean()

    def constant_model(products, combos, contexts):
        return np.full(len(products), rate)

    lifts = lift_by_product(market, proposals, constant_model, n_bootstrap=300, seed=2).set_index("product_id")
    assert sorted(lifts.index) == sorted(market.products["product_id"])
    ctr = truth.creatives.set_index("creative_id")["true_ctr"]
    second = market.creatives.groupby("product_id")["creative_id"].nth(1)
    covered = 0
    for pid, cid in zip(market.creatives.loc[second.index, "product_id"], second):
        row = lifts.loc[pid]
        assert row["lift_low"] <= row["lift"] <= row["lift_high"]
        assert row["estimated_ctr"] == pytest.approx(row["logged_ctr"] * (1 + row["lift"]))
        covered += row["lift_low"] <= ctr[cid] / row["logged_ctr"] - 1 <= row["lift_high"]
    assert covered >= len(lifts) - 1  # 95% intervals: at most one of six products may miss


def test_per_product_lift_of_a_product_without_impressions_is_nan(logged):
    market, _ = logged
    quiet = market.creatives["product_id"].iloc[0]
    shown = market.creatives.loc[market.creatives["product_id"] != quiet, "creative_id"]
    pruned = dataclasses.replace(market, impressions=market.impressions[market.impressions["creative_id"].isin(shown)])
    lifts = lift_by_product(pruned, second_creatives(market), lambda p, c, x: np.full(len(p), 0.03))
    row = lifts.set_index("product_id").loc[quiet]
    assert row["impressions"] == 0 and np.isnan(row["lift"])


def test_a_huge_context_in_one_row_costs_its_own_size_not_rows_times_its_size():
    # A 200,000-character context among 1,000 impressions: a fixed-width unicode array of the rows would
    # take 1,000 x 200,000 x 4 bytes (800 MB); object arrays and codes keep the peak near the strings' size.
    import tracemalloc

    from adcraft.evaluate.metrics import click_metrics
    from adcraft.evaluate.proposal_value import _expected_under_policy

    huge = '{"k": "' + "x" * 200_000 + '"}'
    contexts = [huge if row == 7 else f'{{"device": "d{row % 3}"}}' for row in range(1000)]
    log = pd.DataFrame({"product_id": [f"p{row % 4}" for row in range(1000)], "context": contexts})
    target = pd.DataFrame({"product_id": ["p0", "p1", "p2", "p3"], "key": ["a", "b", "c", "d"],
                           "elements": [["e"]] * 4, "probability": 1.0})

    def predict(product_ids, combos, contexts):
        return np.array([0.5 if len(context) > 1000 else 0.1 for context in contexts])

    tracemalloc.start()
    try:
        expected = _expected_under_policy(log, target, predict)
        click_metrics(np.arange(1000) % 2, np.ones(1000), np.full(1000, 0.1), contexts)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert expected[7] == 0.5 and expected[8] == 0.1
    assert peak < 20 * len(huge)
