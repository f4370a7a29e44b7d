from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from adcraft.errors import InputError
from adcraft.market.click_log import click_log
from adcraft.market.market import Market, MarketConfig
from adcraft.rewards.additive import (
    AdditiveConfig,
    AdditiveJudge,
    choose_judge,
    fit_additive,
    log_loss,
    pooled_creatives,
    within_product_log_likelihood,
)

TITLES = {"t0": -0.6, "t1": 0.0, "t2": 0.5}
BACKGROUNDS = {"b0": -0.4, "b1": 0.0, "b2": 0.7}
DAY = 86_400


def true_logit(product: int, combo) -> float:
    return -3.5 + 0.3 * (product % 2) + TITLES[combo[0]] + BACKGROUNDS[combo[1]]


def logged_market(logit, seed: int) -> Market:
    """Twelve products, every combination logged uniformly for 14 days, clicks from ``logit(product, combo)``."""
    rng = np.random.default_rng(seed)
    combos = list(itertools.product(TITLES, BACKGROUNDS))
    products = pd.DataFrame({"product_id": [f"p{i:02d}" for i in range(12)], "title": "thing",
                             "category": "things", "image": "p.png"})
    elements = pd.DataFrame({"element_id": [*TITLES, *BACKGROUNDS],
                             "slot": ["title"] * 3 + ["background"] * 3, "product_id": None,
                             "text": [*TITLES, None, None, None], "value": [None, None, None, *BACKGROUNDS],
                             "image": None})
    creatives, impressions = [], []
    for i in range(12):
        for k, combo in enumerate(combos):
            cid = f"p{i:02d}-c{k}"
            creatives.append({"creative_id": cid, "product_id": f"p{i:02d}", "elements": list(combo), "image": None})
            p = 1 / (1 + np.exp(-logit(i, combo)))
            for click in rng.random(400) < p:
                impressions.append({"creative_id": cid, "click": int(click), "ts": int(rng.integers(0, 14 * DAY)),
                                    "propensity": 1 / len(combos)})
    impressions = pd.DataFrame(impressions)
    impressions.insert(0, "impression_id", [f"i{k}" for k in range(len(impressions))])
    impressions["click"] = impressions["click"].astype("int8")
    return Market(None, MarketConfig(slots=("title", "background")), products, elements, pd.DataFrame(creatives),
                  impressions)


@pytest.fixture(scope="module")
def market() -> Market:
    """The additive truth ``true_logit`` logged (``logged_market``)."""
    return logged_market(true_logit, seed=5)


class Constant:
    """A judge that knows nothing: the same CTR for everything."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def predict(self, product_ids, combos, contexts=None) -> np.ndarray:
        return np.full(len(product_ids), self.rate)


class Truth:
    def predict(self, product_ids, combos, contexts=None) -> np.ndarray:
        return np.array([1 / (1 + np.exp(-true_logit(int(p[1:]), c))) for p, c in zip(product_ids, combos)])


def test_the_fit_recovers_the_element_effects_and_leaves_unseen_ones_at_zero(market):
    judge = fit_additive(click_log(market), AdditiveConfig())
    titles = [judge.elements[t] for t in TITLES]
    backgrounds = [judge.elements[b] for b in BACKGROUNDS]
    assert titles == sorted(titles) and backgrounds == sorted(backgrounds)  # the true orders
    assert titles[-1] - titles[0] == pytest.approx(1.1, abs=0.35)  # shrunk a little by the L2 term
    assert judge.l2 in AdditiveConfig().l2_grid
    p = judge.predict(["p00", "p00"], [["t2", "b2"], ["never-seen", "b2"]])
    assert 0 < p[1] < p[0] < 1
    assert judge.logit(["p00"], [["never-seen", "b2"]])[0] == pytest.approx(judge.bias + judge.products["p00"]
                                                                        + judge.elements["b2"])


def test_a_stronger_penalty_shrinks_the_weights(market):
    rows = pooled_creatives(click_log(market))
    loose, tight = AdditiveJudge.fit(rows, 0.1), AdditiveJudge.fit(rows, 1000.0)
    assert np.abs(list(tight.elements.values())).sum() < 0.5 * np.abs(list(loose.elements.values())).sum()


def test_the_products_own_strength_shrinks_them_alone_and_the_same_strength_is_the_one_penalty(market):
    rows = pooled_creatives(click_log(market))
    same = AdditiveJudge.fit(rows, 3.0)
    assert same.product_l2 is None
    equal = AdditiveJudge.fit(rows, 3.0, product_l2=3.0)  # its own strength equal to the elements': the same fit
    assert (equal.products, equal.elements) == (same.products, same.elements)
    tight = AdditiveJudge.fit(rows, 3.0, product_l2=1e5)
    spread = [np.abs(list(j.products.values())).sum() for j in (same, tight)]
    assert spread[1] < 0.05 * spread[0]  # the products' weights shrink to (nearly) 0 ...
    assert np.subtract(*[j.elements["b2"] - j.elements["b0"] for j in (tight, same)]) == pytest.approx(0.0, abs=0.05)
    # ... while the elements' contrasts, which every product shows alike here, barely move


def test_the_strength_pair_is_chosen_on_the_latest_part_of_the_log(market):
    config = AdditiveConfig(l2_grid=(0.3, 30.0), product_l2_grid=(0.1, 1e4))
    judge = fit_additive(click_log(market), config)
    assert judge.l2 in config.l2_grid and judge.product_l2 in config.product_l2_grid
    # products differ (0.3 on the logit scale between parities, about 10000 impressions each): never crushed to 0
    assert judge.product_l2 == 0.1
    with pytest.raises(InputError):
        AdditiveConfig(product_l2_grid=(1.0, -1.0))


def interaction_market() -> Market:
    """The background's effect flips sign with the product's parity: one weight per element cannot order any
    product's creatives, the truth orders them strongly."""
    return logged_market(interaction_logit, seed=11)


def interaction_logit(product: int, combo) -> float:
    return -3.0 + (1.0 if product % 2 else -1.0) * 2.0 * BACKGROUNDS[combo[1]]


class InteractionTruth:
    def predict(self, product_ids, combos, contexts=None) -> np.ndarray:
        return np.array([1 / (1 + np.exp(-interaction_logit(int(p[1:]), c))) for p, c in zip(product_ids, combos)])


class Reversed(Truth):
    """The truth's level with every product's creatives in the opposite order."""

    def predict(self, product_ids, combos, contexts=None) -> np.ndarray:
        return 1 / (1 + np.exp(-np.array([-true_logit(int(p[1:]), c) + 2 * (-3.5 + 0.3 * (int(p[1:]) % 2))
                                           for p, c in zip(product_ids, combos)])))


def test_the_within_product_score_reads_only_the_contrast(market):
    rows = pooled_creatives(click_log(market))
    truth = Truth().predict(rows["product_id"].tolist(), rows["elements"].tolist())
    level = np.array([3.0 if p in {"p01", "p04"} else 0.5 for p in rows["product_id"]])
    honest = within_product_log_likelihood(truth, rows)
    assert len(honest) == 12 and honest["clicks"].sum() == rows["clicks"].sum()
    # every product's prediction scaled by its own factor: the same score (level errors do not count)
    np.testing.assert_allclose(within_product_log_likelihood(truth * level, rows)["log_likelihood"],
                               honest["log_likelihood"], rtol=1e-9)
    flat = within_product_log_likelihood(np.full(len(rows), 0.03), rows)
    assert honest["log_likelihood"].sum() > flat["log_likelihood"].sum()  # the true order beats no order
    one = rows[rows["creative_id"].isin(["p00-c0", "p01-c0", "p01-c1"])]
    assert within_product_log_likelihood(np.full(3, 0.1), one)["product_id"].tolist() == ["p01"]  # p00: 1 creative


def test_the_judge_with_the_lower_held_out_log_loss_is_chosen(market):
    log = click_log(market)
    rate = float(log["clicks"].sum() / log["trials"].sum())
    judge, choice = choose_judge(log, Constant(rate))
    assert choice.chosen == "additive" and isinstance(judge, AdditiveJudge)
    assert choice.held_out_log_loss["additive"] < choice.held_out_log_loss["mil"]
    assert 0 < choice.held_out_impressions < len(market.impressions)
    truth = Truth()  # near the additive fit here: either may win, and the lower loss decides
    judge, choice = choose_judge(log, truth)
    losses = choice.held_out_log_loss
    assert choice.chosen == min(losses, key=losses.get)
    assert (judge is truth) == (choice.chosen == "mil")
    assert abs(losses["mil"] - losses["additive"]) < 0.01 * losses["mil"]


def test_the_choice_records_how_each_judge_orders_the_held_out_creatives(market):
    log = click_log(market)
    _, choice = choose_judge(log, Reversed())  # the true level, every product's creatives in the wrong order
    assert choice.within_product["additive"] > choice.within_product["mil"]
    assert 0 < choice.held_out_clicks and choice.held_out_products == 12
    _, choice = choose_judge(click_log(interaction_market()), InteractionTruth())  # additive cannot order these
    assert choice.within_product["mil"] > choice.within_product["additive"]


def test_log_loss_and_bad_inputs():
    rows = pd.DataFrame({"clicks": [1.0, 0.0], "trials": [2.0, 2.0]})
    assert log_loss(np.array([0.5, 0.5]), rows) == pytest.approx(np.log(2))
    with pytest.raises(InputError):
        AdditiveConfig(l2_grid=(0.0,))
    with pytest.raises(InputError):
        AdditiveJudge.fit(pd.DataFrame({"product_id": [], "elements": [], "clicks": [], "trials": []}), 1.0)
