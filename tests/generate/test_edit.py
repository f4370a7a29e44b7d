"""Demand-aware editing: SSIM, the product region through edits, and the search's guarantees."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from adcraft.errors import InputError
from adcraft.generate.edit import (
    IDENTITY,
    EditConfig,
    EditParameters,
    apply_edit,
    creative_product_mask,
    edit_image,
    edit_objective,
    evaluate_edit,
    product_fidelity,
    product_layers,
    ssim_map,
    structural_similarity,
)
from adcraft.render.from_market import MarketRenderer

SIZE = 128
BOX = (30, 40, 70, 88)  # x0, y0, x1, y1 of the synthetic product
SMALL_SEARCH = EditConfig(rounds=2, background=("#FFFFFF", "#1F2A44"), scale=(0.9, 1.1), crop=(0.1,))


def product_pixels() -> np.ndarray:
    """A textured product patch: smooth waves in red and blue (like a photo's shading), a gradient in green."""
    x0, y0, x1, y1 = BOX
    yy, xx = np.mgrid[0 : y1 - y0, 0 : x1 - x0].astype(np.float64)
    red = 150 + 80 * np.sin(2 * np.pi * xx / 12) * np.cos(2 * np.pi * yy / 16)
    blue = 60 + 40 * np.sin(2 * np.pi * yy / 10)
    return np.stack([red, 40 + 4 * xx, blue], axis=-1).round().astype(np.uint8)


def photo_on(background=(255, 255, 255)) -> Image.Image:
    pixels = np.full((SIZE, SIZE, 3), background, dtype=np.uint8)
    x0, y0, x1, y1 = BOX
    pixels[y0:y1, x0:x1] = product_pixels()
    return Image.fromarray(pixels)


def cutout() -> Image.Image:
    rgba = np.zeros((SIZE, SIZE, 4), dtype=np.uint8)
    x0, y0, x1, y1 = BOX
    rgba[y0:y1, x0:x1, :3] = product_pixels()
    rgba[y0:y1, x0:x1, 3] = 255
    return Image.fromarray(rgba, mode="RGBA")


@pytest.fixture(scope="module")
def model(ua_model):
    return ua_model


# ------------------------------------------------------------------------------------ SSIM


def test_ssim_matches_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 52, 3)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 25, a.shape), 0, 255)
    options = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert structural_similarity(a, b) == pytest.approx(metrics.structural_similarity(a, b, channel_axis=-1, **options),
                                                        abs=1e-9)
    assert structural_similarity(a[..., 0], b[..., 0]) == pytest.approx(
        metrics.structural_similarity(a[..., 0], b[..., 0], **options), abs=1e-9)


def test_ssim_is_one_for_identical_images_and_falls_with_distortion() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (32, 32)).astype(np.float64)
    assert np.array_equal(ssim_map(a, a), np.ones_like(a))
    mild = structural_similarity(a, np.clip(a + rng.normal(0, 10, a.shape), 0, 255))
    strong = structural_similarity(a, np.clip(a + rng.normal(0, 60, a.shape), 0, 255))
    assert 1.0 > mild > strong
    with pytest.raises(InputError):
        ssim_map(a, a[:-1])


# ------------------------------------------------------------------------------------ product region


def test_product_region_from_alpha_from_the_border_colour_and_from_a_mask() -> None:
    x0, y0, x1, y1 = BOX
    for image in (cutout(), photo_on(), photo_on((40, 60, 200))):
        layers = product_layers(image)
        assert layers.bbox == BOX
        assert (layers.alpha[y0:y1, x0:x1] == 255).all() and layers.alpha.sum() == 255 * (x1 - x0) * (y1 - y0)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[10:20, 5:25] = True
    assert product_layers(photo_on(), mask).bbox == (5, 10, 25, 20)
    with pytest.raises(InputError, match="no product region"):
        product_layers(Image.new("RGB", (SIZE, SIZE), (200, 200, 200)))
    with pytest.raises(InputError, match="shape"):
        product_layers(photo_on(), mask[:-1])


def test_identity_edit_changes_nothing_and_has_ssim_one() -> None:
    for image in (photo_on(), cutout()):
        layers = product_layers(image)
        edited = apply_edit(layers, IDENTITY)
        assert np.array_equal(np.asarray(edited.image), np.asarray(layers.page))
        assert product_fidelity(layers, edited) == 1.0


def test_geometric_edits_move_the_product_where_they_say_and_keep_it_faithful() -> None:
    layers = product_layers(photo_on())
    shifted = apply_edit(layers, EditParameters(shift_x=0.125))  # 16 pixels right
    moved = product_layers(shifted.image)
    assert moved.bbox == (BOX[0] + 16, BOX[1], BOX[2] + 16, BOX[3])
    assert (shifted.kx, shifted.ox) == (1.0, 16.0)
    assert product_fidelity(layers, shifted) > 0.999
    smaller = apply_edit(layers, EditParameters(scale=0.5))
    x0, y0, x1, y1 = product_layers(smaller.image).bbox
    assert abs((x1 - x0) - 20) <= 2 and abs((y1 - y0) - 24) <= 2
    assert abs((x0 + x1) / 2 - 50) <= 1 and abs((y0 + y1) / 2 - 64) <= 1  # scaled about its centre
    for parameters in (EditParameters(scale=0.8), EditParameters(scale=1.25, shift_y=-0.1), EditParameters(crop=0.2)):
        assert product_fidelity(layers, apply_edit(layers, parameters)) > 0.9


def test_background_edit_keeps_every_product_pixel() -> None:
    layers = product_layers(cutout())
    edited = np.asarray(apply_edit(layers, EditParameters(background="#00FF00")).image)
    x0, y0, x1, y1 = BOX
    assert np.array_equal(edited[y0:y1, x0:x1], product_pixels())
    outside = np.ones((SIZE, SIZE), dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert (edited[outside] == [0, 255, 0]).all()


def test_destroying_the_product_fails_the_fidelity_check(model) -> None:
    image = photo_on()
    layers = product_layers(image)
    assert product_fidelity(layers, apply_edit(layers, EditParameters(shift_x=0.9))) < 0.2  # pushed off the canvas
    assert product_fidelity(layers, apply_edit(layers, EditParameters(contrast=0.05))) < 0.5  # flattened
    result = evaluate_edit(model, image, "a red box", EditParameters(shift_x=0.9))
    assert not result.passed and result.ssim < EditConfig().min_ssim
    assert evaluate_edit(model, image, "a red box", IDENTITY).passed


# ------------------------------------------------------------------------------------ search


def test_edit_never_lowers_the_score_and_respects_the_thresholds(generator_market, model) -> None:
    market, _ = generator_market
    creative = market.creatives.iloc[0]
    image = market.open_image(creative["image"])
    mask = creative_product_mask(MarketRenderer(market), creative["product_id"], creative["elements"])
    text = market.products.set_index("product_id").loc[creative["product_id"], "title"]
    for config in (SMALL_SEARCH, EditConfig(rounds=2, min_ssim=0.995, max_consistency_drop=0.0,
                                            background=("#FFFFFF",), scale=(0.9,), crop=())):
        result = edit_image(model, image, text, config, product_mask=mask)
        assert result.passed and result.evaluated > 0
        assert result.score_after >= result.score_before
        assert result.ssim >= config.min_ssim
        assert result.consistency_after >= result.consistency_before - config.max_consistency_drop
        layers = product_layers(image, mask)
        edited = apply_edit(layers, result.parameters)
        assert np.array_equal(np.asarray(edited.image), np.asarray(result.image))
        assert product_fidelity(layers, edited) == pytest.approx(result.ssim)
        parts = model.score_parts([result.image], text)
        assert edit_objective(model, parts, config)[0] == pytest.approx(result.score_after, abs=1e-5)
        expected = config.demand_weight * parts.utility[0] + model.config.beta * parts.consistency[0]
        assert result.score_after == pytest.approx(expected, abs=1e-5)
    json.dumps(result.to_json())


def test_edit_objective_is_the_models_score_without_a_demand_weight_of_its_own(generator_market, model) -> None:
    market, _ = generator_market
    image = market.open_image(market.creatives["image"].iloc[0])
    result = edit_image(model, image, "Linen shirt", dataclasses.replace(SMALL_SEARCH, demand_weight=None))
    assert result.score_after >= result.score_before
    assert model.score([result.image], "Linen shirt")[0] == pytest.approx(result.score_after, abs=1e-5)


def test_the_demand_weight_trades_consistency_for_demand(generator_market, model) -> None:
    """One round from the identity scores the same candidates under every weight, so the pick with a
    huge weight has (up to the cosine's share of E) the most demand and the pick with weight 0 the most
    consistency among the allowed edits."""
    market, _ = generator_market
    creative = market.creatives.iloc[0]
    image = market.open_image(creative["image"])
    mask = creative_product_mask(MarketRenderer(market), creative["product_id"], creative["elements"])
    one_round = dataclasses.replace(EditConfig(), rounds=1, max_consistency_drop=0.5)
    by_weight = {w: edit_image(model, image, "Linen shirt", dataclasses.replace(one_round, demand_weight=w),
                               product_mask=mask) for w in (0.0, 1e3)}
    cosine_share = 2 * model.config.beta / 1e3  # how much demand the cosine can tip the w = 1e3 pick by
    assert by_weight[1e3].demand_after >= by_weight[0.0].demand_after - cosine_share
    assert by_weight[0.0].consistency_after >= by_weight[1e3].consistency_after
    assert by_weight[1e3].demand_after > by_weight[1e3].demand_before  # some edit of the grid raises demand
    with pytest.raises(InputError, match="demand_weight"):
        EditConfig(demand_weight=-0.1)


def test_edit_returns_the_image_unchanged_when_no_edit_is_allowed(model) -> None:
    image = photo_on()
    result = edit_image(model, image, "a red box", EditConfig(min_ssim=1.0, brightness=(1.1,), contrast=(),
                                                             saturation=(), warmth=(), background=(), scale=(),
                                                             shift_x=(), shift_y=(), crop=(0.1,)))
    assert result.parameters == IDENTITY and result.score_after == result.score_before
    assert np.array_equal(np.asarray(result.image), np.asarray(image))


def test_edit_settings_are_validated() -> None:
    with pytest.raises(InputError, match="crop"):
        EditParameters(crop=0.95)
    with pytest.raises(InputError, match="not a colour"):
        EditParameters(background="nothing-like-a-colour")
    with pytest.raises(InputError, match="positive"):
        EditConfig(scale=(0.0,))
    with pytest.raises(InputError, match="list"):
        EditConfig(brightness=1.1)


def test_edit_command_writes_the_edited_png_and_its_figures(ua_model, generator_market, tmp_path):
    from typer.testing import CliRunner

    from adcraft.cli import app

    market, _ = generator_market
    ua_model.save(tmp_path / "ua")
    source = market.resolve(market.creatives["image"].iloc[0])
    result = CliRunner().invoke(app, ["edit", "--model", str(tmp_path / "ua"), "--image", str(source),
                                      "--text", "Linen shirt", "--out", str(tmp_path / "edited.png")])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output[result.output.index("{"):])
    assert figures["score_after"] >= figures["score_before"] and figures["passed"] is True
    with Image.open(tmp_path / "edited.png") as edited, Image.open(source) as original:
        assert edited.size == original.size
