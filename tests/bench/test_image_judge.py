"""``bench/image_judge.py``: the image-aware additive judge, its choice on held-out logs, and its picks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from image_judge import ImageAdditiveJudge, fit_image_judge, image_picks  # noqa: E402

from adcraft.features.attributes import ATTRIBUTE_NAMES  # noqa: E402
from adcraft.rewards.additive import AdditiveConfig, AdditiveJudge, log_loss, pooled_creatives  # noqa: E402

SLOTS = ("background", "title", "template")
ELEMENTS = {slot: [f"{slot[:2]}{k}" for k in range(4)] for slot in SLOTS}
DAY = 86_400


def brightness(combo) -> float:
    """A look that no element explains on its own: it depends on the pair (background, template)."""
    return ((int(combo[0][-1]) * 3 + int(combo[2][-1]) * 5) % 8) / 7.0


def looks(informative: bool):
    def of(product_id, combo) -> np.ndarray:
        values = np.full(len(ATTRIBUTE_NAMES), 0.5)
        if informative:
            values[0] = brightness(combo)
        return values
    return of


def synthetic_log(seed: int = 0, products: int = 30, creatives: int = 12, days: int = 10) -> pd.DataFrame:
    """Clicks whose logit is an additive part plus an inverse-U in ``brightness`` (peak at 0.5)."""
    rng = np.random.default_rng(seed)
    effects = {e: rng.normal(0, 0.2) for slot in SLOTS for e in ELEMENTS[slot]}
    rows = []
    for p in range(products):
        level = rng.normal(0, 0.3)
        for c in range(creatives):
            combo = [str(rng.choice(ELEMENTS[slot])) for slot in SLOTS]
            logit = -3.0 + level + sum(effects[e] for e in combo) - 6.0 * (brightness(combo) - 0.5) ** 2
            ctr = 1 / (1 + np.exp(-logit))
            for day in range(days):
                trials = 60
                rows.append((f"p{p}-c{c}", f"p{p}", combo, "", float(day * DAY), int(rng.binomial(trials, ctr)),
                             trials))
    return pd.DataFrame(rows, columns=["creative_id", "product_id", "elements", "context", "time", "clicks",
                                       "trials"])


def test_the_image_terms_learn_an_inside_optimum_that_the_elements_cannot_express():
    rows = pooled_creatives(synthetic_log())
    judge = ImageAdditiveJudge.fit(rows, looks(True), l2=1.0)
    # the design is [z, z_attributes^2]: brightness's squared term comes after the linear ones
    assert judge.coefficients[len(ATTRIBUTE_NAMES)] < 0  # an inverse-U, not a line
    held_out = pooled_creatives(synthetic_log(seed=1))
    additive = AdditiveJudge.fit(rows, 1.0)
    # a fresh market drawn the same way: other element effects, the same inverse-U, which the images carry over
    assert log_loss(judge.predict(held_out["product_id"], held_out["elements"]), held_out) < \
        log_loss(additive.predict(held_out["product_id"], held_out["elements"]), held_out)


def test_images_are_chosen_on_the_later_logs_only_where_they_predict_them_better():
    log = synthetic_log()
    with_looks, losses = fit_image_judge(log, looks(True), AdditiveConfig())
    assert isinstance(with_looks, ImageAdditiveJudge) and losses["images"] < losses["additive"]
    # looks that say nothing (every attribute the same on every creative): the additive judge, equal losses
    without, losses = fit_image_judge(log, looks(False), AdditiveConfig())
    assert isinstance(without, AdditiveJudge) and losses["images"] == pytest.approx(losses["additive"])


class TinyMarket:
    """What ``image_picks`` reads of a market."""

    class config:
        slots = SLOTS

    def __init__(self, creatives: pd.DataFrame) -> None:
        self.creatives = creatives
        self.products = pd.DataFrame({"product_id": sorted(set(creatives["product_id"]))})

    def usable_elements(self, product_id, slot) -> pd.DataFrame:
        return pd.DataFrame({"element_id": ELEMENTS[slot]})


def test_the_picks_are_the_judges_best_among_the_argmax_its_single_slot_changes_and_the_logged_ones():
    log = synthetic_log(products=4)
    judge = ImageAdditiveJudge.fit(pooled_creatives(log), looks(True), l2=1.0)
    market = TinyMarket(log.drop_duplicates("creative_id")[["creative_id", "product_id", "elements"]])
    picks = image_picks(market, judge, top=4)
    assert sorted(picks["product_id"]) == sorted(market.products["product_id"])
    for pid, combo in zip(picks["product_id"], picks["elements"]):
        argmax = tuple(max(ELEMENTS[s], key=lambda e: (judge.elements.get(e, 0.0), e)) for s in SLOTS)
        changes = {argmax[:s] + (e,) + argmax[s + 1:] for s in range(len(SLOTS)) for e in ELEMENTS[SLOTS[s]]}
        logged = {tuple(c) for c in market.creatives.loc[market.creatives["product_id"] == pid, "elements"]}
        candidates = sorted(changes | logged)
        best = candidates[int(np.argmax(judge.predict([pid] * len(candidates), candidates)))]
        assert tuple(combo) == best
