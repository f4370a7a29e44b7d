"""The simulator's own measurements of a rendered creative: what its true click and demand models read.

They are deliberately not the models' visual attributes (``adcraft.features``): a learner that copies
its feature extractor into the truth would otherwise be rewarded for matching, not for learning. Every
measure is computed here from the pixels, with NumPy only:

- ``lightness``: mean CIELAB L* over the canvas, divided by 100 (sRGB, D65; CIE 15:2004).
- ``colourfulness``: mean CIELAB chroma ``C*ab = sqrt(a*^2 + b*^2)`` over the canvas, divided by 100
  (a hue-blind average saturation; unlike Hasler & Suesstrunk's opponent-channel statistic).
- ``clutter``: how many distinct colours fill the image: colours quantised to 8 levels per channel,
  the number of cells holding at least 0.2% of the pixels, divided by 64 (1 = 64 or more colours).
- ``product_area``: fraction of the canvas covered by the product, from its cut-out mask (below).
- ``product_offset``: distance of the product mask's centroid from the canvas centre, divided by
  half the canvas diagonal (0 = centred).
- ``text_coverage``: fraction of the canvas outside the product's box that text, badges, plates or
  bands changed (pixels unlike the clean background).

The mask: the clean background (the creative's background prompt drawn alone, as the compositor
draws it, seed 0) is compared with the image inside the template's product box; pixels whose largest
channel difference exceeds ``MASK_TOLERANCE`` belong to the product (with its contact shadow). The
clean background and the product box depend only on the creative's background prompt, template and
canvas size, which the truth knows from the element ids; so does a render setting that scales or
moves the product (``CompositorConfig.product_margin``, the template's product box), which these
measures see in the pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from adcraft.render.background import draw_background, parse_background
from adcraft.render.templates import get_template, to_pixels

MASK_TOLERANCE = 40  # 8-bit units: a pixel differs from the clean background by more than this
CLUTTER_LEVELS = 8
CLUTTER_MIN_SHARE = 0.002
CLUTTER_SCALE = 64.0
ANALYSIS_SIDE = 128  # lightness, colourfulness and clutter are measured on a box-downscaled copy

IMAGE_MEASURES: tuple[str, ...] = ("lightness", "colourfulness", "clutter")
SCENE_MEASURES: tuple[str, ...] = ("product_area", "product_offset", "text_coverage")
MEASURES: tuple[str, ...] = IMAGE_MEASURES + SCENE_MEASURES

# sRGB (D65) -> XYZ, and the D65 white point (IEC 61966-2-1; CIE 15:2004).
_SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def srgb_to_lab(pixels: np.ndarray) -> np.ndarray:
    """CIELAB (L*, a*, b*) of 8-bit sRGB pixels ``(..., 3)``; L* in [0, 100]."""
    v = np.asarray(pixels, dtype=np.float64) / 255.0
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _SRGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def wcag_luminance(rgb: Sequence[float]) -> float:
    """WCAG 2.x relative luminance of an sRGB colour (0 for black, 1 for white)."""
    def linear(c: float) -> float:
        v = c / 255.0
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(int(c)) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def wcag_contrast(a: Sequence[float], b: Sequence[float]) -> float:
    """WCAG 2.x contrast ratio ``(L1 + 0.05) / (L2 + 0.05)``, ``L1 >= L2``; from 1 to 21."""
    la, lb = wcag_luminance(a), wcag_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def clean_background(prompt: str | None, canvas: tuple[int, int]) -> np.ndarray:
    """The background prompt drawn alone at ``canvas`` (width, height), as ``(height, width, 3)`` uint8."""
    return np.asarray(draw_background(parse_background(prompt or ""), canvas, 0).convert("RGB"), dtype=np.uint8)


def background_colour(prompt: str | None) -> list[float]:
    """Mean colour of a background prompt drawn on a 48x48 swatch (the legibility term's backdrop)."""
    swatch = clean_background(prompt, (48, 48)).astype(float)
    return [float(v) for v in swatch.reshape(-1, 3).mean(axis=0)]


def image_measures(image: Image.Image) -> dict[str, float]:
    """``lightness``, ``colourfulness`` and ``clutter`` (module docstring): functions of the image alone."""
    rgb = image.convert("RGB")
    scale = ANALYSIS_SIDE / max(rgb.size)
    if scale < 1:
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.BOX)
    pixels = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
    lab = srgb_to_lab(pixels)
    cells = (pixels.astype(np.int64) * CLUTTER_LEVELS) // 256
    codes = (cells[:, 0] * CLUTTER_LEVELS + cells[:, 1]) * CLUTTER_LEVELS + cells[:, 2]
    shares = np.bincount(codes, minlength=CLUTTER_LEVELS**3) / len(codes)
    return {
        "lightness": float(lab[:, 0].mean() / 100.0),
        "colourfulness": float(np.hypot(lab[:, 1], lab[:, 2]).mean() / 100.0),
        "clutter": float(min(1.0, np.count_nonzero(shares >= CLUTTER_MIN_SHARE) / CLUTTER_SCALE)),
    }


def scene_measures(image: Image.Image, background_prompt: str | None, template: str | None) -> dict[str, float]:
    """``product_area``, ``product_offset`` and ``text_coverage`` (module docstring) of a composited creative."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    height, width = pixels.shape[:2]
    clean = clean_background(background_prompt, (width, height)).astype(np.int16)
    changed = np.abs(pixels - clean).max(axis=2) > MASK_TOLERANCE
    left, top, right, bottom = to_pixels(get_template(template).product, (width, height))
    inside = np.zeros_like(changed)
    inside[top:bottom, left:right] = True
    product = changed & inside
    area = float(product.mean())
    if product.any():
        ys, xs = np.nonzero(product)
        dx, dy = xs.mean() + 0.5 - width / 2, ys.mean() + 0.5 - height / 2
        offset = float(math.hypot(dx, dy) / (0.5 * math.hypot(width, height)))
    else:
        offset = 0.0
    return {
        "product_area": area,
        "product_offset": offset,
        "text_coverage": float((changed & ~inside).mean()),
    }
