"""Procedural product photos: cut-outs of every category are sized, framed, shaded and reproducible."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from adcraft.errors import InputError
from adcraft.simulator.photos import (
    PHOTO_CATEGORIES,
    PhotoStyle,
    draw_product_photo,
    random_style,
)

SIZE = 192


def _rgba(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def _luminance(rgba: np.ndarray) -> np.ndarray:
    return rgba[..., :3] @ np.array([0.299, 0.587, 0.114])


def test_there_are_at_least_ten_distinct_categories() -> None:
    assert len(PHOTO_CATEGORIES) >= 10
    assert len(set(PHOTO_CATEGORIES)) == len(PHOTO_CATEGORIES)
    assert {"mug", "bottle", "sneaker", "t-shirt", "watch"} <= set(PHOTO_CATEGORIES)


@pytest.mark.parametrize("category", PHOTO_CATEGORIES)
@pytest.mark.parametrize("seed", [3, 11])
def test_every_category_is_a_framed_shaded_cutout(category: str, seed: int) -> None:
    image = draw_product_photo(category, size=SIZE, seed=seed)
    assert image.mode == "RGBA"
    assert image.size == (SIZE, SIZE)
    px = _rgba(image)
    alpha = px[..., 3]

    corners = [alpha[:8, :8], alpha[:8, -8:], alpha[-8:, :8], alpha[-8:, -8:]]
    assert all((c == 0).all() for c in corners)
    assert (px[alpha == 0][:, :3] == 0).all(), "transparent pixels must be RGB 0"

    opaque = alpha >= 128
    assert 0.15 <= opaque.mean() <= 0.85
    assert (alpha == 255).sum() > 0.8 * opaque.sum(), "the object's inside must be fully opaque"

    # tall products fill about 84 % of the height; wide ones (a sneaker's side view) at least ~40 %
    rows = np.nonzero(opaque.any(axis=1))[0]
    assert 0.38 <= (rows[-1] - rows[0] + 1) / SIZE <= 0.9

    # a flat fill has a luminance spread near 0; shading, highlights and details make it large
    assert _luminance(px)[alpha == 255].std() > 6.0


# symmetric pairs (headphones, sunglasses) and two-tone designs (sneaker) are left out: their halves
# differ by design, not by light
LIT_FROM_THE_LEFT = ["mug", "bottle", "vase", "lamp", "perfume", "watch", "t-shirt", "dress", "handbag",
                     "backpack", "chair"]


@pytest.mark.parametrize("category", LIT_FROM_THE_LEFT)
def test_a_single_colour_product_is_lit_from_the_left(category: str) -> None:
    grey = (150, 150, 150)
    style = replace(random_style(category, np.random.default_rng(5)), base_color=grey, accent_color=grey,
                    detail_color=grey, pattern="plain", gloss=0.0)
    px = _rgba(draw_product_photo(category, style, size=SIZE, seed=1))
    opaque = px[..., 3] == 255
    cols = np.nonzero(opaque.any(axis=0))[0]
    middle = (cols[0] + cols[-1]) // 2
    lum = _luminance(px)
    left = lum[:, :middle][opaque[:, :middle]].mean()
    right = lum[:, middle:][opaque[:, middle:]].mean()
    assert left > right + 8.0


def _edge_to_inside_ratio(px: np.ndarray) -> np.ndarray:
    """For each half-transparent pixel next to an opaque one: its luminance over the brightest such
    opaque neighbour's (1.0 = the edge keeps the object's colour; alpha/255 = a dark fringe)."""
    alpha, lum = px[..., 3], _luminance(px)
    inside = np.where(alpha == 255, lum, -1.0)
    padded = np.pad(inside, 1, constant_values=-1.0)
    h, w = alpha.shape
    neighbour = np.max([padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    edge = (alpha >= 64) & (alpha <= 192) & (neighbour > 40)
    return lum[edge] / neighbour[edge]


@pytest.mark.parametrize("category", PHOTO_CATEGORIES)
def test_edges_have_no_dark_halo(category: str) -> None:
    white = (250, 250, 250)
    style = replace(random_style(category, np.random.default_rng(2)), base_color=white, accent_color=white,
                    detail_color=white, pattern="plain")
    px = _rgba(draw_product_photo(category, style, size=SIZE, seed=0))
    ratio = _edge_to_inside_ratio(px)
    assert ratio.size > 30
    assert np.median(ratio) > 0.85
    # the check itself would catch a fringe: colours faded by their own alpha fail it
    faded = px.copy()
    faded[..., :3] *= faded[..., 3:] / 255.0
    assert np.median(_edge_to_inside_ratio(faded)) < 0.8


def test_same_category_style_and_seed_give_identical_pixels() -> None:
    first = draw_product_photo("handbag", size=SIZE, seed=42)
    again = draw_product_photo("handbag", size=SIZE, seed=42)
    assert first.tobytes() == again.tobytes()
    style = random_style("handbag", np.random.default_rng(42))
    assert draw_product_photo("handbag", style, size=SIZE, seed=42).tobytes() == first.tobytes()


def test_other_seeds_and_styles_give_other_pictures() -> None:
    pictures = {draw_product_photo("vase", size=SIZE, seed=s).tobytes() for s in range(4)}
    assert len(pictures) == 4
    style = random_style("vase", np.random.default_rng(0))
    recoloured = replace(style, base_color=(30, 60, 160))
    a = _rgba(draw_product_photo("vase", style, size=SIZE, seed=0))
    b = _rgba(draw_product_photo("vase", recoloured, size=SIZE, seed=0))
    assert np.abs(a - b).mean() > 5.0
    # the same product shot with another seed moves the light a little but stays the same object
    c = _rgba(draw_product_photo("vase", style, size=SIZE, seed=9))
    assert (a[..., 3] == c[..., 3]).all() and np.abs(a - c).mean() > 0.1


def test_width_proportion_widens_the_product() -> None:
    style = random_style("mug", np.random.default_rng(1))

    def aspect(width: float) -> float:
        alpha = _rgba(draw_product_photo("mug", replace(style, width=width), size=SIZE))[..., 3]
        rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
        return (cols[-1] - cols[0]) / (rows[-1] - rows[0])

    assert aspect(1.3) > aspect(0.8) + 0.1


def test_random_styles_vary_within_a_category() -> None:
    rng = np.random.default_rng(0)
    styles = [random_style("t-shirt", rng) for _ in range(30)]
    assert len({s.base_color for s in styles}) > 10
    assert len({s.pattern for s in styles}) > 1
    assert len({s.variant for s in styles}) > 1


def test_unknown_category_is_refused_with_the_valid_names() -> None:
    with pytest.raises(ValueError, match="sneaker") as err:
        draw_product_photo("spaceship")
    assert isinstance(err.value, InputError)
    with pytest.raises(InputError, match="mug"):
        random_style("spaceship", np.random.default_rng(0))


@pytest.mark.parametrize(
    "change",
    [{"pattern": "tartan"}, {"gloss": 1.5}, {"base_color": (300, 0, 0)}, {"width": 3.0}],
)
def test_impossible_styles_are_refused(change: dict) -> None:
    with pytest.raises(InputError):
        PhotoStyle(**{"base_color": (1, 2, 3), "accent_color": (4, 5, 6), **change})


def test_bad_size_or_seed_is_refused() -> None:
    with pytest.raises(InputError, match="size"):
        draw_product_photo("mug", size=4)
    with pytest.raises(InputError, match="seed"):
        draw_product_photo("mug", seed=-1)
