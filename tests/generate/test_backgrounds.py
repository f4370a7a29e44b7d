from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from adcraft.errors import InputError
from adcraft.generate.backgrounds import (
    ELEMENT_COLUMNS,
    BackgroundsConfig,
    build_judge,
    current_best_combinations,
    generate_backgrounds,
    prompt_product_similarity,
    propose_backgrounds,
    text_background_match,
    write_backgrounds,
)
from adcraft.generate.preference import PreferenceConfig
from adcraft.generate.prompt import PromptModelConfig, PromptTrainer, prompt_key, tokenize
from adcraft.market import load_market, validate_market, write_market
from adcraft.render.from_market import MarketRenderer
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market
from adcraft.simulator.catalogue import BACKGROUNDS
from adcraft.simulator.scenes import scene_vector

CONFIG = BackgroundsConfig(
    prompt=PromptModelConfig(text_backbone="tiny", image_backbone="tiny", epochs=100, hidden=64),
    preference=PreferenceConfig(rounds=2, epochs=2),
    per_product=3,
    samples=24,
)


def prefers_marble(product_ids, prompts_a, prompts_b) -> np.ndarray:
    a = np.array(["marble" in tokenize(p) for p in prompts_a], dtype=float)
    b = np.array(["marble" in tokenize(p) for p in prompts_b], dtype=float)
    return 0.5 + 0.5 * (a - b)


@pytest.fixture(scope="module")
def generated(generator_market) -> pd.DataFrame:
    return generate_backgrounds(generator_market[0], CONFIG, judge=prefers_marble)


def test_generated_elements_are_new_backgrounds_of_their_products(generator_market, generated):
    market = generator_market[0]
    assert list(generated.columns) == list(ELEMENT_COLUMNS) and len(generated) > 0
    assert generated["element_id"].is_unique
    assert not set(generated["element_id"]) & set(market.elements["element_id"])
    assert (generated["slot"] == "background").all()
    assert generated["text"].isna().all() and generated["image"].isna().all()
    assert set(generated["product_id"]) <= set(market.products["product_id"])
    assert generated.groupby("product_id").size().max() <= CONFIG.per_product
    for pid, prompt in zip(generated["product_id"], generated["value"]):
        existing = {prompt_key(v) for v in market.usable_elements(pid, "background")["value"]}
        assert prompt_key(prompt) and prompt_key(prompt) not in existing
    assert not generated.duplicated(["product_id", "value"]).any()


def test_generated_elements_pass_the_market_rules(generator_market, generated, tmp_path):
    market = generator_market[0]
    grown = dataclasses.replace(market, elements=pd.concat([market.elements, generated], ignore_index=True))
    write_market(grown, tmp_path / "grown")
    assert validate_market(tmp_path / "grown") == []
    assert len(load_market(tmp_path / "grown").elements) == len(market.elements) + len(generated)
    path = write_backgrounds(tmp_path / "out", generated, market)
    back = pd.read_parquet(path)
    assert back["element_id"].tolist() == generated["element_id"].tolist()
    # and the renderer draws them
    pid, element_id = generated["product_id"].iloc[0], generated["element_id"].iloc[0]
    combo = list(current_best_combinations(market)[pid])
    combo[market.config.slots.index("background")] = element_id
    assert MarketRenderer(grown).render(pid, combo).image.size == tuple(market.config.canvas)


def test_write_backgrounds_refuses_rows_that_break_the_rules(generator_market, generated, tmp_path):
    with pytest.raises(ValueError, match="element_id"):
        write_backgrounds(tmp_path / "out", generated.assign(element_id="x"))
    with pytest.raises(ValueError, match="product_id"):
        write_backgrounds(tmp_path / "out", generated.assign(product_id="no-such-product"), generator_market[0])
    assert not (tmp_path / "out" / "elements.parquet").exists()


def test_a_judge_can_rerank_the_proposals(generator_market):
    market = generator_market[0]
    # untrained: many different short prompts to choose from
    policy = PromptTrainer(dataclasses.replace(CONFIG.prompt, max_tokens=5)).build(market)

    def prefers_short(product_ids, prompts_a, prompts_b):
        a, b = (np.array([len(prompt_key(p)) for p in prompts]) for prompts in (prompts_a, prompts_b))
        return 1.0 / (1.0 + np.exp(a - b))

    baseline = dict.fromkeys(market.products["product_id"], "warm beige studio, soft shadow")
    plain = propose_backgrounds(policy, market, per_product=2, samples=16, temperature=1.5)
    judged = propose_backgrounds(policy, market, per_product=2, samples=16, temperature=1.5,
                                 judge=prefers_short, baseline=baseline, judged=12)
    length = lambda frame: frame["value"].map(lambda p: len(prompt_key(p))).mean()  # noqa: E731
    assert len(judged) == len(plain) == 2 * len(market.products)
    assert length(judged) < length(plain)


def test_best_combinations_use_elements_each_product_may_use(generator_market):
    market = generator_market[0]
    best = current_best_combinations(market)
    assert set(best) == set(market.products["product_id"])
    for pid, combo in best.items():
        for slot, element_id in zip(market.config.slots, combo):
            assert element_id in set(market.usable_elements(pid, slot)["element_id"])
    past = {(p, tuple(c)) for p, c in zip(market.creatives["product_id"], market.creatives["elements"])}
    assert all((p, tuple(c)) in past for p, c in best.items())


def test_build_judge_passes_callables_through_and_refuses_other_things(generator_market):
    market = generator_market[0]
    judge, baseline = build_judge(market, prefers_marble, CONFIG)
    assert judge is prefers_marble and baseline is None
    with pytest.raises(InputError, match="judge"):
        build_judge(market, 42, CONFIG)


def test_text_match_prefers_a_prompt_naming_the_product(generator_market):
    market = generator_market[0]
    products = market.products
    pid, title = products["product_id"].iloc[0], products["title"].iloc[0]
    prompts = [f"{title} studio", "plain grey"]
    similarity = prompt_product_similarity(market, [pid, pid], prompts, backbone="tiny")
    assert similarity.shape == (2, len(products))
    assert similarity[0, 0] > similarity[1, 0]
    assert text_background_match(market, [pid], [prompts[0]], backbone="tiny").tolist() == [True]


# -- the simulator's truth, extended to new backgrounds ----------------------------------------------


def test_truth_extension_leaves_known_numbers_unchanged(generator_market, generated):
    market, truth = generator_market
    grown = truth.with_elements(generated)
    attributes = truth.creatives.set_index("creative_id")
    names = [t.attribute for t in truth.model.click_terms]
    for cid, pid, combo in zip(market.creatives["creative_id"], market.creatives["product_id"],
                               market.creatives["elements"]):
        attrs = {k: float(attributes.loc[cid, k]) for k in names}
        assert grown.model.ctr(pid, list(combo), attrs) == truth.model.ctr(pid, list(combo), attrs)
    for element_id, prompt in truth.simulator_backgrounds().items():
        parameters = grown.background_parameters(prompt.upper())
        assert parameters.latent == truth.model.background_latent[element_id]
        assert parameters.effect == truth.model.element_effect[element_id]
    assert len(grown.elements) == len(truth.elements) + len(generated)
    assert len(truth.model.element_slot) == len(truth.elements)  # the original is untouched


@pytest.fixture(scope="module")
def legacy_truth(tmp_path_factory):
    """The legacy world's truth, whose new prompts borrow the latents of the backgrounds sharing their words."""
    config = SimulatorConfig(seed=5, world="legacy", n_products=3, n_impressions=300, creatives_per_product=2,
                             canvas=(256, 256), photo_size=160)
    return GroundTruth.load(simulate_market(config, tmp_path_factory.mktemp("legacy") / "market").truth_dir)


def test_new_prompts_take_the_scene_their_words_name(generator_market):
    truth = generator_market[1]
    beach = truth.background_parameters("a quiet seaside cove, #88ccee")
    assert beach.latent == scene_vector("seaside") and beach.effect == 0.0
    pid = truth.products["product_id"].iloc[0]
    assert truth.background_relevance(pid, "#88ccee") == 0.0 and truth.background_match(pid, "#88ccee") is False
    for element_id, prompt in truth.simulator_backgrounds().items():
        assert truth.background_parameters(prompt).latent == truth.model.background_latent[element_id]


def test_new_prompts_borrow_the_latents_of_the_backgrounds_sharing_their_words(legacy_truth):
    truth = legacy_truth
    known = {prompt: element_id for element_id, prompt in truth.simulator_backgrounds().items()}
    marble = known[BACKGROUNDS[2]]  # "pastel pink marble", the only one with these words
    assert truth.background_parameters("pink marble").latent == pytest.approx(truth.model.background_latent[marble])
    nothing = truth.background_parameters("teal")
    assert nothing.latent == [0.0, 0.0, 0.0] and nothing.effect == 0.0
    pid = truth.products["product_id"].iloc[0]
    assert truth.background_match(pid, "teal") is False
    relevance = truth.background_relevance(pid, BACKGROUNDS[2])
    assert truth.background_match(pid, BACKGROUNDS[2]) == (relevance > 0)


def test_true_ctr_of_a_creative_with_a_new_background(generator_market, generated):
    market, truth = generator_market
    grown = truth.with_elements(generated)
    row = generated.iloc[0]
    combo = list(current_best_combinations(market)[row["product_id"]])
    combo[market.config.slots.index("background")] = row["element_id"]
    spec_market = dataclasses.replace(market, elements=pd.concat([market.elements, generated], ignore_index=True))
    ctr = grown.ctr_of_combination(MarketRenderer(spec_market), row["product_id"], combo)
    assert 0.0 < ctr < 1.0
    with pytest.raises(KeyError):
        truth.ctr_of_combination(MarketRenderer(spec_market), row["product_id"], combo)
    with pytest.raises(InputError, match="background"):
        truth.with_elements(generated.assign(slot="title"))
