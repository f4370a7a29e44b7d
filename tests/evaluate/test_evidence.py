from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pandas as pd
import pytest

from adcraft.errors import InputError
from adcraft.evaluate.evidence import (
    RELIABILITY_FLOOR,
    EvidenceConfig,
    LiftInterval,
    backtest_summary,
    best_product_bound,
    contrast_fit,
    creative_folds,
    error_factors,
    launch_plan,
    proposal_evidence,
)
from adcraft.evaluate.proposal_value import estimate_proposals
from adcraft.market.click_log import click_log
from adcraft.market.market import Market, MarketConfig

TITLES = {"t0": 0.7, "t1": 1.0, "t2": 1.3, "t3": 1.6}
BACKGROUNDS = {"bx": 0.8, "b1": 1.0, "b2": 1.2, "b3": 1.5}  # bx: the element a biased judge loves
PRODUCTS = 24
LOGGED_PER_PRODUCT = 4
IMPRESSIONS_PER_PRODUCT = 2500
DAY = 86_400


def true_ctr(product: int, combo) -> float:
    return 0.02 * (1.0 + 0.5 * (product % 3)) * TITLES[combo[0]] * BACKGROUNDS[combo[1]]


def logged_market(seed: int, ctr) -> tuple[Market, dict, float]:
    """A two-slot market (16 combinations per product) logged uniformly over 4 of them, with its truth ``ctr(product
    index, combination)`` and the logging policy's CTR."""
    rng = np.random.default_rng(seed)
    all_combos = list(itertools.product(TITLES, BACKGROUNDS))
    products = pd.DataFrame({"product_id": [f"p{i:02d}" for i in range(PRODUCTS)], "title": "thing",
                             "category": "things", "image": "p.png"})
    elements = pd.DataFrame({
        "element_id": [*TITLES, *BACKGROUNDS],
        "slot": ["title"] * len(TITLES) + ["background"] * len(BACKGROUNDS),
        "product_id": None,
        "text": [*TITLES, *([None] * len(BACKGROUNDS))],
        "value": [*([None] * len(TITLES)), *BACKGROUNDS],
        "image": None,
    })
    creatives, impressions, truth = [], [], {}
    for i in range(PRODUCTS):
        pid = f"p{i:02d}"
        for k, pick in enumerate(rng.choice(len(all_combos), LOGGED_PER_PRODUCT, replace=False)):
            combo = all_combos[pick]
            cid = f"{pid}-c{k}"
            creatives.append({"creative_id": cid, "product_id": pid, "elements": list(combo), "image": None})
            n = IMPRESSIONS_PER_PRODUCT // LOGGED_PER_PRODUCT
            clicks = rng.random(n) < ctr(i, combo)
            impressions += [{"creative_id": cid, "click": int(c), "ts": int(rng.integers(0, 7 * DAY)),
                             "propensity": 1.0 / LOGGED_PER_PRODUCT} for c in clicks]
        for combo in all_combos:
            truth[(pid, combo)] = ctr(i, combo)
    impressions = pd.DataFrame(impressions)
    impressions.insert(0, "impression_id", [f"i{k}" for k in range(len(impressions))])
    impressions["click"] = impressions["click"].astype("int8")
    market = Market(None, MarketConfig(slots=("title", "background")), products, elements,
                    pd.DataFrame(creatives), impressions)
    logged = {(c["product_id"], tuple(c["elements"])) for c in creatives}
    logging_ctr = np.mean([truth[key] for key in logged])  # equal traffic per product, uniform logging
    return market, truth, logging_ctr


@pytest.fixture(scope="module")
def world():
    """``logged_market`` with products of three levels and elements that matter (``true_ctr``)."""
    return logged_market(3, true_ctr)


class ElementRates:
    """A small learned judge: the product's CTR times each element's CTR ratio (impressions showing it / all)."""

    def __init__(self, market: Market) -> None:
        log = click_log(market)  # event-level impressions or creative_stats alike
        base = log["clicks"].sum() / log["trials"].sum()
        per_product = log.groupby("product_id")[["clicks", "trials"]].sum()
        self.product = (per_product["clicks"] / per_product["trials"]).to_dict()
        self.base = base
        per_element = log[["elements", "clicks", "trials"]].explode("elements").groupby("elements")[
            ["clicks", "trials"]].sum()
        self.element = (per_element["clicks"] / per_element["trials"] / base).to_dict()

    def predict(self, product_ids, combos, contexts=None) -> np.ndarray:
        known: dict[tuple, float] = {}
        for p, c in zip(product_ids, combos):
            key = (p, *c)
            if key not in known:
                known[key] = self.product.get(p, self.base) * np.prod([self.element.get(e, 1.0) for e in c])
        return np.array([known[(p, *c)] for p, c in zip(product_ids, combos)])


class LovesBackgroundX(ElementRates):
    """The same judge, wrong in a known way: it predicts 2.5 times the CTR of any combination with ``bx``."""

    def predict(self, product_ids, combos, contexts=None) -> np.ndarray:
        boost = np.array([2.5 if "bx" in c else 1.0 for c in combos])
        return super().predict(product_ids, combos, contexts) * boost


def best_of_all(market: Market):
    """The chooser: per product, the combination of all 16 its judge predicts best."""
    combos = [list(c) for c in itertools.product(TITLES, BACKGROUNDS)]

    def choose(judge) -> pd.DataFrame:
        rows = []
        for pid in market.products["product_id"]:
            scores = judge.predict([pid] * len(combos), combos)
            rows.append({"product_id": pid, "rank": 1, "elements": combos[int(np.argmax(scores))]})
        return pd.DataFrame(rows)

    return choose


def true_lift(truth, logging_ctr, proposals) -> float:
    return float(np.mean([truth[(p, tuple(e))] for p, e in zip(proposals.product_id, proposals.elements)])
                 / logging_ctr - 1.0)


def test_folds_keep_each_creative_whole_and_each_product_on_both_sides(world):
    market, _, _ = world
    folds = creative_folds(market.creatives, seed=1)
    assert set(folds) == set(market.creatives["creative_id"]) and set(folds.values()) == {0, 1}
    per_product = market.creatives.assign(fold=market.creatives["creative_id"].map(folds)).groupby("product_id")
    assert (per_product["fold"].nunique() == 2).all()
    assert creative_folds(market.creatives, seed=1) == folds


def self_graded(market, proposals, judge) -> float:
    """The lift a judge gives its own picks by DR on all logs (the single-judge estimate of ``optimize``)."""
    return estimate_proposals(market, proposals, "dr", predict=judge.predict, n_bootstrap=20).lift


def test_a_judge_wrong_in_a_known_way_gets_a_wider_interval_not_a_confident_wrong_lift(world):
    market, truth, logging_ctr = world
    choose = best_of_all(market)
    config = EvidenceConfig(n_bootstrap=300, seed=2)
    honest_judge, biased_judge = ElementRates(market), LovesBackgroundX(market)
    honest_final, biased_final = choose(honest_judge), choose(biased_judge)
    honest = proposal_evidence(market, honest_final, ElementRates, choose, config)
    biased_claim = self_graded(market, biased_final, biased_judge)
    biased = proposal_evidence(market, biased_final, LovesBackgroundX, choose, config)
    assert sum("bx" in e for e in biased_final["elements"]) > PRODUCTS / 2  # the bias drives the choice
    truth_biased = true_lift(truth, logging_ctr, biased_final)
    assert biased_claim > truth_biased + 0.5  # graded by itself, the biased judge claims far more than it delivers
    # the backtest sees the bias: over-prediction on the whole and near the picks, a spread beyond binomial noise
    assert biased.backtest.ratio < 1.0 and biased.backtest.local_error < 0
    assert biased.backtest.ratio_spread > honest.backtest.ratio_spread
    assert biased.lift.low <= truth_biased <= biased.lift.high  # not a confident wrong lift
    assert biased.lift.low < biased_claim - 0.5 and biased.lift.estimate < biased_claim - 0.5
    assert (biased.lift.high - biased.lift.low) > honest.lift.high - honest.lift.low
    # the honest judge's picks (the true best combination) get a positive lower bound below their true lift
    # (this judge's multiplicative guesses fall short of the best combination's CTR, itself included)
    assert 0 < honest.lift.low <= true_lift(truth, logging_ctr, honest_final)
    assert honest.lift.level == 0.9 and honest.lift.low < honest.lift.estimate < honest.lift.high


def test_per_product_lifts_flag_products_to_keep(world):
    market, _, _ = world
    choose = best_of_all(market)
    evidence = proposal_evidence(market, choose(ElementRates(market)), ElementRates, choose,
                                 EvidenceConfig(n_bootstrap=100))
    products = evidence.products
    assert len(products) == PRODUCTS and (products["impressions"] > 0).all()
    assert (products["lift_low"] <= products["lift"]).all() and (products["lift"] <= products["lift_high"]).all()
    assert products["keep_current"].tolist() == (~(products["lift_low"] > 0)).tolist()
    data = evidence.to_json()
    assert data["lift"]["level"] == 0.9 and data["scheme"]["folds"] == 2
    assert data["products_to_keep"] == int(products["keep_current"].sum())


def logging_ctr_of(truth, market: Market, product: str) -> float:
    """The true CTR of a product's logging policy (uniform over its logged creatives)."""
    mine = market.creatives[market.creatives["product_id"] == product]
    return float(np.mean([truth[(product, tuple(e))] for e in mine["elements"]]))


def test_without_do_no_harm_the_lift_is_the_proposals_lift_and_keeping_all_is_no_lift(world):
    market, _, _ = world
    choose = best_of_all(market)
    config = EvidenceConfig(n_bootstrap=100, seed=2)
    plain = proposal_evidence(market, choose(ElementRates(market)), ElementRates, choose, config)
    assert plain.lift == plain.proposals_lift
    assert plain.uncalibrated_lift == plain.proposals_uncalibrated_lift
    biased = proposal_evidence(market, choose(LovesBackgroundX(market)), LovesBackgroundX, choose,
                               EvidenceConfig(n_bootstrap=100, seed=2, level=0.99), do_no_harm=True)
    assert biased.products["keep_current"].all()  # no biased pick is shown better per product
    assert (biased.lift.estimate, biased.lift.low, biased.lift.high) == (0.0, 0.0, 0.0)  # nothing launched
    assert biased.uncalibrated_lift == 0.0 < biased.proposals_uncalibrated_lift  # the picks it would have launched


def test_the_test_of_every_proposal_is_sized_on_the_sets_lower_bound_whatever_do_no_harm_launched(world):
    market, _, _ = world
    choose = best_of_all(market)
    config = EvidenceConfig(n_bootstrap=200, seed=2)
    final = choose(ElementRates(market))
    plain = proposal_evidence(market, final, ElementRates, choose, config)
    kept = proposal_evidence(market, final, ElementRates, choose, config, do_no_harm=True)
    assert kept.proposals_plan == plain.proposals_plan  # do no harm decides what launches, not what a test checks
    every, low = kept.proposals_plan, kept.proposals_lift.low
    assert low > 0 and every.target_lift == pytest.approx(low)  # elements that matter: the set is shown better
    assert every.treatment_ctr == pytest.approx(kept.logging_ctr * (1.0 + low)) and every.impressions_per_arm > 0
    assert every == launch_plan(kept.logging_ctr, kept.proposals_lift, market, config)
    data = kept.to_json()["proposals_launch_plan"]
    assert data["impressions_per_arm"] == every.impressions_per_arm and data["summary"] == every.summary
    # a set not shown better has nothing to confirm
    flat = launch_plan(kept.logging_ctr, dataclasses.replace(kept.proposals_lift, low=-0.01), market, config)
    assert flat.impressions_per_arm is None and "no positive lift" in flat.summary


def test_do_no_harm_keeps_what_runs_now_where_a_wrong_judge_would_hurt(world):
    market, truth, logging_ctr = world
    choose = best_of_all(market)
    config = EvidenceConfig(n_bootstrap=300, seed=2)
    biased_final = choose(LovesBackgroundX(market))
    evidence = proposal_evidence(market, biased_final, LovesBackgroundX, choose, config, do_no_harm=True)
    kept = set(evidence.products.loc[evidence.products["keep_current"], "product_id"])
    assert kept  # per product (one creative's error in full) the biased picks are not shown better
    values = [logging_ctr_of(truth, market, p) if p in kept else truth[(p, tuple(e))]
              for p, e in zip(biased_final["product_id"], biased_final["elements"])]
    after = float(np.mean(values) / logging_ctr - 1.0)
    # keeping what runs now where the evidence is weak raises the set's true lift, and the evidence covers it
    assert after > true_lift(truth, logging_ctr, biased_final)
    assert evidence.lift.low - 1e-12 <= after <= evidence.lift.high + 1e-12
    assert evidence.lift.low > evidence.proposals_lift.low  # less at risk: a higher conservative lift
    assert evidence.to_json()["proposals_lift"] == dataclasses.asdict(evidence.proposals_lift)


def test_logged_proposals_are_supported_and_agree_with_ips(world):
    market, truth, _ = world
    first = market.creatives.groupby("product_id").head(1)
    proposals = pd.DataFrame({"product_id": first["product_id"], "rank": 1, "elements": first["elements"]})

    def choose(judge):
        return proposals

    evidence = proposal_evidence(market, proposals, ElementRates, choose, EvidenceConfig(n_bootstrap=300))
    supported = evidence.supported
    assert supported.products == PRODUCTS and supported.impression_share == 1.0
    assert supported.extrapolated_products == 0
    ips = supported.ips
    assert ips.low <= supported.dr.value <= ips.high
    assert ips.low <= supported.snips.value <= ips.high
    direct = estimate_proposals(market, proposals, "ips", n_bootstrap=50)
    assert ips.value == pytest.approx(direct.proposals.value)
    true_value = np.mean([truth[(p, tuple(e))] for p, e in zip(proposals.product_id, proposals.elements)])
    assert ips.low <= true_value <= ips.high
    assert supported.ess == pytest.approx(len(market.impressions) / LOGGED_PER_PRODUCT, rel=0.05)


def test_logs_without_propensities_give_the_same_lift_and_keep_marks_without_the_weighted_parts(world):
    # The lift and the keep marks rest on the judges' predicted contrasts and the backtest, not on propensities:
    # without them only what weighs by them (the uncalibrated DR lift, IPS/SNIPS/DR of the supported part) is gone.
    market, _, _ = world
    bare = dataclasses.replace(market, impressions=market.impressions.drop(columns=["propensity"]))
    choose = best_of_all(market)
    config = EvidenceConfig(n_bootstrap=200, seed=4)
    final = choose(LovesBackgroundX(market))
    full = proposal_evidence(market, final, LovesBackgroundX, choose, config, do_no_harm=True)
    without = proposal_evidence(bare, final, LovesBackgroundX, choose, config, do_no_harm=True)
    assert without.lift == full.lift and without.proposals_lift == full.proposals_lift
    pd.testing.assert_frame_equal(without.products, full.products)
    assert without.backtest.to_json() == full.backtest.to_json()
    assert math.isfinite(full.uncalibrated_lift) and math.isnan(without.uncalibrated_lift)
    assert math.isfinite(full.proposals_uncalibrated_lift) and math.isnan(without.proposals_uncalibrated_lift)
    assert full.supported.weighted
    assert not without.supported.weighted
    assert (without.supported.ips, without.supported.snips, without.supported.dr) == (None, None, None)
    assert without.supported.impression_share == full.supported.impression_share


def test_a_market_logged_only_as_creative_stats_gets_the_evidence_of_its_event_level_logs(world):
    # Aggregated per creative, the same logs give the same per-product lifts and the same lift of the proposals
    # (do no harm's random halves of the impressions aside, which aggregated rows cannot reproduce one for one).
    market, _, _ = world
    per = market.impressions.groupby("creative_id")["click"].agg(impressions="size", clicks="sum").reset_index()
    stats = dataclasses.replace(market, impressions=None, creative_stats=per)
    choose = best_of_all(market)
    config = EvidenceConfig(n_bootstrap=200, seed=4)
    final = choose(ElementRates(market))
    events = proposal_evidence(market, final, ElementRates, choose, config)
    aggregated = proposal_evidence(stats, final, ElementRates, choose, config)
    pd.testing.assert_frame_equal(aggregated.products, events.products, rtol=1e-9)
    for field in ("estimate", "low", "high"):
        assert getattr(aggregated.proposals_lift, field) == pytest.approx(getattr(events.proposals_lift, field))
    assert aggregated.backtest.to_json() == pytest.approx(events.backtest.to_json())
    assert aggregated.launch_plan.days is None  # no timestamps to size it in days
    assert not aggregated.supported.weighted
    kept = proposal_evidence(stats, final, ElementRates, choose, config, do_no_harm=True)
    assert kept.lift.low <= kept.lift.estimate <= kept.lift.high


def test_a_market_without_logs_is_refused_before_any_judge_is_fitted(world):
    market, _, _ = world
    fitted = []

    def fit(part):
        fitted.append(part)
        return ElementRates(part)

    with pytest.raises(InputError, match="logs"):
        proposal_evidence(dataclasses.replace(market, impressions=None), market.creatives.head(1).assign(rank=1),
                          fit, lambda judge: None)
    assert not fitted


def test_launch_plan_matches_the_two_proportion_formula_by_hand(world):
    market, _, _ = world
    # p1 = 0.05, p2 = 0.06: (1.959964 sqrt(2 .055 .945) + 0.841621 sqrt(.05 .95 + .06 .94))^2 / .01^2 = 8157.7
    plan = launch_plan(0.05, LiftInterval(0.3, 0.2, 0.4, 0.9), market, EvidenceConfig())
    assert plan.impressions_per_arm == 8158 and plan.treatment_ctr == pytest.approx(0.06)
    per_day = len(market.impressions) / ((market.impressions["ts"].max() - market.impressions["ts"].min()) / DAY)
    assert plan.days == pytest.approx(2 * 8158 / per_day)
    assert launch_plan(0.05, LiftInterval(0.1, -0.05, 0.3, 0.9), market, EvidenceConfig()).impressions_per_arm is None


def test_backtest_figures_on_known_points():
    exact = pd.DataFrame({"predicted": [0.02, 0.04], "observed": [0.02, 0.04], "impressions": [1e9, 1e9],
                          "creative_id": ["a", "b"]})
    summary = backtest_summary(exact)
    assert summary.ratio == pytest.approx(1.0) and summary.mean_abs_relative_error == pytest.approx(0.0)
    assert summary.calibration_slope == pytest.approx(1.0) and summary.ratio_spread == pytest.approx(0.0, abs=1e-3)
    doubled = exact.assign(predicted=exact["predicted"] * 2)
    summary = backtest_summary(doubled)
    assert summary.ratio == pytest.approx(0.5) and summary.mean_abs_relative_error == pytest.approx(1.0)
    assert summary.calibration_slope == pytest.approx(0.5)


def test_error_factors_are_positive_with_mean_one_and_the_asked_variance():
    factors = error_factors(np.random.default_rng(0).standard_normal(200_000), 0.49)
    assert (factors > 0).all()
    assert factors.mean() == pytest.approx(1.0, abs=0.01) and factors.var() == pytest.approx(0.49, rel=0.05)
    assert (error_factors(np.array([-3.0, 0.0, 3.0]), 0.0) == 1.0).all()


@pytest.mark.parametrize("settings", [{"level": 1.0}, {"alpha": 0.0}, {"power": 1.5}, {"n_bootstrap": 1},
                                      {"set_slope": "steepest"}, {"likeness_from": "final"}])
def test_bad_settings_are_refused(settings):
    with pytest.raises(InputError):
        EvidenceConfig(**settings)


class NoisyRates(ElementRates):
    """``ElementRates`` times a per-product error that depends on the logs it was fitted on: judges fitted on
    different creatives overrate different products, as real judges do."""

    def __init__(self, market: Market) -> None:
        super().__init__(market)
        seed = sum(int.from_bytes(c.encode(), "little") % 1_000_003 for c in market.creatives["creative_id"])
        rng = np.random.default_rng(seed)
        self.error = {p: float(np.exp(rng.normal(0.0, 0.5))) for p in sorted(self.product)}

    def predict(self, product_ids, combos, contexts=None) -> np.ndarray:
        return super().predict(product_ids, combos, contexts) * np.array([self.error.get(p, 1.0) for p in product_ids])


def test_products_launched_because_one_judge_overrated_them_are_valued_by_the_other(world):
    market, truth, logging_ctr = world
    choose = best_of_all(market)
    final = choose(NoisyRates(market))
    evidence = proposal_evidence(market, final, NoisyRates, choose, EvidenceConfig(n_bootstrap=300, seed=5),
                                 do_no_harm=True)
    launched = set(evidence.products.loc[~evidence.products["keep_current"], "product_id"])
    assert launched  # the overrated products pass the deciding judge's test
    values = [truth[(p, tuple(e))] if p in launched else logging_ctr_of(truth, market, p)
              for p, e in zip(final["product_id"], final["elements"])]
    after = float(np.mean(values) / logging_ctr - 1.0)
    assert evidence.lift.low <= after  # the value of the launched set is not the deciding judge's opinion


def contrast_points_frame(gain: float, level_error: float = 1.0, products: int = 40) -> pd.DataFrame:
    """Held-out creatives of ``products`` products (huge traffic: no binomial noise to speak of) whose observed ratio
    to their product's reference is ``1 + gain (pi - 1)``, predicted by a judge off by ``level_error`` on every
    product's level."""
    rng = np.random.default_rng(0)
    rows = []
    for p in range(products):
        base = 0.02 + 0.001 * p
        for c in range(4):
            ratio = float(rng.uniform(0.6, 1.8))
            rows.append({"creative_id": f"{p}-{c}", "product_id": f"p{p}", "impressions": 1e9,
                         "predicted": base * ratio * level_error, "observed": base * (1 + gain * (ratio - 1)),
                         "reference_predicted": base * level_error, "reference_observed": base,
                         "reference_impressions": 1e9})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("gain", [1.0, 0.5, 0.0])
def test_the_contrast_backtest_measures_how_much_of_a_predicted_gain_held_out_creatives_show(gain):
    summary = backtest_summary(contrast_points_frame(gain))
    assert summary.contrast_slope == pytest.approx(gain, abs=1e-6)
    assert summary.contrast_spread == pytest.approx(0.0, abs=1e-3)
    # a judge wrong about every product's level, right about the contrasts, is as good for a product's gain
    wrong_level = backtest_summary(contrast_points_frame(gain, level_error=2.5))
    assert wrong_level.contrast_slope == pytest.approx(gain, abs=1e-6)
    assert wrong_level.calibration_slope < 0.6 * summary.calibration_slope  # the level error shows in the line


def test_a_contrast_that_misses_by_creative_shows_as_spread_beyond_noise():
    points = contrast_points_frame(1.0)
    scatter = np.exp(np.random.default_rng(1).normal(0.0, 0.3, len(points)))
    summary = backtest_summary(points.assign(observed=points["observed"] * scatter))
    assert 0.2 < summary.contrast_spread < 0.45


def two_noisy_judges(noise: float, agree: bool = True) -> pd.DataFrame:
    """``contrast_points_frame(1.0)`` of 100 products (creatives show their true ratio exactly) seen by a judge
    whose predicted ratio is the truth times an independent log-normal error of mean 1, with the other
    half's judge's predictions of the same creatives (``inside_*``): the truth times its own independent error, or
    with ``agree`` False a ratio unrelated to the truth."""
    points = contrast_points_frame(1.0, products=100)
    base, ratio = points["reference_predicted"], points["predicted"] / points["reference_predicted"]
    rng = np.random.default_rng(4)

    def noisy() -> pd.Series:
        return ratio * np.exp(rng.normal(0.0, noise, len(points)) - noise**2 / 2)

    predicted = noisy()
    other = noisy() if agree else pd.Series(rng.uniform(0.6, 1.8, len(points)), index=points.index)
    return points.assign(predicted=base * predicted, inside_predicted=base * other, inside_reference_predicted=base)


def test_a_noisy_judges_slope_is_diluted_and_the_other_halfs_agreement_measures_by_how_much():
    exact = backtest_summary(two_noisy_judges(0.0))
    assert exact.contrast_slope == pytest.approx(1.0, abs=1e-6) and exact.contrast_reliability == pytest.approx(1.0)
    noisy = backtest_summary(two_noisy_judges(0.25))
    # regression dilution: the observed contrast on a noisy prediction of it has a slope below 1 ...
    assert noisy.contrast_slope < 0.85
    # ... by the share of the prediction's spread that a judge with its own errors reproduces
    assert noisy.contrast_reliability == pytest.approx(noisy.contrast_slope, abs=0.05)
    corrected = contrast_fit(noisy.points, np.zeros(len(noisy.points)), disattenuated=True)
    assert corrected.slope == pytest.approx(1.0, abs=0.08)
    assert corrected.slope == pytest.approx(noisy.contrast_slope / noisy.contrast_reliability)
    # a judge the other half does not reproduce is not corrected beyond the floor
    unrelated = backtest_summary(two_noisy_judges(0.25, agree=False))
    assert abs(unrelated.contrast_reliability) < 0.2 < RELIABILITY_FLOOR
    assert contrast_fit(unrelated.points, np.zeros(len(unrelated.points)), disattenuated=True).slope == \
        pytest.approx(unrelated.contrast_slope / RELIABILITY_FLOOR)


@pytest.mark.parametrize("judge", [ElementRates, NoisyRates])
def test_the_disattenuated_slope_moves_only_the_sets_lift_and_both_slopes_give_the_union(world, judge):
    market, _, _ = world
    choose = best_of_all(market)
    final = choose(judge(market))
    runs = {setting: proposal_evidence(market, final, judge, choose,
                                       EvidenceConfig(n_bootstrap=200, seed=3, set_slope=setting), do_no_harm=True)
            for setting in ("measured", "disattenuated", "both")}
    off, on, both = runs["measured"], runs["disattenuated"], runs["both"]
    for other in (on, both):
        pd.testing.assert_frame_equal(other.products, off.products)  # per-product decisions keep the measured slope
        assert other.backtest.to_json() == off.backtest.to_json()
    points, likeness = on.backtest.points, on.backtest.points["likeness"].to_numpy()
    slope = contrast_fit(points, likeness, disattenuated=True).slope
    assert slope == pytest.approx(on.backtest.contrast_slope / np.clip(on.backtest.contrast_reliability,
                                                                       RELIABILITY_FLOOR, 1.0))
    if slope != pytest.approx(on.backtest.contrast_slope):
        assert on.proposals_lift != off.proposals_lift
    for name in ("proposals_lift", "lift"):  # the same draws for both slopes: the union, at the measured estimate
        measured, corrected, union = (getattr(run, name) for run in (off, on, both))
        assert corrected.low <= corrected.estimate <= corrected.high
        assert union.estimate == measured.estimate
        assert (union.low, union.high) == (min(measured.low, corrected.low), max(measured.high, corrected.high))


def honest_and(judge, market: Market):
    """The evidence (do no harm on) of the honest judge ``ElementRates`` and of ``judge``, each choosing and
    valuing its own best combinations."""
    choose = best_of_all(market)
    config = EvidenceConfig(n_bootstrap=200, seed=5)
    return tuple(proposal_evidence(market, choose(j(market)), j, choose, config, do_no_harm=True)
                 for j in (ElementRates, judge))


def test_per_product_decisions_ignore_a_judges_error_on_a_products_level(world):
    market, truth, _ = world
    choose = best_of_all(market)
    honest, noisy = honest_and(NoisyRates, market)
    assert noisy.products["lift"].to_numpy() == pytest.approx(honest.products["lift"].to_numpy())
    assert noisy.products["keep_current"].tolist() == honest.products["keep_current"].tolist()
    # the honest judge's products launch, and every launched one beats what its product runs now
    launched = honest.products.loc[~honest.products["keep_current"], "product_id"]
    final = choose(ElementRates(market)).set_index("product_id")
    assert len(launched) > PRODUCTS / 2
    assert all(truth[(p, tuple(final.loc[p, "elements"]))] > logging_ctr_of(truth, market, p) for p in launched)


class NoisyCombos(ElementRates):
    """``ElementRates`` times an error per (product, combination) that depends on the logs it was fitted on: two
    judges fitted on different halves disagree about the same new combination."""

    def __init__(self, market: Market) -> None:
        super().__init__(market)
        self.seed = sum(int.from_bytes(c.encode(), "little") % 1_000_003 for c in market.creatives["creative_id"])

    def predict(self, product_ids, combos, contexts=None) -> np.ndarray:
        noise = [np.random.default_rng([self.seed, int(p[1:]), *(ord(e[-1]) for e in c)]).normal(0.0, 0.4)
                 for p, c in zip(product_ids, combos)]
        return super().predict(product_ids, combos, contexts) * np.exp(noise)


def test_judges_that_disagree_about_the_proposals_widen_each_products_interval(world):
    market, _, _ = world
    honest, noisy = honest_and(NoisyCombos, market)
    assert noisy.backtest.disagreement > 2 * honest.backtest.disagreement
    width = (noisy.products["lift_high"] - noisy.products["lift_low"]) / (1.0 + noisy.products["lift"])
    honest_width = (honest.products["lift_high"] - honest.products["lift_low"]) / (1.0 + honest.products["lift"])
    assert width.median() > 1.5 * honest_width.median()
    assert noisy.products["keep_current"].sum() > honest.products["keep_current"].sum() + PRODUCTS / 2
    assert noisy.to_json()["backtest"]["judges_disagreement"] == noisy.backtest.disagreement


def exaggerates_the_unlogged(full: Market):
    """A judge family that is right about every combination the logs showed and predicts four times the CTR of
    any other: held-out logged creatives cannot show its error, two such judges agree, and only the proposals
    (combinations no log showed) carry it."""
    logged = {(p, tuple(e)) for p, e in zip(full.creatives["product_id"], full.creatives["elements"])}

    class Exaggerates(ElementRates):
        def predict(self, product_ids, combos, contexts=None) -> np.ndarray:
            boost = np.array([1.0 if (p, tuple(c)) in logged else 4.0 for p, c in zip(product_ids, combos)])
            return super().predict(product_ids, combos, contexts) * boost

    return Exaggerates


def test_no_credit_for_a_contrast_larger_than_any_the_backtest_saw_land(world):
    market, truth, logging_ctr = world
    choose = best_of_all(market)
    judge = exaggerates_the_unlogged(market)
    final = choose(judge(market))
    evidence = proposal_evidence(market, final, judge, choose, EvidenceConfig(n_bootstrap=200, seed=5))
    claim = self_graded(market, final, judge(market))
    true = true_lift(truth, logging_ctr, final)
    assert claim > true + 2.0  # graded by itself, the judge claims its fourfold error
    verified = evidence.backtest.verified_ratio
    assert 1.0 < verified < 2.5
    # every product's predicted ratio is beyond the verified one, so each is credited that one and no more
    backtest = evidence.backtest
    capped = (1.0 + backtest.contrast_slope * (verified - 1.0)) * (1.0 + backtest.contrast_local_error) - 1.0
    assert evidence.products["lift"].to_numpy() == pytest.approx(np.full(PRODUCTS, capped))
    assert evidence.lift.low <= true <= evidence.lift.high  # the truth, not the fourfold claim


def test_the_best_product_lower_bound_is_that_of_a_proposal_credited_the_verified_ratio(world):
    market, _, _ = world
    choose = best_of_all(market)
    judge = exaggerates_the_unlogged(market)
    evidence = proposal_evidence(market, choose(judge(market)), judge, choose, EvidenceConfig(n_bootstrap=200, seed=5))
    best = evidence.backtest.best_product_low
    # every product's ratio is beyond the verified one, so every product's lower bound is that one's
    assert evidence.products["lift_low"].to_numpy() == pytest.approx(np.full(PRODUCTS, best))
    assert evidence.to_json()["backtest"]["best_product_low"] == best


def test_the_best_product_lower_bound_rises_with_the_verified_ratio_and_falls_with_the_error():
    rng = np.random.default_rng(3)
    gammas = np.column_stack([rng.uniform(0.5, 1.0, 400), rng.normal(0.0, 0.02, 400)])
    z = rng.standard_normal(400)
    lows = [best_product_bound(v, gammas, error_factors(z, 0.04), 0.9) for v in (1.2, 1.5, 2.0)]
    assert lows[0] < lows[1] < lows[2]
    assert best_product_bound(1.5, gammas, error_factors(z, 0.25), 0.9) < lows[1]
    assert math.isnan(best_product_bound(math.inf, gammas, error_factors(z, 0.04), 0.9))


@pytest.mark.parametrize("judge", [ElementRates, LovesBackgroundX])
def test_the_chooser_view_holds_the_graders_interval_and_leaves_the_keep_marks(world, judge):
    market, _, _ = world
    choose = best_of_all(market)
    final = choose(judge(market))
    off = proposal_evidence(market, final, judge, choose, EvidenceConfig(n_bootstrap=200, seed=3), do_no_harm=True)
    on = proposal_evidence(market, final, judge, choose, EvidenceConfig(n_bootstrap=200, seed=3, chooser_view=True),
                           do_no_harm=True)
    # the same draws for both views: the union holds the grader's interval, the estimate moves toward the chooser's
    for lift_on, lift_off in ((on.proposals_lift, off.proposals_lift), (on.lift, off.lift)):
        assert lift_on.low <= lift_off.low and lift_on.high >= lift_off.high
        assert lift_on.low <= lift_on.estimate <= lift_on.high
    assert on.proposals_lift.estimate != off.proposals_lift.estimate  # the chooser's own contrast counts
    pd.testing.assert_frame_equal(on.products, off.products)  # per-product decisions stay the grader's
    assert (on.backtest.contrast_slope, on.backtest.proposal_spread) == (off.backtest.contrast_slope,
                                                                       off.backtest.proposal_spread)


def test_unseen_picks_likeness_of_a_halfs_creatives_does_not_depend_on_their_clicks(world):
    market, _, _ = world
    config = EvidenceConfig(n_bootstrap=20, seed=2)
    half = {c for c, k in creative_folds(market.creatives, config.seed).items() if k == 0}
    shown = market.impressions["creative_id"].isin(
        market.creatives.loc[market.creatives["creative_id"].isin(half) & market.creatives["elements"].map(
            lambda e: "bx" in e), "creative_id"]).to_numpy()
    lucky = np.random.default_rng(0).random(len(shown)) < 0.3  # half 0's creatives with bx: clicked far more
    clicks = np.where(shown & lucky, 1, market.impressions["click"]).astype("int8")
    altered = dataclasses.replace(market, impressions=market.impressions.assign(click=clicks))
    choose = best_of_all(market)

    def likeness(of: Market, setting: str) -> pd.Series:
        points = proposal_evidence(of, choose(ElementRates(of)), ElementRates, choose,
                                   dataclasses.replace(config, likeness_from=setting)).backtest.points
        return points.set_index("creative_id").loc[sorted(half), "likeness"]

    # the final proposals follow the lucky clicks, so their likeness weights do; the picks of the judge fitted on
    # the other half do not
    assert not likeness(market, "proposals").equals(likeness(altered, "proposals"))
    pd.testing.assert_series_equal(likeness(market, "unseen_picks"), likeness(altered, "unseen_picks"))


def flat_world(seed: int) -> Market:
    """``logged_market`` where nothing matters: every creative of every product has a CTR of 3%."""
    return logged_market(seed, lambda product, combo: 0.03)[0]


@pytest.mark.slow  # twelve markets, each with its evidence twice
def test_likeness_from_the_final_proposals_leaks_their_luck_into_the_error_near_them():
    # Where nothing matters, a judge is right to predict no contrast, and the error left near the proposals should
    # be 0 on average. The final proposals follow the elements of the creatives that were lucky in the logs, also
    # the held-out ones, so the creatives like them show more clicks than predicted: e_w comes out positive.
    errors = []
    for seed in range(12):
        market = flat_world(seed)
        choose = best_of_all(market)
        final = choose(ElementRates(market))
        errors.append([proposal_evidence(market, final, ElementRates, choose, EvidenceConfig(
            n_bootstrap=20, seed=1, likeness_from=setting)).backtest.contrast_local_error
            for setting in ("proposals", "unseen_picks")])
    errors = np.array(errors)
    mean, standard_error = errors.mean(axis=0), errors.std(axis=0, ddof=1) / math.sqrt(len(errors))
    assert mean[0] > 2.5 * standard_error[0]  # the leak: biased upward
    assert abs(mean[1]) < 2.0 * standard_error[1]  # from picks that never saw the creatives: no bias
    assert (errors[:, 0] > errors[:, 1]).mean() >= 0.75
