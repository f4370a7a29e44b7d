from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from adcraft.errors import InputError
from adcraft.render import text_layout
from adcraft.render.text_layout import (
    ELLIPSIS,
    TextBlock,
    backdrop_colors,
    contrast_ratio,
    fit_text,
    legibility_plate,
    legible_color,
    visible_text,
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


INVISIBLE = ["\u200b\u200b", "\u200f", "\u200e\u202b\u202c", "\ufeff \u2060", " \u00a0\t\u3000", "\r\n\u2029\u2028",
             "\u200d\u200c", "\x00\x07\ud800"]


@pytest.mark.parametrize("text", INVISIBLE)
def test_text_with_nothing_visible_lays_out_as_no_text(text: str) -> None:
    assert visible_text(text) == ""
    block = fit_text(text, "sans", 300, 80, 56, 14, True)
    assert block.empty and block.font is None


@pytest.mark.parametrize("text", ["Hydrate\rin\x85style\u2029now", "Hydrate\x1cin\x1dstyle\x1enow",
                                  "Hydrate\r\nin\u2028style\x0bnow"])
def test_every_kind_of_line_break_is_a_line_break(text: str) -> None:
    """FreeType/Raqm cannot measure CR, NEL, U+2029 or the separators U+001C-1E; they break lines instead."""
    block = fit_text(text, "sans", 400, 300, 30, 10)
    assert block.lines == ("Hydrate", "in", "style", "now")


@pytest.mark.parametrize("text", ["\u0301\u0301", "\U0001F600\U0001FAE0", "e" + "\u0301" * 3000,
                                  "\u05e9\u05dc\u05d5\u05dd \u200f!",
                                  "\u0645\u0631\u062d\u0628\u0627", "\ue000\U0010fffd", "x\u200by"])
def test_marks_emoji_the_font_lacks_and_right_to_left_text_are_drawn_inside_the_box(text: str) -> None:
    block = fit_text(text, "sans", 200, 60, 40, 10, True)
    assert not block.empty
    outside, inside = _ink_outside_box(block, 200, 60)
    assert outside == 0 and inside > 0


def test_text_drawing_nothing_does_not_count_as_text() -> None:
    """Glyphs that draw no ink although they are not white space (the blank braille pattern) give the empty block."""
    assert visible_text("\u2800 \u2800") == "\u2800 \u2800"
    assert fit_text("\u2800 \u2800", "sans", 300, 80, 56, 14).empty


EDGE_CHARACTERS = list("\u200b\u200c\u200d\u200e\u200f\u202e\u2066\u2069\ufeff\u00ad\u0301\u0489\r\n\t\x85\u2028\u2029"
                       "\x00\x1c \u00a0\u3000\ufdfd\u2e3b\U0001F600\U0001F469\u200d\U0001F4BB\ue000Wi.")


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(text=st.text(st.one_of(st.characters(exclude_categories=()), st.sampled_from(EDGE_CHARACTERS)), max_size=80),
       box_w=st.integers(-5, 320), box_h=st.integers(-5, 120), min_px=st.integers(1, 30), extra_px=st.integers(0, 40))
def test_any_text_fits_its_box_or_is_refused(text: str, box_w: int, box_h: int, min_px: int, extra_px: int) -> None:
    """For any text, the layout fits the box (its ink and every drawn pixel) or is refused with InputError."""
    try:
        block = fit_text(text, "sans", box_w, box_h, min_px + extra_px, min_px, True)
    except InputError:
        return
    if block.empty:
        return
    left, top, right, bottom = block.ink_box
    assert 0 <= left < right <= box_w and 0 <= top < bottom <= box_h
    assert block.font is not None and min_px <= block.size <= min_px + extra_px
    assert _ink_outside_box(block, box_w, box_h)[0] == 0


class _CountingFont:
    """Counts the calls of a font's measuring methods, and the characters they were asked to measure."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = self.characters = 0
        for name in ("getlength", "getbbox"):
            measure = getattr(ImageFont.FreeTypeFont, name)
            monkeypatch.setattr(ImageFont.FreeTypeFont, name, self._counted(measure))

    def _counted(self, measure):  # type: ignore[no-untyped-def]
        def counted(font, text, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.calls += 1
            self.characters += len(text)
            return measure(font, text, *args, **kwargs)
        return counted


@pytest.mark.parametrize("spaced", [False, True])
def test_fitting_a_long_text_measures_o_n_log_n_not_every_prefix(monkeypatch: pytest.MonkeyPatch, spaced: bool) -> None:
    """5,000 characters (one word, or words) in a title box: the work is near-linear in the text's length,
    not one growing prefix per character as a character-by-character line break would measure."""
    n = 5000
    word = "Waterbottle " if spaced else "Waterbottle"
    text = (word * n)[:n]
    text_layout._fit_text.cache_clear()
    counter = _CountingFont(monkeypatch)
    block = fit_text(text, "sans", 460, 90, 56, 14, True)
    assert block.truncated and block.lines[-1].endswith(ELLIPSIS) and block.size == 14
    assert counter.calls <= n * math.log2(n) / 10
    assert counter.characters <= n * math.log2(n)


def test_a_text_far_longer_than_its_box_is_read_only_as_far_as_it_can_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1,000,000-character title is cut with an ellipsis after measuring a bounded prefix of it."""
    text_layout._fit_text.cache_clear()
    counter = _CountingFont(monkeypatch)
    block = fit_text("Waterbottle" * 100_000, "sans", 460, 90, 56, 14, True)
    assert block.truncated and block.lines[-1].endswith(ELLIPSIS)
    assert counter.characters <= 20_000
