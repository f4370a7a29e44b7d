from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from adcraft.errors import InputError
from adcraft.learning.training import TrainConfig
from adcraft.market import load_market
from adcraft.market.click_log import click_log, time_split
from adcraft.rewards.encoding import EncodingConfig
from adcraft.rewards.mil import (
    MILConfig,
    MILModel,
    MILTrainer,
    compare_poolings,
    noisy_or_logit,
    shapley_values,
)
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market

ENCODING = EncodingConfig(text_backbone="tiny", embedding_dim=8)
FAST = MILConfig(encoding=ENCODING)
SHORT = TrainConfig(epochs=3, batch_size=256, learning_rate=0.02)


@pytest.fixture(scope="module")
def market_and_truth(tmp_path_factory):
    """16 products x 8 past creatives (128 bags) and 150k impressions: enough to identify element effects.

    The main-effects world: its element effects are the whole truth, so ranking them is a fair ask."""
    root = tmp_path_factory.mktemp("mil")
    config = SimulatorConfig(
        seed=4, world="main_effects", n_products=16, n_impressions=150_000, creatives_per_product=8,
        canvas=(128, 128), photo_size=96,
    )
    sim = simulate_market(config, root / "market")
    return load_market(sim.market_dir), GroundTruth.load(sim.truth_dir)


@pytest.fixture(scope="module")
def market(market_and_truth):
    return market_and_truth[0]


@pytest.fixture(scope="module")
def trained(market, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADCRAFT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return MILTrainer(FAST).fit(market)


def constant_log_loss(market) -> float:
    _, valid = time_split(click_log(market), FAST.split)
    rate = valid["clicks"].sum() / valid["trials"].sum()
    return float(-(rate * np.log(rate) + (1 - rate) * np.log(1 - rate)))


def test_training_lowers_the_loss_and_beats_a_constant_ctr(trained, market):
    history = trained.history
    assert history.train_loss[-1] < history.train_loss[0]
    assert trained.validation_log_loss == min(history.valid_loss)
    assert trained.validation_log_loss < constant_log_loss(market)


def test_sum_attributions_are_scores_plus_half_interactions_and_add_up_to_the_logit(trained, market):
    context = trained.contexts[0][0]
    for _, row in market.creatives.head(5).iterrows():
        split = trained.decompose(row.product_id, row.elements, context)
        logit = math.log(p := trained.predict([row.product_id], [row.elements], [context])[0]) - math.log(1 - p)
        assert split.baseline + sum(split.elements.values()) == pytest.approx(split.logit, abs=1e-5)
        assert split.logit == pytest.approx(logit, abs=1e-4)
        parts = trained.network.parts(trained._batch([row.product_id], [row.elements], [context]))
        expected = parts.scores[0] + 0.5 * parts.pairs[0].sum(dim=1)
        got = torch.tensor([split.elements[e] for e in row.elements])
        assert torch.allclose(got, expected.detach(), atol=1e-5)
    assert trained.attributions(row.product_id, row.elements, context) == split.elements


def test_element_effects_are_one_per_element_and_centred_within_slots(trained, market):
    effects = trained.element_effects()
    used = {e for _, combo in trained.bags for e in combo}
    assert effects.index.is_unique and set(effects.index) == used
    slot = market.elements.set_index("element_id")["slot"]
    per_slot = effects.groupby(slot[effects.index].to_numpy()).mean()
    assert np.allclose(per_slot.to_numpy(), 0.0, atol=1e-6)
    assert effects.abs().max() > 0.05


def test_learned_element_effects_rank_like_the_true_ones(trained, market_and_truth):
    _, truth = market_and_truth
    effects = trained.element_effects()
    slot = pd.Series(truth.model.element_slot)[effects.index]
    true = pd.Series(truth.model.element_effect)[effects.index]
    true = true - true.groupby(slot).transform("mean")
    shown = (slot != "title").to_numpy()  # titles are per product, so confounded with the product bias
    rho = effects[shown].rank().corr(true[shown].rank())
    assert rho > 0.5, rho


def test_save_and_load_give_identical_predictions(trained, market, tmp_path):
    trained.save(tmp_path / "mil")
    loaded = MILModel.load(tmp_path / "mil")
    products, combos = market.creatives["product_id"].tolist(), market.creatives["elements"].tolist()
    np.testing.assert_array_equal(trained.predict(products, combos), loaded.predict(products, combos))
    pd.testing.assert_series_equal(trained.element_effects(), loaded.element_effects())
    assert loaded.validation_log_loss == trained.validation_log_loss and loaded.config == trained.config


def test_context_average_is_the_traffic_mixture_of_context_predictions(trained, market):
    row = market.creatives.iloc[0]
    per_context = [trained.predict([row.product_id], [row.elements], [c])[0] for c, _ in trained.contexts]
    assert len(set(per_context)) > 1
    mixture = sum(w * p for (_, w), p in zip(trained.contexts, per_context))
    assert trained.predict([row.product_id], [row.elements])[0] == pytest.approx(mixture)
    assert sum(w for _, w in trained.contexts) == pytest.approx(1.0)


def test_unseen_elements_and_products_fall_back_without_crashing(trained, market):
    combo = list(market.creatives.iloc[0]["elements"])
    combo[1] = "never-seen-highlight"
    p = trained.predict(["never-seen-product", market.creatives.iloc[0]["product_id"]], [combo, combo])
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))
    assert set(trained.attributions("never-seen-product", combo)) == set(combo)


@pytest.mark.parametrize("pooling", ["attention", "noisy_or"])
def test_other_poolings_train_and_their_attributions_add_up(market, pooling):
    model = MILTrainer(dataclasses.replace(FAST, pooling=pooling, train=SHORT)).fit(market)
    assert all(math.isfinite(v) for v in model.history.train_loss + model.history.valid_loss)
    row = market.creatives.iloc[3]
    split = model.decompose(row.product_id, row.elements)
    assert split.baseline + sum(split.elements.values()) == pytest.approx(split.logit, abs=1e-5)
    assert np.isfinite(model.element_effects().to_numpy()).all()


def test_per_element_baseline_gives_each_element_one_effect_everywhere(market):
    model = MILTrainer(MILConfig.per_element(encoding=ENCODING, train=SHORT)).fit(market)
    a, b = market.creatives.iloc[0], market.creatives.iloc[-1]
    shared = a.elements[-1]
    other = [*b.elements[:-1], shared]
    in_a = model.attributions(a.product_id, a.elements, model.contexts[0][0])[shared]
    in_b = model.attributions(b.product_id, other, model.contexts[-1][0])[shared]
    assert in_a == pytest.approx(in_b)


def test_compare_poolings_reports_each_pooling(market):
    table = compare_poolings(market, dataclasses.replace(FAST, train=TrainConfig(epochs=2)), ("sum", "noisy_or"))
    assert table["pooling"].tolist() == ["sum", "noisy_or"]
    assert np.isfinite(table["validation_log_loss"]).all()
    assert all(isinstance(m, MILModel) for m in table["model"])


def test_markets_without_logs_or_clicks_are_refused(market):
    with pytest.raises(InputError, match="no logs"):
        MILTrainer(FAST).fit(dataclasses.replace(market, impressions=None, creative_stats=None))
    silent = market.impressions.assign(click=np.int8(0))
    with pytest.raises(InputError, match="no clicks"):
        MILTrainer(FAST).fit(dataclasses.replace(market, impressions=silent))


def test_bad_settings_are_refused():
    with pytest.raises(InputError, match="pooling"):
        MILConfig(pooling="max")
    with pytest.raises(InputError, match="image_backbone"):
        MILConfig(encoding=EncodingConfig(image_backbone="tiny"))


def test_noisy_or_logit_matches_its_probability():
    z = torch.tensor([[-3.0, -1.0, 0.5], [-40.0, -35.0, -30.0]])
    p = 1 - torch.prod(1 - torch.sigmoid(z.double()), dim=1)
    assert torch.allclose(torch.sigmoid(noisy_or_logit(z)).double(), p, rtol=1e-4)


@pytest.mark.parametrize("players", [4, 12])
def test_shapley_values_of_a_pairwise_game(players):
    """v(T) = sum_{i in T} a_i + sum_{i<j in T} c_ij has Shapley values a_i + c_i./2 (exact or sampled)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(2, players, generator=generator)
    c = torch.randn(2, players, players, generator=generator)
    c = (c + c.transpose(1, 2)) * (1 - torch.eye(players))

    def value(on: torch.Tensor) -> torch.Tensor:
        return on @ a.T + 0.5 * torch.einsum("kj,njl,kl->kn", on, c, on)

    values = shapley_values(lambda on: value(on).T, players)
    assert torch.allclose(values, a + 0.5 * c.sum(dim=2), atol=1e-4)


def test_score_market_covers_every_past_creative(trained, market):
    scores = trained.score_market(market)
    assert list(scores.columns) == ["creative_id", "predicted_ctr"]
    assert sorted(scores["creative_id"]) == sorted(market.creatives["creative_id"])
    assert scores["predicted_ctr"].between(0, 1).all()


def test_changed_credit_lists_only_the_changed_slots_largest_first(trained, market):
    first, second = market.creatives.iloc[0], market.creatives.iloc[1]
    combo = list(first.elements)
    assert trained.changed_credit(first.product_id, combo, combo) == []
    everything = trained.changed_credit(first.product_id, combo, None)
    assert [k for k, _, _ in sorted(everything)] == list(range(len(combo)))
    credit = trained.attributions(first.product_id, combo)
    assert all(value == pytest.approx(credit[element]) for _, element, value in everything)
    assert [abs(v) for _, _, v in everything] == sorted((abs(v) for _, _, v in everything), reverse=True)
    current = list(second.elements)
    current[0] = combo[0]
    changed = trained.changed_credit(first.product_id, combo, current)
    assert {k for k, _, _ in changed} == {k for k in range(len(combo)) if combo[k] != current[k]}
