from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from adcraft.atomic import json_text
from adcraft.errors import InputError
from adcraft.evaluate import proposal_value
from adcraft.evaluate.proposal_value import (
    ProposalPolicy,
    estimate_proposals,
    lift_by_product,
    logged_impressions,
)
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


def test_logs_without_propensities_read_with_nan_propensities_when_none_are_needed(logged):
    market, _ = logged
    stripped = dataclasses.replace(market, impressions=market.impressions.drop(columns=["propensity"]))
    log = logged_impressions(stripped, propensities=False)
    full = logged_impressions(market)
    assert log["propensity"].isna().all()
    pd.testing.assert_frame_equal(log.drop(columns="propensity"), full.drop(columns="propensity"))


def as_creative_stats(market):
    """The market's impressions aggregated per creative (no context, no date), with no event-level log."""
    per = market.impressions.groupby("creative_id")["click"].agg(impressions="size", clicks="sum").reset_index()
    return dataclasses.replace(market, impressions=None, creative_stats=per)


def test_creative_stats_read_as_one_row_per_aggregated_impression(logged):
    market, _ = logged
    stats = as_creative_stats(market)
    with pytest.raises(InputError, match="event-level"):
        logged_impressions(stats)
    log = logged_impressions(stats, propensities=False)
    assert len(log) == len(market.impressions) and log["propensity"].isna().all() and (log["context"] == "").all()
    counted = log.groupby("creative_id")["click"].agg(["size", "sum"])
    expected = stats.creative_stats.set_index("creative_id")
    assert counted["size"].tolist() == expected.loc[counted.index, "impressions"].tolist()
    assert counted["sum"].tolist() == expected.loc[counted.index, "clicks"].tolist()
    owner = market.creatives.set_index("creative_id")["product_id"]
    assert (log["product_id"].to_numpy() == owner.loc[log["creative_id"]].to_numpy()).all()


def test_creative_stats_too_large_to_read_row_by_row_are_refused(logged, monkeypatch):
    market, _ = logged
    monkeypatch.setattr(proposal_value, "MAX_EXPANDED_IMPRESSIONS", len(market.impressions) - 1)
    with pytest.raises(InputError, match="event level"):
        logged_impressions(as_creative_stats(market), propensities=False)


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


# --- A one-slot market: several creative ids of a product share its one combination ---


def strict_json(text: str):
    """``json.loads`` that refuses NaN and Infinity (RFC 8259 has neither)."""
    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory):
    """A simulated one-slot market whose creatives of a product all show the product's first combination,
    its clicks redrawn from one CTR per product: every target policy over its combinations is then worth
    exactly what the logging policy is worth. Propensities are the simulator's (house default or uniform
    exploration over three creative ids), so a combination's own propensity is the sum over its ids."""
    config = SimulatorConfig(seed=5, n_products=4, n_impressions=4000, creatives_per_product=3,
                             slots=("background",), canvas=(96, 96), photo_size=48)
    market = load_market(simulate_market(config, tmp_path_factory.mktemp("one_slot") / "market").market_dir)
    first = market.creatives.groupby("product_id")["elements"].transform("first")
    creatives = market.creatives.assign(elements=first)
    product = creatives.set_index("creative_id").loc[market.impressions["creative_id"], "product_id"].to_numpy()
    ctr = dict(zip(sorted(set(product)), (0.02, 0.04, 0.06, 0.08)))
    clicks = np.random.default_rng(0).random(len(product)) < np.array([ctr[p] for p in product])
    impressions = market.impressions.assign(click=clicks.astype(market.impressions["click"].dtype))
    return dataclasses.replace(market, creatives=creatives, impressions=impressions)


def logged_combinations(market) -> pd.DataFrame:
    """The proposal set that equals what was logged: each product's one combination, at rank 1."""
    first = market.creatives.drop_duplicates("product_id")
    elements = [list(e) for e in first["elements"]]
    return pd.DataFrame({"product_id": first["product_id"], "rank": 1, "elements": elements})


def logged_ctr_model(market):
    """A calibrated reward model of the one-slot market: each product's logged CTR."""
    product = market.creatives.set_index("creative_id").loc[market.impressions["creative_id"], "product_id"]
    rate = market.impressions["click"].groupby(product.to_numpy()).mean()
    return lambda products, combos, contexts: rate.loc[list(products)].to_numpy()


@pytest.mark.parametrize("estimator", ["ips", "snips", "dm", "dr", "switch-dr"])
def test_proposals_equal_to_the_log_are_worth_the_logging_policys_ctr(one_slot, estimator):
    result = estimate_proposals(one_slot, logged_combinations(one_slot), estimator,
                                predict=logged_ctr_model(one_slot), n_bootstrap=400, seed=3)
    assert result.matched_impressions == result.impressions == 4000
    # Counting each creative id's propensity as the combination's made IPS about 3x the logged CTR.
    assert abs(result.lift) < 0.1
    assert result.lift_ci_low <= 0.0 <= result.lift_ci_high
    for estimate in (result.proposals, result.logging):
        assert 0.0 <= estimate.ci_low <= estimate.value <= estimate.ci_high <= 1.0
    assert result.proposals.ci_low <= result.logging.value <= result.proposals.ci_high
    assert result.reliable and strict_json(json.dumps(result.to_json(), allow_nan=False))["reliable"] is True


def test_a_combination_shared_by_creative_ids_splits_its_target_probability(one_slot):
    from adcraft.evaluate.proposal_value import policy_arrays

    arrays = policy_arrays(one_slot, logged_combinations(one_slot), "ips", ProposalPolicy(), None)
    ids = arrays.log.groupby("product_id")["creative_id"].nunique()
    np.testing.assert_allclose(arrays.target_probabilities, 1.0 / ids.loc[arrays.log["product_id"]].to_numpy())
    # the split target is a distribution over each product's logged creative ids: E_pi0[w] = 1 per product
    weights = arrays.target_probabilities / arrays.log["propensity"].to_numpy()
    assert weights.mean() == pytest.approx(1.0, abs=0.1)


def test_dr_intervals_stay_inside_zero_one_when_its_terms_do_not(one_slot):
    """DR terms q_target + w (r - q_logged) go below 0 for unclicked rows with large weights: with an
    overconfident model on a short log, the bootstrap's lower quantile falls below 0."""
    from adcraft.evaluate.ope import estimate_policy_value
    from adcraft.evaluate.proposal_value import policy_arrays

    short = dataclasses.replace(one_slot, impressions=one_slot.impressions.head(100))
    proposals = logged_combinations(one_slot)
    overconfident = lambda products, combos, contexts: np.full(len(products), 0.3)  # noqa: E731
    arrays = policy_arrays(short, proposals, "dr", ProposalPolicy(), overconfident)
    raw = estimate_policy_value(arrays.log["click"], arrays.log["propensity"], arrays.target_probabilities, "dr",
                                arrays.q_logged, arrays.q_target, n_bootstrap=300, seed=4)
    assert raw.ci_low < 0.0 <= raw.value  # what the DR bootstrap gives on its own
    result = estimate_proposals(short, proposals, "dr", n_bootstrap=300, seed=4, arrays=arrays)
    assert result.proposals.value == raw.value and raw.ci_high <= result.proposals.ci_high <= 1.0
    assert result.proposals.ci_low == 0.0


def test_tiny_propensities_are_refused_for_ips_and_flagged_for_snips(one_slot):
    tiny = dataclasses.replace(one_slot, impressions=one_slot.impressions.assign(propensity=1e-300))
    with pytest.raises(InputError, match=r"ips estimate of the CTR is .*, outside \[0, 1\]"):
        estimate_proposals(tiny, logged_combinations(tiny), "ips", n_bootstrap=50)
    result = estimate_proposals(tiny, logged_combinations(tiny), "snips", n_bootstrap=50)
    # SNIPS is scale-free: equal weights, however large, give the logged CTR and the full sample
    assert result.proposals.value == pytest.approx(result.logging.value)
    assert result.proposals.ess == pytest.approx(4000.0)
    assert not result.reliable and any("implausibly small" in w for w in result.warnings)
    data = strict_json(json.dumps(result.to_json(), allow_nan=False))
    assert data["reliable"] is False and data["ess"] == pytest.approx(4000.0) and "4000" in data["support"]


def test_an_estimate_on_a_handful_of_effective_clicks_is_flagged(one_slot):
    rare = one_slot.creatives.groupby("product_id")["creative_id"].first()
    shown = one_slot.impressions["creative_id"].isin(rare)
    # keep 60 impressions: about 3 clicks
    few = dataclasses.replace(one_slot, impressions=one_slot.impressions[shown].head(60))
    result = estimate_proposals(few, logged_combinations(one_slot), "snips", n_bootstrap=100)
    assert not result.reliable and "effective clicks" in result.warnings[0]


def test_a_log_without_clicks_has_no_lift_and_still_writes_strict_json(one_slot):
    silent = dataclasses.replace(one_slot, impressions=one_slot.impressions.assign(click=0))
    result = estimate_proposals(silent, logged_combinations(silent), "snips", n_bootstrap=50)
    data = strict_json(json_text(result.to_json()))
    assert data["lift"] is None and "lift" in data["not_finite"] and "no click" in data["lift_note"]


def test_the_ope_command_writes_strict_json_or_refuses_in_one_line(one_slot, tmp_path):
    from typer.testing import CliRunner

    from adcraft.cli import app
    from adcraft.market import write_market

    market_dir, proposals_dir = tmp_path / "market", tmp_path / "run"
    tiny = dataclasses.replace(one_slot, impressions=one_slot.impressions.assign(propensity=1e-300))
    write_market(tiny, market_dir)
    proposals_dir.mkdir()
    logged_combinations(one_slot).to_parquet(proposals_dir / "creatives.parquet")
    runner = CliRunner()
    refused = runner.invoke(app, ["ope", "--market", str(market_dir), "--proposals", str(proposals_dir),
                                  "--estimator", "ips", "--bootstrap", "50"])
    assert refused.exit_code == 2 and "outside [0, 1]" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    assert "Traceback" not in refused.output and not (proposals_dir / "ope.json").exists()
    flagged = runner.invoke(app, ["ope", "--market", str(market_dir), "--proposals", str(proposals_dir),
                                  "--bootstrap", "50"])
    assert flagged.exit_code == 0 and "warning: the logged propensities are implausibly small" in flagged.output
    data = strict_json((proposals_dir / "ope.json").read_text())
    assert data["reliable"] is False and 0.0 <= data["proposals"]["ci_low"] <= data["proposals"]["ci_high"] <= 1.0


def test_an_estimate_resting_on_one_impression_has_an_honest_interval(one_slot):
    """One logged impression shows the proposals: the bootstrap alone would say [0, 0] (it has no click)."""
    unclicked = one_slot.impressions[one_slot.impressions["click"] == 0]
    product = one_slot.creatives.set_index("creative_id").loc[unclicked["creative_id"], "product_id"]
    one = unclicked[(product == product.iloc[0]).to_numpy()].head(1)
    log = pd.concat([one, one_slot.impressions[~one_slot.impressions["creative_id"].isin(
        one_slot.creatives.loc[one_slot.creatives["product_id"] == product.iloc[0], "creative_id"])]])
    sparse = dataclasses.replace(one_slot, impressions=log)
    proposals = logged_combinations(one_slot)
    proposals = proposals[proposals["product_id"] == product.iloc[0]]
    result = estimate_proposals(sparse, proposals, "snips", n_bootstrap=200)
    assert result.matched_impressions == 1 and result.proposals.value == 0.0 and result.proposals.ess == 1.0
    assert not result.reliable
    # Wilson at n = 1 with no success: [0, z^2 / (1 + z^2)] = [0, 0.79]
    assert result.proposals.ci_low == 0.0 and result.proposals.ci_high == pytest.approx(0.7934, abs=1e-3)
    assert result.lift_ci_low == -1.0 and result.lift_ci_high > 10


def test_per_product_lift_says_how_much_of_the_log_it_rests_on(logged):
    market, _ = logged
    proposals = second_creatives(market)
    unseen = proposals["product_id"].iloc[0]
    proposals["elements"] = [["never", "logged"] if (pid, rank) == (unseen, 1) else elements
                             for pid, rank, elements in zip(proposals["product_id"], proposals["rank"],
                                                            proposals["elements"])]
    lifts = lift_by_product(market, proposals, lambda p, c, x: np.full(len(p), 0.03), n_bootstrap=50)
    lifts = lifts.set_index("product_id")
    assert lifts.loc[unseen, "ess"] == 0.0  # the model alone speaks for it
    others = lifts.drop(index=unseen)
    assert ((others["ess"] > 0) & (others["ess"] < others["impressions"])).all()


def test_a_huge_context_in_one_row_costs_its_own_size_not_rows_times_its_size():
    # A 200,000-character context among 1,000 impressions: a fixed-width unicode array of the rows would
    # take 1,000 x 200,000 x 4 bytes (800 MB); object arrays and codes keep the peak near the strings' size.
    import tracemalloc

    from adcraft.evaluate.proposal_value import _expected_under_policy
    from adcraft.learning.metrics import click_metrics

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
