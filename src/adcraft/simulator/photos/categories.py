"""Styles per category: how each category is drawn and which colours, gloss, patterns and silhouettes suit it.

:func:`random_style` draws a plausible :class:`PhotoStyle` for a category from these palettes.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from adcraft.simulator.photos.containers import bottle, mug, perfume, vase
from adcraft.simulator.photos.furniture import chair, lamp
from adcraft.simulator.photos.shading import Part
from adcraft.simulator.photos.style import PHOTO_PATTERNS, RGB, PhotoInputError, PhotoStyle
from adcraft.simulator.photos.wearables import backpack, dress, handbag, headphones, sneaker, sunglasses, tshirt, watch


@dataclass(frozen=True)
class _CategorySpec:
    """How a category is drawn and which colours, gloss, patterns and silhouettes suit it."""

    draw: Callable[[PhotoStyle], list[Part]]
    bases: tuple[RGB, ...]
    accents: tuple[RGB, ...]
    details: tuple[RGB, ...]
    gloss: tuple[float, float]
    patterns: tuple[float, float, float, float]  # probabilities of plain, stripes, dots, block
    variants: int = 3


_CERAMIC: tuple[RGB, ...] = ((240, 238, 232), (235, 225, 205), (45, 45, 50), (35, 55, 95), (140, 165, 130),
                             (190, 95, 70), (215, 165, 50), (235, 180, 185), (130, 175, 215), (185, 45, 50))
_FABRIC: tuple[RGB, ...] = ((245, 245, 242), (40, 40, 44), (150, 152, 158), (35, 50, 90), (185, 40, 45),
                            (95, 110, 60), (215, 170, 60), (140, 185, 220), (230, 160, 175), (40, 100, 70))
_BRIGHT: tuple[RGB, ...] = ((245, 245, 240), (210, 50, 50), (30, 90, 180), (240, 190, 40), (40, 150, 110),
                            (240, 120, 40), (30, 30, 34), (120, 60, 160), (230, 110, 150))
_METAL: tuple[RGB, ...] = ((200, 200, 205), (212, 175, 95), (205, 145, 125), (85, 88, 95), (40, 40, 44))
_WOOD: tuple[RGB, ...] = ((185, 140, 90), (110, 70, 45), (45, 42, 40), (200, 165, 110))

_SPECS: dict[str, _CategorySpec] = {
    "mug": _CategorySpec(mug, _CERAMIC, _BRIGHT, _METAL, (0.45, 0.9), (0.5, 0.15, 0.15, 0.2)),
    "bottle": _CategorySpec(
        bottle, ((40, 95, 60), (120, 65, 25), (60, 75, 90), (40, 70, 150), (200, 60, 50), (60, 160, 150),
                 (240, 130, 40), (225, 225, 220), (150, 110, 170)),
        ((240, 232, 210), (250, 250, 245), (30, 30, 34), (215, 175, 90), (170, 40, 45)),
        _METAL + ((30, 30, 34), (245, 245, 240)), (0.6, 1.0), (0.75, 0.1, 0.1, 0.05)),
    "sneaker": _CategorySpec(
        sneaker, ((245, 245, 242), (35, 35, 38), (140, 142, 148), (190, 40, 45), (35, 75, 160),
                  (215, 195, 160), (95, 110, 70), (235, 170, 185)),
        _BRIGHT, ((250, 250, 248), (30, 30, 32), (200, 200, 200)), (0.05, 0.4), (0.6, 0.0, 0.0, 0.4)),
    "t-shirt": _CategorySpec(tshirt, _FABRIC, _BRIGHT, _METAL, (0.04, 0.14), (0.5, 0.25, 0.1, 0.15)),
    "handbag": _CategorySpec(
        handbag, ((30, 30, 32), (180, 120, 70), (150, 80, 40), (120, 30, 45), (235, 225, 205),
                  (225, 175, 165), (35, 50, 90), (90, 100, 60)),
        ((215, 175, 95), (30, 30, 32), (235, 225, 205), (150, 80, 40), (185, 45, 50)), _METAL,
        (0.15, 0.6), (0.75, 0.05, 0.05, 0.15)),
    "watch": _CategorySpec(
        watch, ((30, 30, 32), (100, 60, 35), (175, 120, 70), (35, 50, 90), (90, 100, 60), (40, 110, 90)),
        ((245, 244, 238), (25, 25, 28), (30, 45, 90), (30, 80, 60), (235, 225, 200), (150, 150, 155)),
        _METAL, (0.2, 0.5), (1.0, 0.0, 0.0, 0.0)),
    "lamp": _CategorySpec(
        lamp, ((245, 242, 232), (230, 215, 190), (205, 190, 165), (150, 170, 140), (45, 45, 48),
               (215, 165, 50), (180, 95, 70)),
        _CERAMIC, _METAL + ((30, 30, 32),), (0.3, 0.8), (0.8, 0.15, 0.0, 0.05)),
    "headphones": _CategorySpec(
        headphones, ((30, 30, 34), (240, 240, 236), (180, 182, 188), (35, 50, 90), (215, 170, 165),
                     (150, 165, 140), (215, 200, 175), (185, 45, 50)),
        _METAL + ((185, 45, 50), (30, 90, 180)), ((40, 40, 44), (120, 120, 126), (200, 200, 205)),
        (0.3, 0.75), (1.0, 0.0, 0.0, 0.0)),
    "backpack": _CategorySpec(
        backpack, ((35, 50, 90), (35, 35, 38), (95, 110, 60), (185, 45, 50), (215, 165, 50), (130, 132, 138),
                   (40, 120, 120), (175, 120, 70)),
        _BRIGHT + ((175, 120, 70),), ((30, 30, 32), (200, 200, 205), (175, 120, 70)),
        (0.04, 0.2), (0.6, 0.1, 0.1, 0.2)),
    "dress": _CategorySpec(
        dress, ((185, 35, 45), (30, 30, 34), (30, 45, 90), (25, 110, 80), (235, 180, 180), (215, 170, 60),
                (170, 150, 210), (245, 242, 235), (120, 35, 60)),
        ((245, 245, 240), (30, 30, 34), (215, 175, 95), (235, 180, 185), (240, 190, 40)), _METAL,
        (0.04, 0.3), (0.5, 0.1, 0.25, 0.15)),
    "sunglasses": _CategorySpec(
        sunglasses, ((40, 40, 45), (90, 60, 35), (50, 70, 55), (40, 80, 140), (150, 70, 90)),
        ((150, 150, 155), (200, 150, 100), (150, 180, 160), (140, 180, 220), (235, 170, 180)),
        ((25, 25, 28), (110, 65, 35), (212, 175, 95), (185, 45, 50), (200, 200, 205)),
        (0.8, 1.0), (1.0, 0.0, 0.0, 0.0)),
    "vase": _CategorySpec(
        vase, _CERAMIC + ((40, 70, 150), (170, 200, 180), (120, 30, 35), (185, 110, 75)), _BRIGHT + _CERAMIC,
        _METAL, (0.35, 0.9), (0.55, 0.15, 0.15, 0.15)),
    "perfume": _CategorySpec(
        perfume, ((235, 150, 170), (225, 165, 60), (235, 210, 140), (185, 160, 215), (90, 140, 210),
                  (230, 230, 222), (120, 190, 140), (200, 60, 80)),
        ((212, 175, 95), (200, 200, 205), (25, 25, 28), (245, 245, 240), (205, 145, 125)),
        ((25, 25, 28), (212, 175, 95), (245, 245, 240), (200, 200, 205)),
        (0.8, 1.0), (1.0, 0.0, 0.0, 0.0)),
    "chair": _CategorySpec(
        chair, ((150, 152, 158), (215, 165, 50), (40, 120, 120), (225, 175, 170), (35, 50, 90), (235, 228, 210),
                (60, 100, 70), (185, 95, 70), (245, 245, 242)),
        ((185, 140, 90), (225, 215, 195), (150, 152, 158), (35, 50, 90)), _WOOD,
        (0.05, 0.4), (0.85, 0.0, 0.0, 0.15)),
}

PHOTO_CATEGORIES: tuple[str, ...] = tuple(_SPECS)


def category_spec(category: str) -> _CategorySpec:
    spec = _SPECS.get(category.strip().lower()) if isinstance(category, str) else None
    if spec is None:
        raise PhotoInputError(
            f"unknown photo category {category!r}; valid categories: {', '.join(PHOTO_CATEGORIES)}"
        )
    return spec


def _jitter(rgb: RGB, rng: np.random.Generator) -> RGB:
    """The colour moved a little in hue, saturation and value, so no two products match exactly."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    h = (h + rng.uniform(-0.025, 0.025)) % 1.0
    s = min(1.0, s * rng.uniform(0.85, 1.15))
    v = min(1.0, max(0.12, v * rng.uniform(0.9, 1.08)))
    r, g, b = (int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v))
    return (r, g, b)


def random_style(category: str, rng: np.random.Generator) -> PhotoStyle:
    """A plausible style for ``category``: colours from the category's palettes (jittered), its typical
    gloss range, a pattern with the category's odds, proportions within about +-15 % and a variant."""
    spec = category_spec(category)
    base = _jitter(spec.bases[rng.integers(len(spec.bases))], rng)
    accents = [a for a in spec.accents if sum(abs(x - y) for x, y in zip(a, base, strict=True)) > 120]
    accent = _jitter((accents or list(spec.accents))[rng.integers(len(accents or spec.accents))], rng)
    detail = _jitter(spec.details[rng.integers(len(spec.details))], rng)
    pattern = PHOTO_PATTERNS[rng.choice(len(PHOTO_PATTERNS), p=np.asarray(spec.patterns) / sum(spec.patterns))]
    return PhotoStyle(
        base_color=base,
        accent_color=accent,
        detail_color=detail,
        pattern=pattern,
        gloss=float(rng.uniform(*spec.gloss)),
        width=float(rng.uniform(0.85, 1.15)),
        height=float(rng.uniform(0.88, 1.12)),
        variant=int(rng.integers(spec.variants)),
    )
