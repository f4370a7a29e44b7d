from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from adcraft.errors import InputError
from adcraft.market import load_market
from adcraft.render.from_market import MarketRenderer
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market
from adcraft.simulator.build import log_impressions
from adcraft.simulator.truth import additive_element_effects


def test_simulated_market_is_valid_and_complete(tiny_sim, tiny_config):
    market = load_market(tiny_sim.market_dir)
    assert len(market.products) == tiny_config.n_products
    assert len(market.creatives) == tiny_config.n_products * tiny_config.creatives_per_product
    assert len(market.impressions) == tiny_config.n_impressions
    assert market.creative_stats["impressions"].sum() == tiny_config.n_impressions
    assert market.creative_stats["clicks"].sum() == market.impressions["click"].sum()
    assert market.demand["demand"].ge(0).all() and len(market.demand) == tiny_config.n_products
    assert ((market.impressions["propensity"] > 0) & (market.impressions["propensity"] <= 1)).all()
    for image in market.creatives["image"]:
        with Image.open(market.resolve(image)) as im:
            assert im.size == tuple(market.config.canvas)


def test_same_seed_same_market(tiny_sim, tiny_config, tmp_path):
    again = simulate_market(tiny_config, tmp_path / "again")
    a, b = load_market(tiny_sim.market_dir), load_market(again.market_dir)
    pd.testing.assert_frame_equal(a.impressions, b.impressions)
    pd.testing.assert_frame_equal(a.elements, b.elements)
    assert (tiny_sim.market_dir / "images/creatives/c_p0000_0.png").read_bytes() == (
        again.market_dir / "images/creatives/c_p0000_0.png"
    ).read_bytes()


def test_truth_recomputes_logged_true_ctr_from_a_fresh_render(tiny_sim):
    market = load_market(tiny_sim.market_dir)
    truth = GroundTruth.load(tiny_sim.truth_dir)
    renderer = MarketRenderer(market)
    row = truth.creatives.iloc[4]
    combo = market.creatives.set_index("creative_id").loc[row["creative_id"], "elements"]
    ctr = truth.ctr_of_combination(renderer, row["product_id"], combo)
    assert ctr == pytest.approx(row["true_ctr"], rel=1e-9)


def test_clicks_follow_the_true_ctr(tiny_sim):
    market = load_market(tiny_sim.market_dir)
    truth = GroundTruth.load(tiny_sim.truth_dir)
    shown = market.impressions.merge(truth.creatives[["creative_id", "true_ctr"]], on="creative_id")
    expected = shown["true_ctr"].mean()
    se = np.sqrt(expected * (1 - expected) / len(shown))
    # context-averaged truth vs realised clicks: agree within 4 binomial standard errors
    assert abs(shown["click"].mean() - expected) < 4 * se


def test_logging_propensities_are_honest():
    """Empirical choice frequencies per (product, period) match the logged propensities."""
    config = SimulatorConfig(seed=1, n_impressions=200_000, exploration=0.3)
    creatives = pd.DataFrame(
        {"creative_id": [f"c{i}" for i in range(7)], "product_id": ["a"] * 3 + ["b"] * 4}
    )
    true_ctr = np.full((7, 6), 0.05)
    log, policy = log_impressions(config, creatives, true_ctr, np.random.default_rng(0))
    log = log.assign(product=log["creative_id"].map(dict(zip(creatives.creative_id, creatives.product_id))))
    log["late"] = log["ts"] >= policy["switch_ts"]
    for (_, _), group in log.groupby(["product", "late"]):
        freq = group["creative_id"].value_counts(normalize=True)
        logged = group.groupby("creative_id")["propensity"].first()
        assert group.groupby("creative_id")["propensity"].nunique().eq(1).all()
        assert logged.sum() == pytest.approx(1.0)
        for cid, p in logged.items():
            assert abs(freq[cid] - p) < 4 * np.sqrt(p * (1 - p) / len(group)) + 1e-9


def test_truth_has_interactions_a_per_element_model_cannot_capture(tiny_sim):
    truth = GroundTruth.load(tiny_sim.truth_dir)
    model = truth.model
    market = load_market(tiny_sim.market_dir)
    products = market.products.drop_duplicates("category")
    assert len(products) >= 2
    (p1, p2) = products["product_id"].iloc[:2]
    combo1 = list(market.creatives[market.creatives.product_id == p1]["elements"].iloc[0])
    combo2 = list(market.creatives[market.creatives.product_id == p2]["elements"].iloc[0])
    backgrounds = market.elements.loc[market.elements.slot == "background", "element_id"].tolist()
    slot = market.config.slots.index("background")
    measures = truth.creatives.iloc[0][[t.attribute for t in model.click_terms]].to_dict()

    def relevance(combo, pid, bg):
        changed = list(combo)
        changed[slot] = bg
        return model.logit_terms(pid, changed, measures)["relevance"]

    gaps = [
        (relevance(combo1, p1, a) - relevance(combo1, p1, b)) - (relevance(combo2, p2, a) - relevance(combo2, p2, b))
        for a, b in zip(backgrounds[:-1], backgrounds[1:])
    ]
    assert max(abs(g) for g in gaps) > 1e-3


def test_visual_terms_peak_inside_the_past_creatives_measures(tiny_sim):
    truth = GroundTruth.load(tiny_sim.truth_dir)
    creatives = truth.creatives
    assert truth.model.click_terms and truth.model.demand_terms
    for term in truth.model.click_terms + truth.model.demand_terms:
        assert term.amplitude > 0 and term.width > 0
        values = creatives[term.attribute]
        assert values.min() <= term.peak <= values.max()
        assert term(term.peak) > term(term.peak + term.width) and term(term.peak) > term(term.peak - term.width)


def test_truth_files_round_trip(tiny_sim, tmp_path):
    truth = GroundTruth.load(tiny_sim.truth_dir)
    truth.model.save(tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads(
        (tiny_sim.truth_dir / "click_model.json").read_text()
    )


def test_refuses_non_empty_output_and_writes_nothing(tiny_config, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        simulate_market(tiny_config, out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not (tmp_path / "busy-truth").exists()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="exploration"):
        SimulatorConfig(exploration=0.0)
    with pytest.raises(ValueError, match="slots"):
        SimulatorConfig(slots=("title", "sparkles"))


def test_photos_from_a_folder(tiny_config, tmp_path: Path):
    folder = tmp_path / "photos"
    for sub, (w, h) in {"tops": (60, 120), "bags": (120, 60)}.items():
        (folder / sub).mkdir(parents=True)
        for i in range(2):
            im = Image.new("RGBA", (w + 20, h + 20), (0, 0, 0, 0))
            im.paste((200, 40 * i, 90, 255), (10, 10, 10 + w, 10 + h))
            im.save(folder / sub / f"{i}.png")
    config = replace(tiny_config, n_products=4, n_impressions=500, photos=folder)
    sim = simulate_market(config, tmp_path / "m")
    market = load_market(sim.market_dir)
    assert set(market.products["category"]) <= {"tops", "bags"}


def test_photos_folder_without_images_is_refused(tiny_config, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="fewer than 2"):
        simulate_market(replace(tiny_config, photos=tmp_path / "empty"), tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.shared_data
def test_real_visuelle_cutouts_as_product_photos(shared_data, tiny_config, tmp_path):
    folder = shared_data / "visuelle" / "images"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing")
    config = replace(tiny_config, n_products=5, n_impressions=800, photos=folder)
    market = load_market(simulate_market(config, tmp_path / "m").market_dir)
    assert set(market.products["category"]) <= {"tall", "wide", "compact"}
    for image in market.products["image"]:
        photo = market.open_image(image)
        alpha = np.asarray(photo.convert("RGBA"))[..., 3]
        assert alpha[0, 0] == 0 and (alpha > 200).mean() > 0.1  # quantised alpha peaks at 254


def test_marginal_effects_recover_main_effects_of_a_purely_additive_truth(tiny_sim):
    """With interactions and image terms switched off, the additive projection returns the main effects."""
    market = load_market(tiny_sim.market_dir)
    truth = GroundTruth.load(tiny_sim.truth_dir)
    model = truth.model
    model.relevance_scale = model.legibility_scale = 0.0
    model.pair_effect, model.category_element, model.context_element = {}, {}, {}
    model.click_terms = []
    model.device_effect = {k: 0.0 for k in model.device_effect}
    model.segment_effect = {k: 0.0 for k in model.segment_effect}
    model.template_shows_text = {k: True for k in model.template_shows_text}
    rng = np.random.default_rng(0)
    rows = []
    for i in range(400):  # many random combinations, so that every contrast is identified
        pid = str(rng.choice(market.products["product_id"]))
        combo = [str(rng.choice(market.usable_elements(pid, slot)["element_id"])) for slot in market.config.slots]
        rows.append({"creative_id": f"r{i}", "product_id": pid, "elements": combo})
    creatives = pd.DataFrame(rows)
    many = dataclasses.replace(market, creatives=creatives)
    truth.creatives = creatives[["creative_id", "product_id"]].assign(
        true_ctr=[model.ctr(p, c, {}) for p, c in zip(creatives["product_id"], creatives["elements"])]
    )
    learned = truth.element_marginal_effects(many)
    slot_of = market.elements.set_index("element_id")["slot"]
    for slot in market.config.slots:
        ids = [e for e in learned.index if slot_of[e] == slot]
        if slot == "title":
            continue  # per-product titles: identified only relative to their product
        main = pd.Series({e: model.element_effect[e] for e in ids})
        np.testing.assert_allclose(learned[ids].to_numpy(), (main - main.mean()).to_numpy(), atol=0.02)
    # the projection is a function of any creative CTRs, not only the truth's (benchmarks project fitted ones)
    again = additive_element_effects(many, truth.creatives.set_index("creative_id")["true_ctr"])
    pd.testing.assert_series_equal(again, learned)
