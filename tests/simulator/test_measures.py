"""The simulator's own pixel measures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from adcraft.render.templates import get_template, to_pixels
from adcraft.simulator.measures import (
    clean_background,
    image_measures,
    scene_measures,
    srgb_to_lab,
    wcag_contrast,
)


def test_lab_of_reference_colours():
    lab = srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]]))
    assert lab[0] == pytest.approx([100.0, 0.0, 0.0], abs=0.05)
    assert lab[1] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert lab[2] == pytest.approx([53.24, 80.09, 67.20], abs=0.1)  # CIE reference values of sRGB red


def test_grey_is_colourless_and_one_colour_is_uncluttered():
    grey = image_measures(Image.new("RGB", (64, 64), (128, 128, 128)))
    red = image_measures(Image.new("RGB", (64, 64), (220, 30, 30)))
    assert grey["colourfulness"] == pytest.approx(0.0, abs=1e-3)  # the 4-digit sRGB matrix: grey is near, not at, 0
    assert red["colourfulness"] > 0.5
    assert grey["clutter"] == red["clutter"] == 1 / 64
    assert red["lightness"] < image_measures(Image.new("RGB", (64, 64), (250, 250, 250)))["lightness"]
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    assert image_measures(Image.fromarray(noise))["clutter"] == 1.0


def test_wcag_contrast_of_black_on_white_is_21():
    assert wcag_contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert wcag_contrast((90, 90, 90), (90, 90, 90)) == 1.0


def test_product_mask_area_placement_and_text_coverage():
    canvas, prompt = (256, 256), "pastel pink marble"
    clean = Image.fromarray(clean_background(prompt, canvas))
    assert scene_measures(clean, prompt, "left") == {"product_area": 0.0, "product_offset": 0.0,
                                                     "text_coverage": 0.0}
    left, top, right, bottom = to_pixels(get_template("left").product, canvas)
    drawn = clean.copy()
    drawn.paste((20, 60, 20), (left + 10, top + 10, left + 74, top + 74))  # a 64x64 product
    drawn.paste((0, 0, 0), (10, 10, 42, 18))  # 32x8 of text, left of the product box
    measured = scene_measures(drawn, prompt, "left")
    assert measured["product_area"] == pytest.approx(64 * 64 / 256**2)
    assert measured["text_coverage"] == pytest.approx(32 * 8 / 256**2)
    centre = np.array([left + 42, top + 42])
    assert measured["product_offset"] == pytest.approx(np.hypot(*(centre - 128)) / np.hypot(128, 128))
