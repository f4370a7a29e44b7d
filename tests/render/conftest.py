"""Tiny product images drawn in the test process."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def draw_product(width: int = 60, height: int = 120) -> Image.Image:
    """A shaded, bottle-like ellipse on a transparent background, with a soft anti-aliased rim."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u = (xx + 0.5 - width / 2) / (0.45 * width)
    v = (yy + 0.5 - height / 2) / (0.47 * height)
    r = np.sqrt(u**2 + v**2)
    alpha = np.clip((1.0 - r) * 0.45 * min(width, height), 0.0, 1.0) * 255
    shade = 0.4 + 0.6 * np.sqrt(np.clip(1 - u**2, 0, 1))
    rgb = np.stack([40 * shade, 140 * shade, 200 * shade + 30 * v], axis=-1)
    rgba = np.dstack([np.clip(rgb, 0, 255), alpha]).astype(np.uint8)
    return Image.fromarray(rgba)


@pytest.fixture
def product() -> Image.Image:
    return draw_product()


@pytest.fixture
def photo_on_white() -> Image.Image:
    """A red disc with a white label inside, photographed on a white background (no alpha)."""
    photo = Image.new("RGB", (100, 80), (250, 250, 250))
    pixels = np.asarray(photo).copy()
    yy, xx = np.mgrid[0:80, 0:100]
    disc = (xx - 50) ** 2 + (yy - 40) ** 2 <= 25**2
    label = (np.abs(xx - 50) <= 6) & (np.abs(yy - 40) <= 6)
    pixels[disc] = (200, 30, 30)
    pixels[label] = (250, 250, 250)
    return Image.fromarray(pixels)
