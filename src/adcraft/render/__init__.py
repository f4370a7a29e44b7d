"""Turning a creative's elements into pixels.

The default renderer is the :class:`Compositor` (Pillow + NumPy): a background drawn from the
background prompt, the product cut-out, a fitted title and a highlight badge, laid out by a
named template. The product's own pixels are never painted over.
"""

from adcraft.render.background import BackgroundStyle, draw_background, parse_background, parse_color
from adcraft.render.compositor import (
    Compositor,
    CompositorConfig,
    CreativeSpec,
    RenderedCreative,
    render_to_png,
)
from adcraft.render.cutout import CutoutConfig, ensure_cutout
from adcraft.render.fonts import resolve_font
from adcraft.render.templates import TEMPLATES, Template, get_template
from adcraft.render.text_layout import TextBlock, contrast_ratio, fit_text, legible_color

__all__ = [
    "BackgroundStyle",
    "Compositor",
    "CompositorConfig",
    "CreativeSpec",
    "CutoutConfig",
    "RenderedCreative",
    "TEMPLATES",
    "Template",
    "TextBlock",
    "contrast_ratio",
    "draw_background",
    "ensure_cutout",
    "fit_text",
    "get_template",
    "legible_color",
    "parse_background",
    "parse_color",
    "render_to_png",
    "resolve_font",
]
