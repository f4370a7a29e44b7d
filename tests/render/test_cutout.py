from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from PIL import Image

from adcraft.errors import InputError
from adcraft.render.cutout import CutoutConfig, border_connected, ensure_cutout


def _bfs_border_connected(mask: np.ndarray) -> np.ndarray:
    """Reference 4-connected flood fill from every border pixel of ``mask``."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    queue = deque((y, x) for y in range(h) for x in range(w)
                  if mask[y, x] and (y in (0, h - 1) or x in (0, w - 1)))
    for y, x in queue:
        out[y, x] = True
    while queue:
        y, x = queue.popleft()
        for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
            if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not out[ny, nx]:
                out[ny, nx] = True
                queue.append((ny, nx))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_sweep_flood_fill_matches_breadth_first_search(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((23, 31)) < 0.55
    assert np.array_equal(border_connected(mask), _bfs_border_connected(mask))


def test_flood_fill_follows_a_spiral_corridor() -> None:
    mask = np.zeros((21, 21), dtype=bool)
    mask[0, :] = True  # open border row, then a corridor winding inwards
    walls = np.ones((19, 19), dtype=bool)
    y, x, step, d = 0, 0, 18, 0
    moves = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    walls[0, 0] = False
    while step > 0:
        for _ in range(2):
            for _ in range(step):
                y, x = y + moves[d][0], x + moves[d][1]
                walls[y, x] = False
            d = (d + 1) % 4
        step -= 2
    mask[1:20, 1:20] = ~walls
    mask[1, 1] = True
    assert np.array_equal(border_connected(mask), _bfs_border_connected(mask))


def test_photo_on_white_loses_its_background_and_keeps_the_product(photo_on_white: Image.Image) -> None:
    cut = ensure_cutout(photo_on_white)
    assert cut.mode == "RGBA"
    assert cut.size == (53, 53)  # cropped to the disc (radius 25), plus a 1-px transparent margin
    alpha = np.asarray(cut)[..., 3]
    assert alpha[0, 0] == alpha[0, -1] == alpha[-1, 0] == alpha[-1, -1] == 0
    assert (alpha[0, :] == 0).all() and (alpha[:, 0] == 0).all()
    centre = np.asarray(cut)[26, 26]
    assert tuple(centre) == (250, 250, 250, 255)  # the white label is enclosed, so it is kept
    assert tuple(np.asarray(cut)[26, 11]) == (200, 30, 30, 255)


def test_existing_alpha_is_used_as_is(product: Image.Image) -> None:
    padded = Image.new("RGBA", (100, 160), (0, 0, 0, 0))
    padded.paste(product, (20, 20))
    cut = ensure_cutout(padded)
    bbox = product.getchannel("A").getbbox()
    assert np.array_equal(np.asarray(cut)[1:-1, 1:-1], np.asarray(product.crop(bbox)))


def test_opaque_rgba_photo_is_cut_like_an_rgb_one(photo_on_white: Image.Image) -> None:
    a = ensure_cutout(photo_on_white)
    b = ensure_cutout(photo_on_white.convert("RGBA"))
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_photo_without_plain_border_is_kept_whole() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    cut = ensure_cutout(Image.fromarray(noise))
    assert cut.size == (32, 42)
    assert (np.asarray(cut)[1:-1, 1:-1, 3] == 255).all()


@pytest.mark.parametrize("image", [
    Image.new("RGB", (40, 40), (255, 255, 255)),
    Image.new("RGBA", (40, 40), (10, 20, 30, 0)),
])
def test_nothing_left_raises_input_error(image: Image.Image) -> None:
    with pytest.raises(InputError):
        ensure_cutout(image)


def test_tolerance_decides_what_counts_as_background() -> None:
    photo = Image.new("RGB", (40, 40), (255, 255, 255))
    photo.paste((230, 230, 230), (10, 10, 30, 30))  # a pale grey square on white
    assert ensure_cutout(photo, CutoutConfig(tolerance=10)).size == (22, 22)
    with pytest.raises(InputError):
        ensure_cutout(photo, CutoutConfig(tolerance=40))


def test_not_an_image_raises_input_error() -> None:
    with pytest.raises(InputError):
        ensure_cutout("bottle.png")  # type: ignore[arg-type]


def test_sixteen_bit_greyscale_photo_is_scaled_not_clipped() -> None:
    grey = np.full((40, 40), 65535, dtype=np.uint16)
    grey[10:30, 10:30] = 20000
    cut = ensure_cutout(Image.fromarray(grey))
    assert cut.size == (22, 22)
    assert np.asarray(cut)[11, 11, 0] == round(20000 / 257)


def test_cutting_out_a_cutout_changes_nothing(photo_on_white: Image.Image) -> None:
    """A saved cut-out, even of an opaque rectangular product, reads back as the same cut-out."""
    once = ensure_cutout(photo_on_white)
    assert np.array_equal(np.asarray(ensure_cutout(once)), np.asarray(once))
    block = Image.new("RGBA", (30, 20), (0, 0, 0, 0))
    block.paste((120, 40, 200, 255), (5, 5, 25, 15))
    first = ensure_cutout(block)
    assert np.array_equal(np.asarray(ensure_cutout(first)), np.asarray(first))
