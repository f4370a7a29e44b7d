"""Simulated catalogue and candidate creative elements.

Products get a category, a title, a price and attributes; candidate elements are drawn from small
vocabularies of what shops really use: product-specific titles of varied length, shared selling points,
background prompts in words and hex codes, layout templates, font families and text colours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

ADJECTIVES = (
    "Classic", "Modern", "Everyday", "Premium", "Minimal", "Vintage", "Urban", "Soft", "Bold",
    "Handmade", "Essential", "Signature", "Lightweight", "Cosy", "Sleek", "Heritage",
)
MATERIALS = (
    "ceramic", "cotton", "leather", "linen", "steel", "bamboo", "recycled", "wool", "glass",
    "canvas", "oak", "silk", "aluminium", "organic",
)
BENEFITS = (
    "for every day", "built to last", "with a lifetime guarantee", "that goes with everything",
    "for work and weekend", "made in small batches", "designed in Copenhagen", "you will love",
)
COLOUR_NAMES: dict[str, tuple[int, int, int]] = {
    "black": (30, 30, 30), "white": (240, 240, 240), "grey": (128, 128, 128), "navy": (30, 45, 100),
    "blue": (60, 110, 200), "sky blue": (135, 190, 235), "red": (200, 40, 40), "pink": (235, 160, 180),
    "orange": (230, 130, 40), "yellow": (235, 205, 60), "olive": (110, 120, 50), "green": (50, 140, 70),
    "teal": (30, 130, 130), "mint": (170, 225, 200), "purple": (130, 70, 170), "lilac": (190, 160, 220),
    "brown": (120, 75, 40), "sand": (215, 190, 150), "burgundy": (120, 25, 45),
}

HIGHLIGHTS = (
    "Free shipping", "20% off today", "Bestseller", "New arrival", "2-year warranty",
    "Eco-friendly", "Limited edition", "Free returns",
)
# Selling points that speak to price; the click model gives them a context interaction.
DEAL_HIGHLIGHTS = frozenset({"Free shipping", "20% off today", "Free returns"})

BACKGROUNDS = (
    "warm beige studio, soft shadow",
    "dark charcoal concrete",
    "pastel pink marble",
    "#1e3a5f to #f0c27b gradient",
    "white linen texture",
    "light wooden table, soft shadow",
    "mint green gradient",
    "navy blue studio, spotlight",
    "sunny yellow with polka dots",
    "sage green paper, soft shadow",
)
TEMPLATES = ("center", "left", "right", "banner", "top", "minimal")
FONTS = ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono", "DejaVu Sans Condensed")
TEXT_COLORS = ("#FFFFFF", "#111111", "#C0392B", "#1F4E79", "#F1C40F")


@dataclass(frozen=True)
class Catalogue:
    """Products and candidate elements of a simulated market (tables in the market format)."""

    products: pd.DataFrame
    elements: pd.DataFrame


def colour_name(rgb: tuple[float, float, float]) -> str:
    """The nearest of a few everyday colour names to an sRGB colour (Euclidean distance in RGB)."""
    target = np.asarray(rgb, dtype=float)
    return min(COLOUR_NAMES, key=lambda name: float(np.sum((np.asarray(COLOUR_NAMES[name]) - target) ** 2)))


def _title_variants(category: str, colour: str, rng: np.random.Generator, n: int) -> list[str]:
    """Titles of deliberately different lengths: short, medium, long (the layout x length term needs it)."""
    noun = category.replace("-", " ")
    adj = rng.choice(ADJECTIVES)
    material = rng.choice(MATERIALS)
    candidates = [
        f"{adj} {noun.title()}",
        f"{adj} {material} {noun}",
        f"{adj} {colour} {material} {noun} {rng.choice(BENEFITS)}",
        f"The {noun} {rng.choice(BENEFITS)}",
        f"{colour.title()} {noun}, {material}",
        f"{adj} {noun} in {colour} {material}, {rng.choice(BENEFITS)}",
    ]
    order = [0, 1, 2] + list(rng.permutation(np.arange(3, len(candidates))))
    return [candidates[i] for i in order[:n]]


def make_catalogue(
    categories: list[str],
    photo_paths: list[str],
    colours: list[str],
    slots: tuple[str, ...],
    titles_per_product: int,
    rng: np.random.Generator,
    backgrounds: tuple[str, ...] = BACKGROUNDS,
) -> Catalogue:
    """Build the products and elements tables for products with the given categories, photos and colours.

    ``backgrounds``: the background prompts offered (``BACKGROUNDS`` for the legacy world; the other worlds
    use ``scenes.SCENE_BACKGROUNDS``, whose prompts name their scene).
    """
    product_rows = []
    element_rows = []
    for i, (category, photo, colour) in enumerate(zip(categories, photo_paths, colours, strict=True)):
        product_id = f"p{i:04d}"
        titles = _title_variants(category, colour, rng, titles_per_product)
        product_rows.append(
            {
                "product_id": product_id,
                "title": titles[0],
                "category": category,
                "image": photo,
                "price": float(np.round(np.exp(rng.normal(3.3, 0.6)), 2)),
                "attributes": json.dumps({"colour": colour}),
            }
        )
        if "title" in slots:
            for j, text in enumerate(titles):
                element_rows.append(_element(f"t_{product_id}_{j}", "title", product_id, text=text))

    def shared(slot: str, values: tuple[str, ...], prefix: str, field: str) -> None:
        if slot in slots:
            for j, value in enumerate(values):
                element_rows.append(_element(f"{prefix}{j:02d}", slot, None, **{field: value}))

    shared("highlight", HIGHLIGHTS, "h", "text")
    shared("background", backgrounds, "bg", "value")
    shared("template", TEMPLATES, "tpl", "value")
    shared("font", FONTS, "font", "value")
    shared("text_color", TEXT_COLORS, "tc", "value")
    products = pd.DataFrame(product_rows)
    elements = pd.DataFrame(element_rows)
    elements = elements.set_index("slot", drop=False).loc[list(slots)].reset_index(drop=True)
    return Catalogue(products=products, elements=elements)


def _element(
    element_id: str,
    slot: str,
    product_id: str | None,
    text: str | None = None,
    value: str | None = None,
) -> dict:
    return {
        "element_id": element_id,
        "slot": slot,
        "product_id": product_id,
        "text": text,
        "value": value,
        "image": None,
    }
