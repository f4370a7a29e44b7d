from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import ImageEnhance

from adcraft.errors import InputError
from adcraft.evaluate.abtest import (
    ABTestConfig,
    fieller_lift_interval,
    logging_policy_choices,
    required_impressions,
    run_ab_test,
    true_policy_ctr,
)
from adcraft.evaluate.proposal_value import ProposalPolicy
from adcraft.market import load_market
from adcraft.render.from_market import MarketRenderer
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market
from adcraft.simulator.click_model import contexts


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("abtest")
    # a world with image effects and one house default for every context (a context-free replica can copy it)
    config = SimulatorConfig(seed=6, world="visual", n_products=5, n_impressions=5000, creatives_per_product=3,
                             canvas=(256, 256), photo_size=160)
    sim = simulate_market(config, root / "market")
    return load_market(sim.market_dir), GroundTruth.load(sim.truth_dir)


def test_the_control_arm_follows_device_specific_house_defaults(tmp_path):
    """Where the house default depends on the device, the control arm's true CTR is
    ``sum_p s_p sum_x P(x) sum_a pi(a | p, x) ctr(p, a, x)`` with that device's default."""
    config = SimulatorConfig(seed=4, world="interactions", n_products=3, n_impressions=600, creatives_per_product=3,
                             canvas=(256, 256), photo_size=160)
    sim = simulate_market(config, tmp_path / "market")
    market, truth = load_market(sim.market_dir), GroundTruth.load(sim.truth_dir)
    policy = truth.simulation["logging_policy"]
    e, by_device = policy["exploration"], policy["default_after_by_device"]
    assert by_device["mobile"] != by_device["desktop"]
    measures = truth.creatives.set_index("creative_id")
    names = [t.attribute for t in truth.model.click_terms]
    share = truth.products.set_index("product_id")["traffic_share"]
    expected = 0.0
    for pid, pool in market.creatives.groupby("product_id"):
        for cid, elements in zip(pool["creative_id"], pool["elements"]):
            ctr = truth.model.ctr_by_context(pid, list(elements), {n: float(measures.at[cid, n]) for n in names})
            for (context, p_x), value in zip(contexts(), ctr):
                pi = (1 - e) * (cid == by_device[context["device"]][pid]) + e / len(pool)
                expected += share[pid] * p_x * pi * value
    expected /= share.sum()
    choices = logging_policy_choices(market, truth)
    assert true_policy_ctr(truth, market, choices) == pytest.approx(expected, rel=1e-9)


def logging_replica(market, truth) -> tuple[pd.DataFrame, ProposalPolicy]:
    """Proposals whose softmax policy is the logging policy: the house default at rank 1, the rest at rank 2.

    pi(rank 1) / pi(rank 2) = exp(1 / T) must equal ((1 - e) + e / K) / (e / K). Their images are the
    past creatives' files (relative to the market folder).
    """
    logging = truth.simulation["logging_policy"]
    e, default = logging["exploration"], logging["default_after"]
    rows, sizes = [], set()
    for pid, pool in market.creatives.groupby("product_id"):
        sizes.add(len(pool))
        for cid, elements, image in zip(pool["creative_id"], pool["elements"], pool["image"]):
            rows.append({"product_id": pid, "rank": 1 if cid == default[pid] else 2, "elements": list(elements),
                         "image": image})
    (k,) = sizes
    temperature = 1.0 / math.log(((1 - e) + e / k) / (e / k))
    return pd.DataFrame(rows), ProposalPolicy("softmax", temperature=temperature)


def best_past_creatives(market, truth) -> pd.DataFrame:
    best = truth.creatives.loc[truth.creatives.groupby("product_id")["true_ctr"].idxmax()]
    elements = dict(zip(market.creatives["creative_id"], market.creatives["elements"]))
    return pd.DataFrame({"product_id": best["product_id"].to_numpy(), "rank": 1,
                         "elements": [list(elements[c]) for c in best["creative_id"]]})


def logging_value(market, truth) -> float:
    """The end-of-log logging policy's true CTR, from the truth's per-creative (context-averaged) CTRs."""
    logging = truth.simulation["logging_policy"]
    e = logging["exploration"]
    ctr = truth.creatives.set_index("creative_id")["true_ctr"]
    share = truth.products.set_index("product_id")["traffic_share"]
    value = 0.0
    for pid, pool in market.creatives.groupby("product_id"):
        value += share[pid] * ((1 - e) * ctr[logging["default_after"][pid]] + e * ctr[pool["creative_id"]].mean())
    return value / share.sum()


def test_a_replica_of_the_logging_policy_has_no_true_lift_and_its_ci_covers_zero(simulated):
    market, truth = simulated
    proposals, policy = logging_replica(market, truth)
    covered = 0
    for seed in range(20):
        config = ABTestConfig(impressions=20_000, seed=seed)
        result = run_ab_test(market, truth, proposals, market.root, policy, config)
        assert result.true_lift == pytest.approx(0.0, abs=1e-9)
        assert result.impressions_needed is None
        covered += result.diff_ci_low <= 0.0 <= result.diff_ci_high
        assert (result.lift_ci_low <= 0.0 <= result.lift_ci_high) == (result.diff_ci_low <= 0 <= result.diff_ci_high)
    assert covered >= 17


def test_the_control_arm_is_the_logging_policy_at_the_end_of_the_log(simulated):
    market, truth = simulated
    expected = logging_value(market, truth)
    assert true_policy_ctr(truth, market, logging_policy_choices(market, truth)) == pytest.approx(expected, rel=1e-9)
    result = run_ab_test(market, truth, best_past_creatives(market, truth), config=ABTestConfig(impressions=10))
    assert result.true_control_ctr == pytest.approx(expected, rel=1e-9)


def test_the_best_past_creatives_win_and_enough_impressions_detect_it(simulated):
    market, truth = simulated
    proposals = best_past_creatives(market, truth)
    probe = run_ab_test(market, truth, proposals, config=ABTestConfig(impressions=1000))
    share = truth.products.set_index("product_id")["traffic_share"]
    best = truth.creatives.groupby("product_id")["true_ctr"].max()
    assert probe.true_treatment_ctr == pytest.approx(float((share * best).sum() / share.sum()), rel=1e-9)
    assert probe.true_lift > 0 and probe.treated_traffic_share == pytest.approx(1.0)
    assert probe.impressions_needed is not None

    result = run_ab_test(market, truth, proposals, config=ABTestConfig(impressions=4 * probe.impressions_needed))
    assert result.diff_ci_low > 0 and result.lift_ci_low > 0 and result.p_value < 0.05
    assert result.lift_ci_low < result.true_lift < result.lift_ci_high
    assert result.diff_ci_high - result.diff_ci_low < probe.diff_ci_high - probe.diff_ci_low
    report = json.loads(json.dumps(result.to_json()))
    assert report["clicks_treatment"] == result.clicks_treatment and report["true_lift"] == result.true_lift


def test_each_arms_click_rate_is_within_four_binomial_ses_of_its_truth(simulated):
    market, truth = simulated
    proposals = best_past_creatives(market, truth)
    n = 50_000
    for seed in range(5):
        result = run_ab_test(market, truth, proposals, config=ABTestConfig(impressions=n, seed=seed))
        for observed, true in ((result.control_ctr, result.true_control_ctr),
                               (result.treatment_ctr, result.true_treatment_ctr)):
            assert abs(observed - true) <= 4 * math.sqrt(true * (1 - true) / n)
        assert result.control_ctr == result.clicks_control / n


def test_a_proposal_is_scored_from_its_image_when_it_exists_else_rendered(simulated, tmp_path):
    market, truth = simulated
    proposals = best_past_creatives(market, truth)
    pid, elements = proposals["product_id"].iloc[0], proposals["elements"].iloc[0]
    rendered = MarketRenderer(market).render(pid, elements).image
    dark = ImageEnhance.Brightness(rendered).enhance(0.3)
    (tmp_path / "images").mkdir()
    dark.save(tmp_path / "images" / "dark.png")
    with_image = proposals.assign(image=["images/dark.png"] + ["images/missing.png"] * (len(proposals) - 1))
    config = ABTestConfig(impressions=10)

    rendered_only = run_ab_test(market, truth, with_image, None, config=config)
    from_image = run_ab_test(market, truth, with_image, tmp_path, config=config)
    share = truth.products.set_index("product_id")["traffic_share"]
    gap = truth.ctr_of_image(pid, elements, dark) - truth.ctr_of_image(pid, elements, rendered)
    gap *= share[pid] / share.sum()
    assert abs(gap) > 1e-4
    assert from_image.true_treatment_ctr - rendered_only.true_treatment_ctr == pytest.approx(gap, rel=1e-9)

    one = {pid: [(elements, 1.0, dark)]}
    assert true_policy_ctr(truth, market, one) == pytest.approx(truth.ctr_of_image(pid, elements, dark), rel=1e-12)
    one = {pid: [(elements, 1.0, None)]}
    expected = truth.ctr_of_combination(MarketRenderer(market), pid, elements)
    assert true_policy_ctr(truth, market, one) == pytest.approx(expected, rel=1e-12)


def test_products_without_proposals_keep_the_logging_policy(simulated):
    market, truth = simulated
    replica, policy = logging_replica(market, truth)
    first = sorted(replica["product_id"].unique())[0]
    result = run_ab_test(market, truth, replica[replica["product_id"] == first], None, policy,
                         ABTestConfig(impressions=10))
    share = truth.products.set_index("product_id")["traffic_share"]
    assert result.true_lift == pytest.approx(0.0, abs=1e-9)
    assert result.treated_traffic_share == pytest.approx(share[first] / share.sum())


def test_kept_products_keep_the_logging_policy_in_the_treatment_arm(simulated):
    market, truth = simulated
    best = best_past_creatives(market, truth)
    launched = run_ab_test(market, truth, best, config=ABTestConfig(impressions=10))
    first = sorted(best["product_id"])[0]
    kept = best.assign(kept=best["product_id"] != first)  # every product but one launches nothing
    partly = run_ab_test(market, truth, kept, config=ABTestConfig(impressions=10))
    share = truth.products.set_index("product_id")["traffic_share"]
    assert partly.treated_traffic_share == pytest.approx(share[first] / share.sum())
    assert 0 < partly.true_lift < launched.true_lift
    nothing = run_ab_test(market, truth, best.assign(kept=True), config=ABTestConfig(impressions=10))
    assert nothing.true_lift == 0.0 and nothing.treated_traffic_share == 0.0


def test_required_impressions_matches_the_formula_and_shrinks_as_the_lift_grows():
    assert required_impressions(0.10, 0.15) == 686  # Fleiss (1981) without continuity correction
    z_a, z_b = 1.959963985, 0.841621234
    p1, p2 = 0.03, 0.036
    by_hand = (z_a * math.sqrt(2 * 0.033 * 0.967) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / 0.006**2
    assert required_impressions(p1, p2) == math.ceil(by_hand)
    needed = [required_impressions(0.03, 0.03 * (1 + lift)) for lift in (0.02, 0.05, 0.1, 0.2, 0.5)]
    assert all(a > b for a, b in zip(needed, needed[1:]))
    assert required_impressions(0.03, 0.036, alpha=0.01) > required_impressions(0.03, 0.036)
    assert required_impressions(0.03, 0.036, power=0.9) > required_impressions(0.03, 0.036)
    assert required_impressions(0.03, 0.03) is None


def test_the_result_needs_the_impressions_that_detect_its_true_difference(simulated):
    market, truth = simulated
    config = ABTestConfig(impressions=10, alpha=0.1, power=0.9)
    result = run_ab_test(market, truth, best_past_creatives(market, truth), config=config)
    assert result.impressions_needed == required_impressions(result.true_control_ctr, result.true_treatment_ctr,
                                                             0.1, 0.9)


@pytest.mark.parametrize("settings", [{"impressions": 0}, {"impressions": -5}, {"impressions": 2.5},
                                      {"alpha": 0.0}, {"alpha": 1.0}, {"alpha": 1.5}, {"power": 1.0}])
def test_bad_settings_are_refused(settings):
    with pytest.raises(InputError):
        ABTestConfig(**settings)


def test_bad_proposals_are_refused(simulated, tmp_path):
    market, truth = simulated
    proposals = best_past_creatives(market, truth)
    with pytest.raises(InputError, match="products the market does not have"):
        run_ab_test(market, truth, pd.concat([proposals, proposals.head(1).assign(product_id="nope")]))
    with pytest.raises(InputError, match="missing column"):
        run_ab_test(market, truth, proposals.drop(columns="rank"))
    with pytest.raises(InputError, match="no rows"):
        run_ab_test(market, truth, proposals.head(0))
    with pytest.raises(InputError, match=r"\.\."):
        run_ab_test(market, truth, proposals.assign(image="../outside.png"), tmp_path)
    with pytest.raises(InputError):
        run_ab_test(market, truth, proposals.assign(elements=[["unknown"]] * len(proposals)))
    with pytest.raises(InputError):
        required_impressions(0.03, 1.2)
    pid = proposals["product_id"].iloc[0]
    with pytest.raises(InputError, match="sum to 1"):
        true_policy_ctr(truth, market, {pid: [(proposals["elements"].iloc[0], 0.5, None)]})
    assert np.isfinite(true_policy_ctr(truth, market, {pid: [(proposals["elements"].iloc[0], 1.0, None)]}))


def test_an_undefined_lift_is_written_as_null_with_its_reason(simulated):
    from adcraft.atomic import json_text

    market, truth = simulated
    proposals = best_past_creatives(market, truth)
    tests = (run_ab_test(market, truth, proposals, config=ABTestConfig(impressions=1, seed=seed)) for seed in range(20))
    result = next(r for r in tests if r.clicks_control == 0)  # one impression per arm, CTR about 3%
    assert math.isnan(result.lift)

    def refuse(token):
        raise ValueError(token)

    report = json.loads(json_text(result.to_json()), parse_constant=refuse)
    assert report["lift"] is None and report["lift_ci_low"] is None and "no click" in report["lift_note"]
    assert report["not_finite"]["lift"] == "NaN"


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 10**7), c=st.floats(0, 1), t=st.floats(0, 1), alpha=st.sampled_from([0.01, 0.05, 0.1]))
def test_the_lift_interval_excludes_zero_exactly_when_the_difference_interval_does(n, c, t, alpha):
    """Fieller's interval for p_t / p_c contains 1 iff (p_t - p_c)^2 <= z^2 (var_t + var_c), the unpooled
    difference interval's condition, so the two never disagree (away from float ties at the boundary)."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p_c, p_t = round(c * n) / n, round(t * n) / n
    var_c, var_t = p_c * (1 - p_c) / n, p_t * (1 - p_t) / n
    margin = (p_t - p_c) ** 2 - z**2 * (var_t + var_c)
    assume(abs(margin) > 1e-12 * max(p_t, p_c, 1e-300) ** 2)
    low, high = fieller_lift_interval(p_t, p_c, var_t, var_c, z)
    if p_c == 0:
        assert math.isnan(low) and math.isnan(high)  # no lift is defined
        return
    assert low <= high
    assert (low <= 0 <= high) == (margin <= 0)
    if p_c > 0 and math.isfinite(high):
        assert low <= p_t / p_c - 1 <= high
