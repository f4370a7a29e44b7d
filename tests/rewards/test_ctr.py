from __future__ import annotations

import numpy as np
import pytest

from adcraft.learning.training import TrainConfig, binomial_loss
from adcraft.market.click_log import click_log, time_split
from adcraft.rewards.ctr import CTRConfig, CTRTrainer, PointwiseCTRModel
from adcraft.rewards.encoding import EncodingConfig

FAST = CTRConfig(
    encoding=EncodingConfig(text_backbone="tiny", image_backbone="none", embedding_dim=8),
    train=TrainConfig(epochs=25, batch_size=256, learning_rate=0.02, patience=4),
)


@pytest.fixture(scope="module")
def trained(logged_market):
    market, _ = logged_market
    return CTRTrainer(FAST).fit(market)


def test_binomial_loss_equals_mean_log_loss_of_raw_impressions():
    import torch

    logits = torch.tensor([0.3, -1.2])
    clicks, trials = torch.tensor([2.0, 0.0]), torch.tensor([5.0, 3.0])
    p = torch.sigmoid(logits)
    raw = -(2 * torch.log(p[0]) + 3 * torch.log(1 - p[0]) + 3 * torch.log(1 - p[1])) / 8
    assert torch.isclose(binomial_loss(logits, clicks, trials), raw)


def test_training_improves_on_a_constant_ctr(trained, logged_market):
    market, _ = logged_market
    history = trained.history
    assert history.train_loss[-1] < history.train_loss[0]
    _, valid = time_split(click_log(market), FAST.split)
    rate = valid["clicks"].sum() / valid["trials"].sum()
    constant = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    assert min(history.valid_loss) < constant


def test_predicted_creative_ctr_tracks_the_truth(trained, logged_market):
    market, truth = logged_market
    scores = trained.score_market(market).merge(truth.creatives[["creative_id", "true_ctr"]], on="creative_id")
    ranks = scores[["predicted_ctr", "true_ctr"]].rank()
    assert np.corrcoef(ranks["predicted_ctr"], ranks["true_ctr"])[0, 1] > 0.5
    assert scores["predicted_ctr"].between(0, 1).all()


def test_save_and_load_give_identical_predictions(trained, logged_market, tmp_path):
    market, _ = logged_market
    trained.save(tmp_path / "model")
    loaded = PointwiseCTRModel.load(tmp_path / "model")
    a, b = trained.score_market(market), loaded.score_market(market)
    np.testing.assert_array_equal(a["predicted_ctr"].to_numpy(), b["predicted_ctr"].to_numpy())
    assert loaded.history.best_epoch == trained.history.best_epoch


def test_context_average_is_a_mixture_of_context_predictions(trained, logged_market):
    market, _ = logged_market
    row = market.creatives.iloc[0]
    per = [trained.predict([row.product_id], [row.elements], [c])[0] for c, _ in trained.contexts]
    avg = trained.predict([row.product_id], [row.elements])[0]
    assert avg == pytest.approx(sum(w * p for (_, w), p in zip(trained.contexts, per)))


def test_unseen_elements_and_products_still_predict(trained, logged_market):
    market, _ = logged_market
    combo = list(market.creatives.iloc[0]["elements"])
    combo[0] = "never-seen"
    p = trained.predict(["unknown-product"], [combo])
    assert p.shape == (1,) and 0 < p[0] < 1


def test_image_features_are_used_when_configured(logged_market):
    market, _ = logged_market
    config = CTRConfig(
        encoding=EncodingConfig(text_backbone="tiny", image_backbone="tiny", embedding_dim=8),
        train=TrainConfig(epochs=2, batch_size=512),
    )
    model = CTRTrainer(config).fit(market)
    assert model.mean_image is not None and model.network.tower.image_proj is not None
    assert model.score_market(market)["predicted_ctr"].notna().all()
