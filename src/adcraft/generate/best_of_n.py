"""Demand-aware best-of-N selection (UA-InfoNCE, arXiv 2605.28733: N candidates reranked by US).

Candidate images (files, images in memory, or creatives rendered from element combinations) are
ranked by the utility-aware score ``US(v, t) = α h̃(v) + β s(v, t)`` of a
:class:`~adcraft.rewards.contrastive.ContrastiveModel`: the image that best combines what the text
asks for (s) with what sells (h̃) comes first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from adcraft.errors import InputError
from adcraft.market import Market
from adcraft.market.images import open_image
from adcraft.render.compositor import RenderedCreative
from adcraft.render.from_market import MarketRenderer

if TYPE_CHECKING:
    from adcraft.rewards.contrastive import ContrastiveModel

ImageInput = Image.Image | str | os.PathLike[str]


def rank_images(
    model: ContrastiveModel,
    images: Sequence[ImageInput],
    text: str,
    labels: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """Rank images for ``text`` by the utility-aware score, best first.

    ``images``: PIL images or image file paths (opened with the market's pixel limit). Each row is
    ``{"rank", "image", "score", "demand", "consistency"}``: ``image`` is the label (default: the path
    as given, or the image's position for an in-memory image), ``demand`` the model's standardised
    demand utility h̃ and ``consistency`` the cosine s(v, t). Ties keep the input order.
    """
    if isinstance(images, (str, os.PathLike, Image.Image)):
        raise InputError("expected a list of images, got a single one: wrap it in a list")
    if len(images) == 0:
        raise InputError("no images to rank: pass at least one image")
    if labels is not None and len(labels) != len(images):
        raise InputError(f"got {len(labels)} labels for {len(images)} images; give one per image")
    opened = [item if isinstance(item, Image.Image) else open_image(Path(item)) for item in images]
    if labels is None:
        labels = [index if isinstance(item, Image.Image) else str(item) for index, item in enumerate(images)]
    parts = model.score_parts(opened, text)
    order = np.argsort(-parts.score, kind="stable")
    return [
        {
            "rank": rank,
            "image": labels[i],
            "score": float(parts.score[i]),
            "demand": float(parts.utility[i]),
            "consistency": float(parts.consistency[i]),
        }
        for rank, i in enumerate(order, start=1)
    ]


@dataclass(frozen=True)
class CandidateCreative:
    """A rendered candidate creative of a product with its scores (``demand`` is h̃)."""

    product_id: str
    elements: tuple[str, ...]
    rendered: RenderedCreative
    score: float
    demand: float
    consistency: float

    @property
    def image(self) -> Image.Image:
        return self.rendered.image


def sample_combinations(market: Market, product_id: str, n: int, seed: int = 0) -> list[list[str]]:
    """Up to ``n`` distinct random combinations (one usable element per slot, in slot order) for a product."""
    if n < 1:
        raise InputError(f"n must be at least 1, got {n}")
    if product_id not in set(market.products["product_id"]):
        raise InputError(f"unknown product '{product_id}'")
    usable = [market.usable_elements(product_id, slot)["element_id"].tolist() for slot in market.slots]
    empty = [slot for slot, ids in zip(market.slots, usable) if not ids]
    if empty:
        raise InputError(f"product '{product_id}' has no usable element for slot(s) {empty}")
    possible = int(np.prod([len(ids) for ids in usable], dtype=float))
    rng = np.random.default_rng(seed)
    seen: dict[tuple[str, ...], None] = {}
    while len(seen) < min(n, possible):
        seen[tuple(str(ids[rng.integers(len(ids))]) for ids in usable)] = None
    return [list(combination) for combination in seen]


def best_of_n_creatives(
    model: ContrastiveModel,
    market: Market,
    product_id: str,
    combinations: Sequence[Sequence[str]],
    text: str | None = None,
    renderer: MarketRenderer | None = None,
) -> list[CandidateCreative]:
    """Render each combination of ``product_id`` and rank the creatives by ``US`` for ``text`` (default:
    the product's title), best first; the first is the pick."""
    if len(combinations) == 0:
        raise InputError("no candidate combinations to render: pass at least one")
    renderer = renderer or MarketRenderer(market)
    if text is None:
        titles = market.products.set_index("product_id")["title"]
        if product_id not in titles.index:
            raise InputError(f"unknown product '{product_id}'")
        text = str(titles[product_id])
    rendered = [renderer.render(product_id, list(combination)) for combination in combinations]
    parts = model.score_parts([creative.image for creative in rendered], text)
    order = np.argsort(-parts.score, kind="stable")
    return [
        CandidateCreative(product_id, tuple(combinations[i]), rendered[i], float(parts.score[i]),
                          float(parts.utility[i]), float(parts.consistency[i]))
        for i in order
    ]
