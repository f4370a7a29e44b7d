"""UA-InfoNCE: the loss against a direct computation, and the encoder trained on a tiny market."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from adcraft.configuration import from_mapping
from adcraft.errors import InputError
from adcraft.features import ImageEncoderConfig, TextEncoderConfig
from adcraft.rewards.contrastive import (
    ContrastiveConfig,
    ContrastiveModel,
    ContrastiveTrainConfig,
    ContrastiveTrainer,
    fit_demand_utility,
    retrieval_recall,
    select_alpha,
    training_pairs,
    ua_infonce_directions,
    ua_infonce_loss,
)
from adcraft.rewards.utility import UtilityConfig


def tiny_config(**changes) -> ContrastiveConfig:
    """Tiny towers, h fitted on logit CTR (the fixture's 50 creatives; its 10 demand rows are too few)."""
    base = ContrastiveConfig(
        image=ImageEncoderConfig(backbone="tiny"),
        text=TextEncoderConfig(backbone="tiny"),
        demand=UtilityConfig(target="logit_ctr"),
        validation_share=0.3,
        train=ContrastiveTrainConfig(epochs=60, patience=15),
    )
    return dataclasses.replace(base, **changes)


def random_batch(n: int = 6, d: int = 5, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(n, d, generator=generator, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(n, d, generator=generator, dtype=torch.float64), dim=-1)
    utility = torch.randn(n, generator=generator, dtype=torch.float64)
    return image, text, utility


def loop_reference(image, text, utility, alpha, beta, scale) -> float:
    """The symmetric UA-InfoNCE loss written out with Python loops and math.log / math.exp."""
    n = image.shape[0]

    def logit(i: int, j: int) -> float:  # image i, text j
        cosine = sum(float(image[i, k]) * float(text[j, k]) for k in range(image.shape[1]))
        return scale * (alpha * float(utility[i]) + beta * cosine)

    image_to_text = -sum(
        logit(i, i) - math.log(sum(math.exp(logit(i, j)) for j in range(n))) for i in range(n)
    ) / n
    text_to_image = -sum(
        logit(j, j) - math.log(sum(math.exp(logit(i, j)) for i in range(n))) for j in range(n)
    ) / n
    return (image_to_text + text_to_image) / 2


# ------------------------------------------------------------------------------------ the loss


@pytest.mark.parametrize("alpha, beta, scale", [(0.0, 1.0, 14.3), (0.5, 1.0, 14.3), (1.0, 0.7, 3.0), (2.0, 1.0, 50.0)])
def test_loss_equals_a_loop_reference(alpha, beta, scale) -> None:
    for seed in range(3):
        image, text, utility = random_batch(seed=seed)
        loss = ua_infonce_loss(image, text, utility, alpha, beta, torch.tensor(scale, dtype=torch.float64))
        assert float(loss) == pytest.approx(loop_reference(image, text, utility, alpha, beta, scale), rel=1e-12)


def test_alpha_zero_is_standard_infonce_exactly() -> None:
    image, text, utility = (x.float() for x in random_batch(n=8, d=16, seed=3))
    scale = torch.tensor(1 / 0.07)
    logits = scale * (image @ text.T)
    targets = torch.arange(8)
    standard = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    assert torch.equal(ua_infonce_loss(image, text, utility * 100, 0.0, 1.0, scale), standard)


def test_utility_cancels_image_to_text_and_acts_as_a_prior_text_to_image() -> None:
    image, text, utility = random_batch(seed=4)
    base_i2t, base_t2i = ua_infonce_directions(image, text, utility, 1.0, 1.0, 10.0)
    other = utility + torch.linspace(-2.0, 2.0, len(utility), dtype=torch.float64)
    i2t, t2i = ua_infonce_directions(image, text, other, 1.0, 1.0, 10.0)
    assert float(i2t) == pytest.approx(float(base_i2t), rel=1e-12)
    assert abs(float(t2i) - float(base_t2i)) > 1e-3
    shifted = ua_infonce_directions(image, text, utility + 7.0, 1.0, 1.0, 10.0)
    assert [float(x) for x in shifted] == pytest.approx([float(base_i2t), float(base_t2i)], rel=1e-12)
    # a higher prior on image 0 makes text 0's softmax put more mass on its own image 0
    boosted = utility.clone()
    boosted[0] += 3.0
    logits = lambda h: 10.0 * (h[:, None] + image @ text.T)  # noqa: E731
    assert torch.softmax(logits(boosted)[:, 0], 0)[0] > torch.softmax(logits(utility)[:, 0], 0)[0]


def test_directions_swap_when_images_and_texts_swap_without_utility() -> None:
    image, text, utility = random_batch(seed=5)
    i2t, t2i = ua_infonce_directions(image, text, utility, 0.0, 1.0, 10.0)
    swapped_i2t, swapped_t2i = ua_infonce_directions(text, image, utility, 0.0, 1.0, 10.0)
    assert float(swapped_i2t) == pytest.approx(float(t2i), rel=1e-12)
    assert float(swapped_t2i) == pytest.approx(float(i2t), rel=1e-12)


def test_gradients_are_finite_even_at_extreme_scales() -> None:
    image, text, utility = random_batch(n=16, d=8, seed=6)
    image = image.clone().requires_grad_()
    text = text.clone().requires_grad_()
    utility = (utility * 50).requires_grad_()
    scale = torch.tensor(100.0, dtype=torch.float64, requires_grad=True)
    ua_infonce_loss(image, text, utility, 1.0, 1.0, scale).backward()
    for tensor in (image, text, utility, scale):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all()
    assert float(utility.grad.abs().sum()) > 0


def test_loss_refuses_mismatched_shapes() -> None:
    image, text, utility = random_batch()
    with pytest.raises(InputError, match="same shape"):
        ua_infonce_loss(image, text[:-1], utility, 1.0, 1.0, 10.0)
    with pytest.raises(InputError, match="one value per image"):
        ua_infonce_loss(image, text, utility[:-1], 1.0, 1.0, 10.0)


def test_retrieval_recall_on_a_hand_made_matrix() -> None:
    # images 0, 1 show text 0, image 2 shows text 1
    scores = np.array([[0.9, 0.5], [0.2, 0.4], [0.8, 0.0]])
    recall = retrieval_recall(scores, np.array([0, 0, 1]), ks=(1, 2))
    assert recall["i2t_r@1"] == pytest.approx(1 / 3)  # only image 0 ranks its own text first
    assert recall["i2t_r@2"] == pytest.approx(1.0)
    assert recall["t2i_r@1"] == pytest.approx(1 / 2)  # text 0 finds image 0 first; text 1 ranks image 2 third
    assert recall["t2i_r@2"] == pytest.approx(1 / 2)
    with pytest.raises(InputError):
        retrieval_recall(scores, np.array([0, 1]))


# ------------------------------------------------------------------------------------ config


def test_config_from_yaml_mapping_keeps_the_contrastive_train_defaults() -> None:
    config = from_mapping(ContrastiveConfig, {"alpha": 0.5, "utility": "head", "train": {"epochs": 3},
                                              "image": {"backbone": "tiny"}})
    assert config.train.epochs == 3 and config.train.batch_size == ContrastiveTrainConfig().batch_size
    assert config.image.backbone == "tiny" and config.alpha == 0.5
    with pytest.raises(InputError, match="utility"):
        ContrastiveConfig(utility="learned")
    with pytest.raises(InputError, match="cannot be computed"):
        ContrastiveConfig(demand=UtilityConfig(attributes=("brightness", "uniqueness")))
    with pytest.raises(InputError, match="alpha"):
        ContrastiveConfig(alpha=-1.0)
    with pytest.raises(InputError, match="retrieval_tolerance"):
        ContrastiveConfig(retrieval_tolerance=1.5)
    with pytest.raises(InputError, match="alpha_fractions"):
        ContrastiveConfig(alpha_fractions=(0.5, 2.0))
    with pytest.raises(InputError, match="alpha_fractions"):
        ContrastiveConfig(alpha_fractions=())
    assert from_mapping(ContrastiveConfig, {"retrieval_tolerance": None, "alpha_fractions": [0.5, 1.0]}
                        ).alpha_fractions == (0.5, 1.0)


# ------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def trained(logged_market):
    market, _ = logged_market
    return ContrastiveTrainer(tiny_config()).fit(market)


def training_images(market, model):
    pairs = training_pairs(market)
    pairs = pairs[~pairs["product_id"].isin(model.validation["products"])]
    return [market.open_image(path) for path in pairs["image"]], pairs


def test_training_lowers_the_validation_loss(trained) -> None:
    assert trained.validation["loss"] < trained.validation["loss_before"] - 0.05
    assert trained.history.best_epoch >= 0
    assert trained.validation["demand_target"] == "logit_ctr"
    assert 0 <= trained.validation["i2t_r@1"] <= trained.validation["i2t_r@5"] <= 1


def test_utility_is_standardised_over_the_training_images(logged_market, trained) -> None:
    market, _ = logged_market
    images, _ = training_images(market, trained)
    utility = trained.utility(images)
    assert abs(utility.mean()) < 1e-3
    assert utility.std() == pytest.approx(1.0, abs=1e-3)


def test_score_is_alpha_utility_plus_beta_consistency(logged_market, trained) -> None:
    market, _ = logged_market
    images, pairs = training_images(market, trained)
    parts = trained.score_parts(images[:6], pairs["text"].iloc[0])
    alpha, beta = trained.config.alpha, trained.config.beta
    assert alpha > 0
    np.testing.assert_allclose(parts.score, alpha * parts.utility + beta * parts.consistency, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(trained.consistency(images[:6], pairs["text"].iloc[0]), parts.consistency)
    assert np.all(np.abs(parts.consistency) <= 1 + 1e-6)
    texts = [pairs["text"].iloc[0], pairs["text"].iloc[-1]]
    matrix = trained.pair_scores(images[:3], texts)
    assert matrix.score.shape == (3, 2) and matrix.utility.shape == (3,)
    for j, text in enumerate(texts):
        np.testing.assert_allclose(matrix.score[:, j], trained.score(images[:3], text), atol=1e-6)
    np.testing.assert_array_equal(trained.score_matrix(images[:3], texts), matrix.score)
    embeddings = trained.encode_texts(["a", "b b"])
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("mode", ["fixed", "head"])
def test_save_and_load_give_identical_scores(logged_market, trained, tmp_path, mode) -> None:
    market, _ = logged_market
    model = trained if mode == "fixed" else ContrastiveTrainer(tiny_config(utility="head")).fit(market)
    images, pairs = training_images(market, model)
    model.save(tmp_path / "model")
    loaded = ContrastiveModel.load(tmp_path / "model")
    assert loaded.config == model.config
    text = pairs["text"].iloc[3]
    np.testing.assert_array_equal(loaded.score(images[:5], text), model.score(images[:5], text))
    np.testing.assert_array_equal(loaded.utility(images[:5]), model.utility(images[:5]))
    np.testing.assert_array_equal(loaded.demand_model.coefficients, model.demand_model.coefficients)
    assert loaded.validation == model.validation
    assert not list(tmp_path.glob("model/*.p*kl*"))


def test_select_alpha_keeps_the_largest_alpha_within_the_tolerance_in_both_directions() -> None:
    standard = {"i2t_r@5": 0.60, "t2i_r@5": 0.50}
    candidates = {
        0.02: {"i2t_r@5": 0.61, "t2i_r@5": 0.49},
        0.05: {"i2t_r@5": 0.58, "t2i_r@5": 0.52},  # 2 points below image->text: still within 0.02
        0.10: {"i2t_r@5": 0.65, "t2i_r@5": 0.47},  # 3 points below text->image
    }
    assert select_alpha(standard, candidates, 0.02) == (0.05, True)
    assert select_alpha(standard, candidates, 0.03) == (0.10, True)
    assert select_alpha(standard, candidates, 0.0) == (0.02, False)  # none within: the smallest
    assert select_alpha(standard, {0.1: {"i2t_r@5": 0.2, "t2i_r@5": 0.9}}, 0.05) == (0.1, False)
    with pytest.raises(InputError, match="at least one"):
        select_alpha(standard, {}, 0.02)


def test_alpha_is_chosen_on_the_validation_products(logged_market, trained) -> None:
    market, _ = logged_market
    search = trained.validation["alpha_search"]
    grid = [candidate["alpha"] for candidate in search["candidates"]]
    assert grid == pytest.approx([0.02, 0.05, 0.1])
    assert trained.config.alpha == search["alpha"] and trained.config.retrieval_tolerance is None
    expected = select_alpha(search["standard"], {c["alpha"]: c for c in search["candidates"]}, search["tolerance"])
    assert (search["alpha"], search["within_tolerance"]) == expected
    chosen = next(c for c in search["candidates"] if c["alpha"] == search["alpha"])
    assert {k: trained.validation[k] for k in ("i2t_r@5", "t2i_r@5")} == {k: chosen[k] for k in ("i2t_r@5", "t2i_r@5")}
    # The kept model is the one trained with that alpha alone, from the same seed.
    direct = ContrastiveTrainer(tiny_config(alpha=search["alpha"], retrieval_tolerance=None)).fit(market)
    assert "alpha_search" not in direct.validation and direct.config == trained.config
    images, pairs = training_images(market, trained)
    text = pairs["text"].iloc[0]
    np.testing.assert_array_equal(direct.score(images[:5], text), trained.score(images[:5], text))
    standard = ContrastiveTrainer(tiny_config(alpha=0.0)).fit(market)
    assert "alpha_search" not in standard.validation
    assert {k: standard.validation[k] for k in ("i2t_r@5", "t2i_r@5")} == search["standard"]


def test_bad_inputs_raise_input_errors(logged_market, trained, tmp_path) -> None:
    market, _ = logged_market
    image = market.open_image(market.creatives["image"].iloc[0])
    with pytest.raises(InputError, match="no images"):
        trained.score([], "a bag")
    with pytest.raises(InputError, match="single image"):
        trained.score(image, "a bag")
    with pytest.raises(InputError, match="empty"):
        trained.score([image], "  ")
    without_images = dataclasses.replace(market, creatives=market.creatives.assign(image=None))
    with pytest.raises(InputError, match="no images"):
        ContrastiveTrainer(tiny_config(product_photos=False)).fit(without_images)
    with pytest.raises(InputError, match="no folder"):
        ContrastiveTrainer(tiny_config()).fit(dataclasses.replace(market, root=None))
    one = market.products["product_id"].iloc[0]
    single = dataclasses.replace(market, products=market.products.iloc[:1],
                                 creatives=market.creatives[market.creatives["product_id"] == one])
    with pytest.raises(InputError, match="at least 2 products"):
        ContrastiveTrainer(tiny_config()).fit(single)
    trained.demand_model.save(tmp_path / "utility")
    with pytest.raises(InputError, match="not the expected 'contrastive'"):
        ContrastiveModel.load(tmp_path / "utility")


def test_demand_falls_back_to_ctr_without_a_demand_table(logged_market) -> None:
    market, _ = logged_market
    config = tiny_config(demand=UtilityConfig())
    model = fit_demand_utility(dataclasses.replace(market, demand=None), config)
    assert model.config.target == "logit_ctr"
    with pytest.raises(InputError, match="demand table"):
        fit_demand_utility(dataclasses.replace(market, demand=None), tiny_config(demand=UtilityConfig(),
                                                                                 fall_back_to_ctr=False))


@pytest.mark.slow
def test_pretrained_towers_train_and_round_trip(logged_market, tmp_path) -> None:
    market, _ = logged_market
    config = dataclasses.replace(tiny_config(), image=ImageEncoderConfig(), text=TextEncoderConfig())
    model = ContrastiveTrainer(config).fit(market)
    assert np.isfinite(model.validation["loss"])
    model.save(tmp_path / "model")
    images, pairs = training_images(market, model)
    loaded = ContrastiveModel.load(tmp_path / "model")
    assert loaded.image_encoder.dim == 1280 and loaded.text_encoder.dim == 384
    np.testing.assert_array_equal(loaded.score(images[:3], pairs["text"].iloc[0]),
                                  model.score(images[:3], pairs["text"].iloc[0]))
