"""Colour helpers: colours as (r, g, b) floats in [0, 1], mixed, scaled and chosen to read on each other."""

from __future__ import annotations

from collections.abc import Sequence

Color = tuple[float, float, float]


def to_color(rgb: Sequence[float]) -> Color:
    return (rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)


def mix(a: Color, b: Color, t: float) -> Color:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def scale(a: Color, f: float) -> Color:
    return (min(a[0] * f, 1.0), min(a[1] * f, 1.0), min(a[2] * f, 1.0))


def luma(a: Color) -> float:
    return 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2]


def contrast(a: Color) -> Color:
    """A near-white or near-black ink that reads on ``a``."""
    return (0.12, 0.12, 0.13) if luma(a) > 0.55 else (0.95, 0.95, 0.93)


def shadow(a: Color) -> Color:
    """A darker tone of ``a`` that stays visible on black."""
    return mix(scale(a, 0.6), (0.1, 0.1, 0.1), 0.2)


WHITE: Color = (0.97, 0.97, 0.96)
DARK: Color = (0.1, 0.1, 0.11)
