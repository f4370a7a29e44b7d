"""Safe image access: paths stay inside the market, only whole PNG/JPEG/WebP files within the
pixel limit are opened, and the size is checked before any pixel is decoded."""

from __future__ import annotations

import os
import time

import pytest
from PIL import Image

from adcraft.errors import InputError
from adcraft.market.images import (
    ImageLimits,
    image_problems,
    open_image,
    resolve_inside,
    shows_nothing,
    unsafe_path_reason,
)
from adcraft.render.cutout import CutoutConfig, ensure_cutout
from tests.market.market_cases import gif_bytes, png_header_only, truncated_png
from tests.market.market_drafts import png_bytes


@pytest.mark.parametrize("path, reason", [
    ("", "empty"),
    ("/abs/p.png", "absolute"),
    ("C:/p.png", "absolute"),
    ("images\\p.png", "backslash"),
    ("../p.png", "'..'"),
    ("images/../../p.png", "'..'"),
    ("a\x00b.png", "NUL"),
])
def test_unsafe_paths_are_named(path, reason):
    assert reason in unsafe_path_reason(path)


def test_plain_relative_paths_are_fine():
    assert unsafe_path_reason("images/a b/p.png") is None
    assert unsafe_path_reason("./p.png") is None


def test_resolve_follows_links_inside_and_refuses_links_outside(tmp_path):
    root = tmp_path / "market"
    (root / "images").mkdir(parents=True)
    (root / "images" / "p.png").write_bytes(png_bytes())
    os.symlink(root / "images" / "p.png", root / "inside.png")
    os.symlink(tmp_path, root / "up")
    assert resolve_inside(root, "inside.png") == (root / "images" / "p.png").resolve()
    # what counts is where a path ends up: out through a link and back in is inside
    assert resolve_inside(root, "up/market/images/p.png") == (root / "images" / "p.png").resolve()
    with pytest.raises(InputError, match="symbolic link leads outside"):
        resolve_inside(root, "up/secret.png")
    with pytest.raises(InputError, match="'..'"):
        resolve_inside(root, "images/../../secret.png")


def test_open_image_returns_a_decoded_image_detached_from_the_file(tmp_path):
    path = tmp_path / "p.webp"
    path.write_bytes(png_bytes((7, 3), fmt="WEBP"))
    image = open_image(path)
    path.unlink()
    assert image.size == (7, 3) and image.format == "WEBP"
    assert image.getpixel((0, 0))[:3] == pytest.approx((200, 40, 40), abs=8)


@pytest.mark.parametrize("data, message", [
    (b"hello, I am text", "not an image file"),
    (truncated_png(), "truncated or corrupt"),
    (gif_bytes(), "GIF image"),
])
def test_open_image_refuses_bad_files(tmp_path, data, message):
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    with pytest.raises(InputError, match=message):
        open_image(path)


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(20_000, 20_000))  # 400 Mpx: 1.6 GB if decoded as RGBA
    start = time.perf_counter()
    with pytest.raises(InputError, match="pixel limit|over the limit"):
        open_image(path)
    assert time.perf_counter() - start < 1.0
    small = tmp_path / "small.png"
    small.write_bytes(png_bytes((10, 10)))
    with pytest.raises(InputError, match="100 pixels, over the limit of 99"):
        open_image(small, ImageLimits(max_pixels=99))
    assert open_image(small, ImageLimits(max_pixels=100)).size == (10, 10)


def test_image_problems_checks_many_files_once_each(tmp_path):
    good = png_bytes((4, 4))
    for index in range(120):
        (tmp_path / f"{index}.png").write_bytes(good if index % 10 else b"broken")
    paths = [f"{index}.png" for index in range(120)] * 2 + ["missing.png", "/abs.png"]
    found = image_problems(tmp_path, paths)
    assert sorted(found) == sorted([f"{i}.png" for i in range(0, 120, 10)]
                                   + ["missing.png", "/abs.png"])
    assert found == image_problems(tmp_path, paths, workers=1)


def test_image_limits_refuse_a_non_positive_limit():
    with pytest.raises(ValueError):
        ImageLimits(max_pixels=0)


def test_png_header_only_really_claims_its_size(tmp_path):
    path = tmp_path / "h.png"
    path.write_bytes(png_header_only(300, 200))
    with Image.open(path) as header:
        assert header.size == (300, 200)


_PHOTOS = {
    "clear_rgba": Image.new("RGBA", (20, 12), (200, 10, 10, 0)),
    "clear_la": Image.new("LA", (20, 12), (90, 0)),
    "plain_rgb": Image.new("RGB", (20, 12), (250, 250, 250)),
    "plain_opaque_rgba": Image.new("RGBA", (20, 12), (30, 30, 30, 255)),
    "plain_grey": Image.new("L", (20, 12), 128),
    "half_transparent": Image.new("RGBA", (20, 12), (30, 30, 30, 128)),
    "cut_out": Image.new("RGBA", (20, 12), (0, 0, 0, 0)),
    "on_plain_background": Image.new("RGB", (20, 12), (250, 250, 250)),
}
_PHOTOS["cut_out"].paste((200, 10, 10, 255), (5, 3, 12, 9))
_PHOTOS["on_plain_background"].paste((20, 60, 200), (5, 3, 12, 9))
_NOTHING = {"clear_rgba", "clear_la", "plain_rgb", "plain_opaque_rgba", "plain_grey"}


@pytest.mark.parametrize("name", sorted(_PHOTOS))
def test_a_photo_that_shows_nothing_is_one_the_renderer_cannot_cut_out(name: str):
    image = _PHOTOS[name]
    assert (shows_nothing(image) is not None) == (name in _NOTHING)
    if name in _NOTHING:  # whatever the cut-out's settings, nothing is left
        for config in (CutoutConfig(), CutoutConfig(tolerance=0), CutoutConfig(min_plain_border=1.0)):
            with pytest.raises(InputError, match="no visible product"):
                ensure_cutout(image, config)
    else:
        assert ensure_cutout(image).getchannel("A").getbbox() is not None


def test_image_problems_refuse_only_product_photos_that_show_nothing(tmp_path):
    (tmp_path / "plain.png").write_bytes(png_bytes((8, 8), (9, 9, 9, 255)))
    assert image_problems(tmp_path, ["plain.png"]) == {}  # a creative or a background may be plain
    found = image_problems(tmp_path, ["plain.png"], products=frozenset({"plain.png"}))
    assert "shows nothing: it is one plain colour" in found["plain.png"]


def test_an_image_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes((8, 8)))
    monkeypatch.setattr("adcraft.market.images.MAX_IMAGE_BYTES", path.stat().st_size - 1)
    with pytest.raises(InputError, match="over the limit of"):
        open_image(path)
