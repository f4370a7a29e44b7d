from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from adcraft.errors import InputError
from adcraft.generate.prompt import (
    BackgroundPromptModel,
    PromptModelConfig,
    PromptTrainer,
    PromptVocabulary,
    background_prompts,
    detokenize,
    is_word_prompt,
    logged_backgrounds,
    normalize_prompt,
    prompt_key,
    renderable_colour_words,
    repeats_a_word,
    tokenize,
)
from adcraft.render import parse_color

TINY = PromptModelConfig(text_backbone="tiny", image_backbone="tiny", epochs=40, hidden=64, seed=0)


@pytest.fixture(scope="module")
def trainer() -> PromptTrainer:
    return PromptTrainer(TINY)


@pytest.fixture(scope="module")
def fitted(generator_market, trainer) -> BackgroundPromptModel:
    return trainer.fit(generator_market[0])


def test_vocabulary_round_trip():
    prompts = ["Warm beige studio, soft shadow", "#1E3A5F to #f0c27b gradient", "sage green paper"]
    vocab = PromptVocabulary.from_prompts(prompts, ["teal"])
    for prompt in prompts:
        assert vocab.decode(vocab.encode(prompt)) == normalize_prompt(prompt)
    assert vocab.decode(vocab.encode("teal paper")) == "teal paper"
    assert normalize_prompt(prompts[0]) == "warm beige studio, soft shadow"
    assert tokenize(prompts[1]) == ["#1e3a5f", "to", "#f0c27b", "gradient"]
    assert PromptVocabulary.from_json(vocab.to_json()).tokens == vocab.tokens
    with pytest.raises(InputError, match="outside the prompt vocabulary"):
        vocab.encode("purple haze")


def test_detokenize_writes_the_canonical_spelling():
    assert detokenize([",", "soft", ",", ",", "shadow", ","]) == "soft, shadow"
    assert prompt_key("Warm beige studio soft shadow") == prompt_key("warm beige studio, soft shadow")
    assert repeats_a_word("sage sage, soft shadow") and not repeats_a_word("sage green paper, soft shadow")


def test_word_prompts_exclude_bare_hex_colours(generator_market):
    assert not is_word_prompt("#1e3a5f") and not is_word_prompt("#ABC")
    assert is_word_prompt("#1e3a5f to #f0c27b gradient") and is_word_prompt("mint green gradient")
    prompts = background_prompts(generator_market[0])
    assert prompts and all(is_word_prompt(p) for p in prompts)


def test_colour_words_are_drawn_by_the_renderer():
    words = renderable_colour_words()
    assert len(words) >= 20
    assert all(parse_color(word) is not None for word in words)


def test_logged_backgrounds_are_weighted_per_product(generator_market):
    market = generator_market[0]
    data = logged_backgrounds(market)
    totals = data.groupby("product_id")["weight"].sum()
    np.testing.assert_allclose(totals.to_numpy(), 1.0)
    assert set(totals.index) == set(market.products["product_id"])
    # a product without past creatives learns from every word prompt it may use
    lonely = market.products["product_id"].iloc[0]
    kept = market.creatives["product_id"] != lonely
    creatives = market.creatives[kept]
    impressions = market.impressions[market.impressions["creative_id"].isin(creatives["creative_id"])]
    data = logged_backgrounds(dataclasses.replace(market, creatives=creatives, impressions=impressions))
    own = data[data["product_id"] == lonely]
    assert sorted(own["prompt"]) == background_prompts(market)
    np.testing.assert_allclose(own["weight"], 1.0 / len(own))


def test_supervised_fit_raises_the_log_prob_of_logged_prompts(generator_market, trainer, fitted):
    market = generator_market[0]
    data = logged_backgrounds(market)
    untrained = trainer.build(market)
    before = untrained.log_prob(data["product_id"].tolist(), data["prompt"].tolist())
    after = fitted.log_prob(data["product_id"].tolist(), data["prompt"].tolist())
    assert float(data["weight"] @ after) > float(data["weight"] @ before) + 10.0
    assert fitted.history[-1] < fitted.history[0]
    # each product's most-shown background is also its most probable one
    top = data.sort_values("weight").groupby("product_id").tail(1)
    best = fitted.beam_search(top["product_id"].tolist(), width=1)
    agree = np.mean([found[0][0] == prompt for found, prompt in zip(best, top["prompt"])])
    assert agree >= 0.75


def test_beam_scores_are_the_log_probs_and_greedy_is_width_one(fitted):
    products = fitted.product_ids[:3]
    beams = fitted.beam_search(products, width=4)
    for pid, found in zip(products, beams):
        scores = [s for _, s in found]
        assert scores == sorted(scores, reverse=True)
        np.testing.assert_allclose(fitted.log_prob([pid] * len(found), [p for p, _ in found]), scores, atol=1e-4)
    assert fitted.greedy(products) == [found[0][0] for found in fitted.beam_search(products, width=1)]


def test_samples_are_non_empty_and_respect_max_tokens(generator_market):
    config = dataclasses.replace(TINY, max_tokens=3)
    model = PromptTrainer(config).build(generator_market[0])  # untrained: near-uniform next tokens
    samples = model.sample(model.product_ids[:2], n=20, temperature=2.0, seed=1)
    flat = [s for row in samples for s in row]
    assert all(0 < len(prompt_key(s)) and len(tokenize(s)) <= 3 for s in flat)
    assert len(set(flat)) > 10


def test_sampling_is_seeded(fitted):
    products = fitted.product_ids[:2]
    assert fitted.sample(products, n=5, seed=3) == fitted.sample(products, n=5, seed=3)


def test_save_and_load_give_the_same_model(fitted, tmp_path):
    fitted.save(tmp_path / "prompt")
    loaded = BackgroundPromptModel.load(tmp_path / "prompt")
    products = fitted.product_ids
    prompts = [found[0][0] for found in fitted.beam_search(products, width=1)]
    np.testing.assert_allclose(loaded.log_prob(products, prompts), fitted.log_prob(products, prompts), rtol=1e-6)
    assert loaded.vocab.tokens == fitted.vocab.tokens and loaded.config == fitted.config


def test_bad_settings_are_refused():
    with pytest.raises(InputError, match="image_backbone"):
        PromptModelConfig(image_backbone="resnet")
    with pytest.raises(InputError, match="hidden"):
        PromptModelConfig(hidden=0)
