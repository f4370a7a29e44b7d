import math

import pytest

from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market
from adcraft.simulator.click_model import contexts
from adcraft.simulator.legacy import InverseU, LegacyClickModel


def _model(**overrides) -> LegacyClickModel:
    base = dict(
        mu=math.log(0.03 / 0.97),
        product_effect={"p": 0.0},
        product_category={"p": "mug"},
        element_slot={"t": "title", "bg_light": "background", "bg_dark": "background", "tc": "text_color",
                      "tpl_text": "template", "tpl_none": "template", "h": "highlight"},
        element_effect={"t": 0.3, "bg_light": 0.0, "bg_dark": 0.0, "tc": 0.0, "tpl_text": 0.0, "tpl_none": 0.0,
                        "h": 0.2},
        category_latent={"mug": [1.0, 0.0, 0.0]},
        background_latent={"bg_light": [0.5, 0, 0], "bg_dark": [-0.5, 0, 0]},
        background_rgb={"bg_light": [245, 245, 245], "bg_dark": [20, 20, 20]},
        text_rgb={"tc": [10, 10, 10]},
        title_length_z={"t": 1.0},
        template_length_coef={"tpl_text": 0.2, "tpl_none": 0.0},
        template_shows_text={"tpl_text": True, "tpl_none": False},
        relevance_scale=0.4,
        legibility_scale=0.25,
        click_terms=[InverseU("brightness", 0.5, 0.1, 0.1)],
        demand_terms=[InverseU("brightness", 0.6, 0.1, 0.2)],
        demand_base=math.log(50),
        demand_popularity=1.0,
        device_effect={"mobile": 0.1, "desktop": -0.1},
        segment_effect={"deal_seeker": 0.0, "brand_lover": 0.0, "new_visitor": 0.0},
        highlight_segment={"h": {"deal_seeker": 0.4}},
    )
    base.update(overrides)
    return LegacyClickModel(**base)


def test_context_probabilities_sum_to_one():
    assert sum(p for _, p in contexts()) == pytest.approx(1.0)


def test_dark_text_is_more_legible_on_light_background():
    m = _model()
    light = m.static_logit_terms("p", ["t", "h", "bg_light", "tpl_text", "tc"])
    dark = m.static_logit_terms("p", ["t", "h", "bg_dark", "tpl_text", "tc"])
    assert light["legibility"] > 0 > dark["legibility"]
    assert light["relevance"] > dark["relevance"]


def test_text_free_template_mutes_text_effects():
    m = _model()
    shown = m.static_logit_terms("p", ["t", "h", "bg_light", "tpl_text", "tc"])
    hidden = m.static_logit_terms("p", ["t", "h", "bg_light", "tpl_none", "tc"])
    assert shown["elements"] == pytest.approx(0.5) and hidden["elements"] == 0.0
    assert hidden["legibility"] == 0.0 and hidden["layout_length"] == 0.0
    assert m.context_logit(["h", "tpl_none"], {"segment": "deal_seeker"}) == 0.0
    assert m.context_logit(["h", "tpl_text"], {"segment": "deal_seeker"}) == pytest.approx(0.4)


def test_attribute_effect_peaks_at_the_peak():
    m = _model()
    combo = ["t", "h", "bg_light", "tpl_text", "tc"]
    ctrs = [m.ctr("p", combo, {"brightness": b}) for b in (0.3, 0.5, 0.7)]
    assert ctrs[1] > ctrs[0] and ctrs[1] > ctrs[2]
    demand = [m.expected_demand("p", {"brightness": b}) for b in (0.4, 0.6, 0.8)]
    assert demand[1] == pytest.approx(50.0) and demand[0] < 50 and demand[2] < 50


def test_context_average_lies_between_context_ctrs():
    m = _model()
    combo = ["t", "h", "bg_light", "tpl_text", "tc"]
    per = [m.ctr("p", combo, {"brightness": 0.5}, c) for c, _ in contexts()]
    avg = m.ctr("p", combo, {"brightness": 0.5})
    assert min(per) < avg < max(per)


@pytest.fixture(scope="module")
def legacy_sim(tmp_path_factory):
    config = SimulatorConfig(seed=3, world="legacy", n_products=6, n_impressions=6000, creatives_per_product=3,
                             titles_per_product=2)
    return simulate_market(config, tmp_path_factory.mktemp("legacy") / "market")


def test_attribute_terms_are_inverse_u_with_interior_peaks(legacy_sim):
    truth = GroundTruth.load(legacy_sim.truth_dir)
    assert isinstance(truth.model, LegacyClickModel)
    creatives = truth.creatives
    for term in truth.model.click_terms + truth.model.demand_terms:
        assert term.curvature > 0
        if term.attribute in creatives:
            values = creatives[term.attribute]
            assert values.min() <= term.peak <= values.max()
        assert term(term.peak) == 0 and term(term.peak + term.scale) < 0 and term(term.peak - term.scale) < 0
