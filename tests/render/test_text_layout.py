from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from adcraft.render.text_layout import (
    ELLIPSIS,
    TextBlock,
    backdrop_colors,
    contrast_ratio,
    fit_text,
    legibility_plate,
    legible_color,
)

LONG = ("Ice cold for 24 hours and hot for 12, made from recycled steel that lasts a lifetime; "
        "the only bottle you will ever need on the trail, at the desk or at the gym. ") * 4


def _ink_outside_box(block: TextBlock, box_w: int, box_h: int, margin: int = 40) -> tuple[int, int]:
    """Draw the block on a larger blank image; count inked pixels outside and inside the box."""
    image = Image.new("RGB", (box_w + 2 * margin, box_h + 2 * margin), (0, 0, 0))
    block.draw(ImageDraw.Draw(image), (margin, margin), fill=(255, 255, 255))
    ink = np.asarray(image).max(axis=2) > 0
    inside = int(ink[margin : margin + box_h, margin : margin + box_w].sum())
    return int(ink.sum()) - inside, inside


@pytest.mark.parametrize(("text", "box_w", "box_h"), [
    ("Hydrate in style", 300, 60), ("Hydrate in style", 90, 120), (LONG[:300], 400, 90),
    ("Qjgy|ÅÉÎ", 120, 40), ("Supercalifragilisticexpialidocious", 80, 100), (LONG, 200, 50),
])
def test_text_never_leaves_its_box(text: str, box_w: int, box_h: int) -> None:
    block = fit_text(text, "sans", box_w, box_h, 60, 12, True)
    assert not block.empty
    left, top, right, bottom = block.ink_box
    assert 0 <= left <= right <= box_w and 0 <= top <= bottom <= box_h
    outside, inside = _ink_outside_box(block, box_w, box_h)
    assert outside == 0 and inside > 0


def test_short_text_in_a_big_box_gets_the_largest_size() -> None:
    assert fit_text("Sale", "sans", 500, 200, 48, 12).size == 48


def test_bigger_box_never_gives_smaller_text() -> None:
    sizes = [fit_text("The bottle that keeps up with you", "sans", w, 80, 64, 10).size for w in (120, 200, 320, 480)]
    assert sizes == sorted(sizes)


def test_whole_words_are_preferred_to_split_ones() -> None:
    block = fit_text("Hydrate in style", "serif", 150, 150, 56, 14, True)
    assert set(" ".join(block.lines).split()) == {"Hydrate", "in", "style"}


def test_text_that_cannot_fit_at_min_size_is_truncated_with_an_ellipsis() -> None:
    block = fit_text(LONG, "sans", 200, 50, 40, 14)
    assert block.truncated and block.size == 14
    assert block.lines[-1].endswith(ELLIPSIS)
    assert len(" ".join(block.lines)) < len(LONG)


def test_box_too_small_for_a_line_gives_an_empty_block() -> None:
    block = fit_text("Hydrate in style", "sans", 200, 5, 40, 14)
    assert block.empty and block.lines == ()
    assert fit_text("   ", "sans", 200, 100, 40, 14).empty


def test_contrast_ratio_follows_wcag() -> None:
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast_ratio((120, 50, 200), (120, 50, 200)) == pytest.approx(1.0)
    # WCAG's worked value: #777777 on white is about 4.48:1
    assert contrast_ratio((0x77, 0x77, 0x77), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(
    "bg", [(255, 255, 255), (240, 230, 200), (0, 0, 128), (20, 20, 20), (120, 120, 120), (255, 0, 0)]
)
def test_legible_color_contrasts_with_any_background(bg: tuple[int, int, int]) -> None:
    assert contrast_ratio(legible_color(bg), bg) >= 4.5


def test_plate_only_when_the_requested_colour_is_unreadable() -> None:
    assert legibility_plate((0, 0, 0), (250, 250, 250)) is None
    plate = legibility_plate((255, 255, 255), (240, 240, 235))
    assert plate is not None and 0 < plate.opacity < 1
    blend = tuple(round(b * (1 - plate.opacity) + p * plate.opacity)
                  for b, p in zip((240, 240, 235), plate.color))
    assert contrast_ratio((255, 255, 255), blend) >= 3.0  # type: ignore[arg-type]


def test_busy_backdrop_is_judged_by_its_worst_spots() -> None:
    stripes = np.zeros((20, 20, 3), dtype=np.uint8)
    stripes[:, ::2] = (0, 0, 128)
    stripes[:, 1::2] = (255, 255, 255)
    backdrop = backdrop_colors(stripes)
    assert legibility_plate(legible_color(backdrop), backdrop) is not None  # no colour reads on both
    flat = backdrop_colors(np.full((20, 20, 3), 250, dtype=np.uint8))
    assert legibility_plate(legible_color(flat), flat) is None
