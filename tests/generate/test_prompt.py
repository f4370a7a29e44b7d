from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adcraft.errors import InputError
from adcraft.generate.prompt import (
    BackgroundPromptModel,
    PromptExamples,
    PromptModelConfig,
    PromptTrainer,
    PromptVocabulary,
    background_prompts,
    detokenize,
    fit_prompts,
    is_word_prompt,
    logged_backgrounds,
    normalize_prompt,
    pad_targets,
    prompt_key,
    recoloured,
    renderable_colour_words,
    repeats_a_word,
    tokenize,
)
from adcraft.learning.checkpoint import position, read_state
from adcraft.learning.training import CHECKPOINT_FILE
from adcraft.market import load_market
from adcraft.render import parse_color
from tests.killed_processes import Interrupted, kill_when, stop_after

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


def test_a_prompt_fit_equals_the_hand_written_loop_it_replaced(generator_market):
    """``fit_prompts`` runs through ``fit``; with the same shuffles it ends with the same bits as the loop it
    had of its own: Adam, a reshuffle per epoch, fresh recoloured copies every epoch."""
    market = generator_market[0]
    config = dataclasses.replace(TINY, epochs=3, batch_size=8)
    examples = PromptExamples.of(logged_backgrounds(market))
    fitted = PromptTrainer(config).build(market)
    history = fit_prompts(fitted, examples, config)
    model = PromptTrainer(config).build(market)
    network, base = model.network, examples.weights
    rows, sequences = model.conditions.rows(examples.product_ids), model.encode(examples.prompts)
    colours = [w for w in renderable_colour_words() if w in model.vocab.tokens]
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    generator, rng = torch.Generator().manual_seed(config.seed), np.random.default_rng(config.seed)
    losses = []
    for _ in range(config.epochs):
        epoch_rows, epoch_sequences, weights = list(rows), list(sequences), base.copy()
        for i, prompt in enumerate(examples.prompts):
            variant = recoloured(prompt, colours, rng)
            if variant is not None:
                epoch_rows.append(rows[i])
                epoch_sequences.append(model.vocab.encode(variant))
                weights = np.append(weights, config.colour_variants * base[i])
                weights[i] = (1.0 - config.colour_variants) * base[i]
        text, image = (torch.from_numpy(f[epoch_rows]) for f in (model.conditions.text, model.conditions.image))
        targets, w = pad_targets(epoch_sequences), torch.as_tensor(weights, dtype=torch.float32)
        order, total = torch.randperm(len(targets), generator=generator), 0.0
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            loss = -(w[index] * network.log_prob(text[index], image[index], targets[index])).sum() / w[index].sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * float(w[index].sum())
        losses.append(total / float(w.sum()))
    assert len(examples) > config.batch_size  # several batches an epoch
    assert history.train_loss == losses
    assert all(torch.equal(v, network.state_dict()[k]) for k, v in fitted.network.state_dict().items())


def test_early_stopping_keeps_the_weights_of_the_best_validation_epoch(generator_market):
    market = generator_market[0]
    config = dataclasses.replace(TINY, epochs=60, learning_rate=0.03, batch_size=16, patience=3)
    train, valid = PromptExamples.of(logged_backgrounds(market)).split(0.4, config.seed)
    model = PromptTrainer(config).build(market)
    snapshots = []
    history = fit_prompts(model, train, config, valid=valid,
                          on_epoch=lambda epoch: snapshots.append(copy.deepcopy(model.network.state_dict())))
    ran = len(history.valid_loss)
    assert ran < config.epochs  # it stopped early ...
    best = history.best_epoch
    assert best == int(np.argmin(history.valid_loss)) == ran - 1 - config.patience  # ... patience epochs after
    assert history.valid_loss[-1] > history.valid_loss[best]
    kept = model.network.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in snapshots[best].items())  # the best epoch's weights ...
    assert not all(torch.equal(kept[k], v) for k, v in snapshots[-1].items())  # ... not the last epoch's
    # validation examples are never trained on: a prompt model fitted to them alone would differ
    assert set(zip(train.product_ids, train.prompts)).isdisjoint(zip(valid.product_ids, valid.prompts))


def test_a_validation_share_holds_out_logged_backgrounds(generator_market):
    examples = PromptExamples.of(logged_backgrounds(generator_market[0]))
    train, valid = examples.split(0.25, seed=0)
    assert len(valid) == round(0.25 * len(examples)) and len(train) + len(valid) == len(examples)
    assert examples.split(0.0, seed=0) == (examples, None)
    with pytest.raises(InputError, match="validation_share"):
        PromptModelConfig(validation_share=1.0)


def same_prompt_models(a: BackgroundPromptModel, b: BackgroundPromptModel) -> bool:
    sa, sb = a.network.state_dict(), b.network.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa) and a.history == b.history


RESUMED = dataclasses.replace(TINY, epochs=6, batch_size=16)


@pytest.fixture(scope="module")
def uninterrupted(generator_market) -> BackgroundPromptModel:
    return PromptTrainer(RESUMED).fit(generator_market[0])


@pytest.mark.parametrize("epoch", [0, 3])
def test_a_prompt_fit_resumed_after_any_epoch_ends_with_the_same_bits(generator_market, uninterrupted, tmp_path,
                                                                       epoch):
    market = generator_market[0]
    with pytest.raises(Interrupted):
        PromptTrainer(RESUMED).fit(market, checkpoint=tmp_path, on_epoch=stop_after(epoch))
    assert position(tmp_path / CHECKPOINT_FILE) == f"epoch {epoch + 1} of {RESUMED.epochs}"
    resumed = PromptTrainer(RESUMED).fit(market, checkpoint=tmp_path)  # the recoloured copies drawn again
    assert same_prompt_models(resumed, uninterrupted)


KILLED_FIT = """
import sys
from pathlib import Path
from adcraft.generate.prompt import PromptModelConfig, PromptTrainer
from adcraft.market import load_market
config = PromptModelConfig(text_backbone="tiny", image_backbone="tiny", hidden=64, epochs=300, batch_size=16)
PromptTrainer(config).fit(load_market(sys.argv[1]), checkpoint=Path(sys.argv[2])).save(Path(sys.argv[3]))
"""


def epochs_done(path: Path) -> int:
    state = read_state(path) if path.is_file() else None
    return 0 if state is None else int(state[1]["epochs"])


@pytest.mark.slow
def test_a_prompt_fit_killed_twice_resumes_to_the_same_model(tiny_market_dir, tmp_path):
    checkpoint, killed, whole = tmp_path / "checkpoint", tmp_path / "killed", tmp_path / "whole"
    command = [sys.executable, "-c", KILLED_FIT, str(tiny_market_dir), str(checkpoint), str(killed)]
    kill_when(command, lambda: epochs_done(checkpoint / CHECKPOINT_FILE) >= 2)
    first = epochs_done(checkpoint / CHECKPOINT_FILE)
    kill_when(command, lambda: epochs_done(checkpoint / CHECKPOINT_FILE) >= first + 3)
    assert not killed.exists()
    subprocess.run(command, check=True, capture_output=True)
    config = PromptModelConfig(text_backbone="tiny", image_backbone="tiny", hidden=64, epochs=300, batch_size=16)
    PromptTrainer(config).fit(load_market(tiny_market_dir)).save(whole)
    assert (killed / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
