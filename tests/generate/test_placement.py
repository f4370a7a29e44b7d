"""Render settings as decisions: the held-out check that decides whether h is used, and the best-of-N choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adcraft.errors import InputError
from adcraft.features.attributes import compute_attributes
from adcraft.generate.placement import (
    PlacementSearchConfig,
    choose_placements,
    creative_counts,
    fit_h,
    held_out_check,
    utility_rows,
)
from adcraft.market.click_log import click_log
from adcraft.render.compositor import Placement
from adcraft.render.from_market import MarketRenderer
from adcraft.rewards.utility import UtilityConfig

ATTRIBUTES = UtilityConfig().attributes
DAY = 86_400


def synthetic(seed: int, effect: float, products: int = 12, creatives: int = 6, days: int = 10,
              trials: int = 120) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A click log (``market.click_log``'s columns) and its creatives' attributes, in which the logit of a
    creative's CTR is its product's level plus ``effect * -(product_area - 0.3)²`` (an inverse U)."""
    rng = np.random.default_rng(seed)
    rows, attributes = [], {}
    for p in range(products):
        level = rng.normal(-3.0, 0.3)
        for c in range(creatives):
            cid = f"p{p}-c{c}"
            values = dict(zip(ATTRIBUTES, rng.uniform(0.05, 0.6, len(ATTRIBUTES))))
            attributes[cid] = values
            logit = level - effect * (values["product_area"] - 0.3) ** 2
            ctr = 1 / (1 + np.exp(-logit))
            for day in range(days):
                clicks = rng.binomial(trials, ctr)
                rows.append((cid, f"p{p}", [cid], "", float(day * DAY), float(clicks), float(trials)))
    log = pd.DataFrame(rows, columns=["creative_id", "product_id", "elements", "context", "time", "clicks", "trials"])
    return log, pd.DataFrame.from_dict(attributes, orient="index")


@pytest.mark.parametrize("kwargs", [{"holdout": 0.9}, {"z": -1.0}, {"scales": ()}, {"scales": (0.1,)},
                                    {"positions": ((0.5, 2.0),)}, {"utility": UtilityConfig(target="log_demand")}])
def test_bad_settings_raise_input_error(kwargs) -> None:
    with pytest.raises(InputError):
        PlacementSearchConfig(**kwargs)


def test_the_default_placement_is_always_the_first_candidate_and_none_repeats() -> None:
    candidates = PlacementSearchConfig(scales=(1.0, 0.8, 0.8), positions=((0.5, 0.5), (0.5, 1.0))).candidates()
    assert candidates[0] == Placement()
    assert len(set(candidates)) == len(candidates) == 4


def test_the_check_passes_where_clicks_follow_the_attribute_and_not_where_they_do_not() -> None:
    config = PlacementSearchConfig(enabled=True)
    strong = [held_out_check(*synthetic(seed, effect=40.0), config) for seed in range(3)]
    assert all(check.passes(config.z) for check in strong)
    assert all(check.gain > 0 and check.impressions > 0 and check.creatives > 0 for check in strong)
    null = [held_out_check(*synthetic(seed, effect=0.0), config) for seed in range(10)]
    assert sum(check.passes(config.z) for check in null) <= 1  # a one-sided 95% bound: about 1 in 20 by chance
    assert np.mean([check.gain for check in null]) < 0  # fitting noise costs held-out likelihood


def test_h_peaks_where_the_clicks_peak() -> None:
    log, attributes = synthetic(0, effect=40.0, products=30, days=20)
    rows = utility_rows(creative_counts(log), attributes, float(log["clicks"].sum() / log["trials"].sum()))
    model = fit_h(rows, UtilityConfig(target="logit_ctr", controls="product", ridge=1.0))
    grid = np.tile(attributes.mean().to_numpy(), (5, 1))
    area = list(ATTRIBUTES).index("product_area")
    grid[:, area] = [0.1, 0.2, 0.3, 0.4, 0.5]
    scores = model.predict(grid)
    assert int(np.argmax(scores)) == 2  # the peak at 0.3


@pytest.fixture(scope="module")
def placed(generator_market):
    """A log of the generator market's creatives whose clicks fall with the product's area on their image, and
    proposals (some kept) for the first three products."""
    market, _ = generator_market
    log = click_log(market)
    area = {cid: compute_attributes(market.open_image(image))["product_area"]
            for cid, image in zip(market.creatives["creative_id"], market.creatives["image"])}
    rng = np.random.default_rng(0)
    small = min(area.values())
    ctr = np.array([1 / (1 + np.exp(2.5 + 6.0 * (area[c] - small))) for c in log["creative_id"]])
    trials = log["trials"] * 20
    log = log.assign(trials=trials, clicks=rng.binomial(trials.astype(int), ctr).astype(float))
    products = market.products["product_id"].tolist()[:3]
    mine = market.creatives[market.creatives["product_id"].isin(products)].drop_duplicates("product_id")
    proposals = pd.DataFrame({"product_id": list(mine["product_id"]) * 2,
                              "elements": [list(e) for e in mine["elements"]] * 2,
                              "kept": [True] * len(mine) + [False] * len(mine)})
    return market, log, proposals


def _renderer(market):
    renderer = MarketRenderer(market)
    return lambda pid, combo, placement: renderer.render(pid, combo, placement)


FEW = UtilityConfig(target="logit_ctr", controls="product", ridge=1.0,
                    attributes=("brightness", "product_area", "clutter"))  # 40 logged creatives: a small h


def test_where_clicks_favour_a_small_product_the_search_shrinks_the_photo_of_proposals_not_kept(placed) -> None:
    market, log, proposals = placed
    config = PlacementSearchConfig(enabled=True, utility=FEW)
    choice = choose_placements(market, log, proposals, _renderer(market), config)
    assert choice.used and choice.check is not None and choice.check.passes(config.z)
    kept = proposals["kept"].to_numpy()
    assert all(p.is_default for p, k in zip(choice.placements, kept) if k)
    chosen = [p for p, k in zip(choice.placements, kept) if not k]
    assert choice.moved == sum(not p.is_default for p in chosen) >= 1 and choice.searched == len(chosen)
    assert all(p.scale < 1.0 for p in chosen if not p.is_default)
    assert "Render settings:" in choice.note() and f"{choice.moved} of the {choice.searched}" in choice.note()


def test_switched_off_or_without_signal_every_proposal_keeps_the_default(placed) -> None:
    market, log, proposals = placed
    off = choose_placements(market, log, proposals, _renderer(market), PlacementSearchConfig())
    assert not off.used and set(off.placements) == {Placement()} and "off" in off.reason
    rng = np.random.default_rng(1)
    flat = log.assign(clicks=rng.binomial(log["trials"].astype(int), 0.05).astype(float))
    choice = choose_placements(market, flat, proposals, _renderer(market),
                               PlacementSearchConfig(enabled=True, utility=FEW))
    assert not choice.used and set(choice.placements) == {Placement()}
    assert "did not predict" in choice.reason and choice.check is not None


def test_a_market_without_images_of_its_logged_creatives_keeps_the_default(placed) -> None:
    market, log, proposals = placed
    import dataclasses

    bare = dataclasses.replace(market, creatives=market.creatives.assign(image=None))
    choice = choose_placements(bare, log, proposals, _renderer(market), PlacementSearchConfig(enabled=True))
    assert not choice.used and set(choice.placements) == {Placement()} and "no images" in choice.reason
