"""Fitting text into a box, and keeping it legible.

``fit_text`` finds the largest font size in ``[min_px, max_px]`` at which the text, wrapped at
word boundaries, fits the box; only if no size fits that way are words wider than the box broken
between characters. Fitting
is checked on the glyphs' ink boxes, not on nominal line heights, so nothing is ever drawn outside
the box. If even ``min_px`` does not fit, the text is cut after the last line that fits and ends
with an ellipsis; if not even one line fits, the block is empty.

Legibility follows WCAG 2.x: relative luminance ``L = 0.2126 R + 0.7152 G + 0.0722 B`` of
linearised sRGB channels (``c/12.92`` if ``c <= 0.04045`` else ``((c+0.055)/1.055)^2.4``), and the
contrast ratio ``(L_light + 0.05) / (L_dark + 0.05)``, from 1 to 21. What is behind text is
summarised by :func:`backdrop_colors` (the mean, darkest and lightest pixels) so that a busy
texture (stripes, wood) is judged by its worst spots, not its average. When the text colour's
contrast with any of them is below ``min_contrast`` (3, WCAG's threshold for large text),
:func:`legibility_plate` gives a semi-transparent plate (black or white, the one farther from the
text colour) to draw behind the text, with the least opacity that restores the contrast.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw, ImageFont

from adcraft.render.fonts import resolve_font

RGB = tuple[int, int, int]
ColorLike = tuple[float, float, float] | RGB
Box = tuple[int, int, int, int]

ELLIPSIS = "\u2026"
_DARK: RGB = (0, 0, 0)
_LIGHT: RGB = (255, 255, 255)


@dataclass(frozen=True)
class TextBlock:
    """Text laid out inside a box of ``box_size``; coordinates are relative to the box's top-left.

    positions: where each line is drawn with anchor "la" (left, ascender).
    ink_box: the union of the lines' ink boxes, within ``(0, 0, *box_size)``.
    """

    lines: tuple[str, ...]
    font: ImageFont.FreeTypeFont | None
    size: int
    positions: tuple[tuple[int, int], ...]
    ink_box: Box
    box_size: tuple[int, int]
    truncated: bool = False

    @property
    def empty(self) -> bool:
        return not self.lines

    def draw(self, draw: ImageDraw.ImageDraw, origin: tuple[int, int], fill: RGB) -> None:
        """Draw the lines with the box's top-left at ``origin``."""
        if self.font is None:
            return
        ox, oy = origin
        for line, (x, y) in zip(self.lines, self.positions):
            draw.text((ox + x, oy + y), line, font=self.font, fill=fill, anchor="la")


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int, split_words: bool) -> list[str] | None:
    """Greedy word wrap by advance width, keeping hard line breaks.

    A word wider than ``width`` is split between characters if ``split_words``; otherwise the
    text does not wrap at this size and the result is None.
    """
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split():
            trial = f"{current} {word}" if current else word
            if font.getlength(trial) <= width:
                current = trial
                continue
            if current:
                lines.append(current)
            current = ""
            if font.getlength(word) > width and not split_words:
                return None
            while font.getlength(word) > width and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and font.getlength(word[:cut]) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        if current:
            lines.append(current)
    return lines


def _layout(lines: list[str], font: ImageFont.FreeTypeFont, box_w: int, box_h: int,
            line_spacing: float) -> tuple[list[tuple[int, int]], Box] | None:
    """Centred positions and the ink box of ``lines`` in the box, or None if they do not fit."""
    ascent, descent = font.getmetrics()
    pitch = max(1, round((ascent + descent) * line_spacing))
    boxes = [font.getbbox(line, anchor="la") for line in lines]
    top = min(i * pitch + b[1] for i, b in enumerate(boxes))
    bottom = max(i * pitch + b[3] for i, b in enumerate(boxes))
    ink_h = bottom - top
    if ink_h > box_h or any(b[2] - b[0] > box_w for b in boxes):
        return None
    y0 = (box_h - ink_h) // 2 - top
    positions = [((box_w - (b[2] - b[0])) // 2 - b[0], y0 + i * pitch) for i, b in enumerate(boxes)]
    left = min(x + b[0] for (x, _), b in zip(positions, boxes))
    right = max(x + b[2] for (x, _), b in zip(positions, boxes))
    return positions, (left, y0 + top, right, y0 + bottom)


def _block(lines: list[str], font: ImageFont.FreeTypeFont, size: int, box_w: int, box_h: int,
           line_spacing: float, truncated: bool = False) -> TextBlock | None:
    fitted = _layout(lines, font, box_w, box_h, line_spacing)
    if fitted is None:
        return None
    positions, ink = fitted
    return TextBlock(tuple(lines), font, size, tuple(positions), ink, (box_w, box_h), truncated)


def _truncated(lines: list[str], font: ImageFont.FreeTypeFont, size: int, box_w: int, box_h: int,
               line_spacing: float) -> TextBlock | None:
    """The most lines that fit, the last one ending with an ellipsis; None if only "…" would be left."""
    for count in range(len(lines), 0, -1):
        head, last = lines[: count - 1], lines[count - 1]
        if _layout(head + [ELLIPSIS], font, box_w, box_h, line_spacing) is None:
            continue  # too many lines even with the last one cut to the bare ellipsis
        while head or last.strip():  # ends at the latest with the bare ellipsis, which fits
            block = _block(head + [last.rstrip(" .,;:-") + ELLIPSIS], font, size, box_w, box_h,
                           line_spacing, truncated=True)
            if block is not None:
                return block
            last = last[:-1]
    return None


@functools.lru_cache(maxsize=1024)
def fit_text(text: str, family: str | None, box_w: int, box_h: int, max_px: int, min_px: int,
             bold: bool = False, line_spacing: float = 1.1) -> TextBlock:
    """Wrap and size ``text`` to fit a ``box_w`` x ``box_h`` box (see the module docstring)."""
    box_w, box_h = int(box_w), int(box_h)
    min_px = max(1, int(min_px))
    max_px = max(min_px, int(max_px))
    empty = TextBlock((), None, 0, (), (0, 0, 0, 0), (box_w, box_h))
    text = (text or "").strip()
    if not text or box_w <= 0 or box_h <= 0:
        return empty

    def attempt(size: int, split_words: bool) -> TextBlock | None:
        font = resolve_font(family, size, bold)
        lines = _wrap(text, font, box_w, split_words)
        return _block(lines, font, size, box_w, box_h, line_spacing) if lines else None

    # Whole words first; splitting words between characters only when no size fits otherwise.
    for split_words in (False, True):
        best = attempt(min_px, split_words)
        if best is None:
            continue
        low, high = min_px, max_px  # invariant: `low` fits; search the largest size that does
        while low < high:
            mid = (low + high + 1) // 2
            block = attempt(mid, split_words)
            if block is not None:
                low, best = mid, block
            else:
                high = mid - 1
        return best
    font = resolve_font(family, min_px, bold)
    lines = _wrap(text, font, box_w, split_words=True) or []
    return _truncated(lines, font, min_px, box_w, box_h, line_spacing) or empty


def relative_luminance(rgb: RGB) -> float:
    """WCAG 2.x relative luminance of an sRGB colour (0 for black, 1 for white)."""
    def linear(c: int) -> float:
        v = c / 255.0
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(int(c)) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: RGB, b: RGB) -> float:
    """WCAG 2.x contrast ratio ``(L1 + 0.05) / (L2 + 0.05)`` with ``L1 >= L2``; from 1 to 21."""
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def _linear_luminance(rgb: np.ndarray) -> np.ndarray:
    """Vectorised :func:`relative_luminance` over the last axis of a uint8/float RGB array."""
    v = np.asarray(rgb, dtype=np.float32) / 255.0
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def backdrop_colors(region: np.ndarray) -> tuple[ColorLike, ...]:
    """What text drawn over ``region`` (HxWx3) must stand out from: its mean colour and its darkest
    and lightest pixels (the 5th and 95th luminance percentiles), so busy textures count as busy."""
    pixels = np.asarray(region, dtype=np.float32).reshape(-1, 3)
    if pixels.shape[0] == 0:
        return ()
    lum = _linear_luminance(pixels)
    order = np.argsort(lum, kind="stable")
    dark = pixels[order[int(0.05 * (len(order) - 1))]]
    light = pixels[order[int(0.95 * (len(order) - 1))]]
    mean = pixels.mean(axis=0)
    return tuple((float(c[0]), float(c[1]), float(c[2])) for c in (mean, dark, light))


def _worst_contrast(text_rgb: ColorLike, backdrop: Sequence[ColorLike]) -> float:
    text = _rounded(text_rgb)
    return min((contrast_ratio(text, _rounded(b)) for b in backdrop), default=21.0)


def _rounded(color: ColorLike) -> RGB:
    return (int(round(color[0])), int(round(color[1])), int(round(color[2])))


def legible_color(bg_rgb_mean: ColorLike | Sequence[ColorLike]) -> RGB:
    """Black or white, whichever contrasts more with the background colour.

    Also accepts several backdrop colours (see :func:`backdrop_colors`): then the one whose worst
    contrast over them is higher. Black or white always reaches at least 4.58:1 against one colour.
    """
    backdrop = _as_backdrop(bg_rgb_mean)
    return max((_DARK, _LIGHT), key=lambda c: _worst_contrast(c, backdrop))


def _as_backdrop(colors: ColorLike | Sequence[ColorLike]) -> tuple[ColorLike, ...]:
    first = colors[0]
    if isinstance(first, (int, float, np.integer, np.floating)):
        return (colors,)  # type: ignore[return-value]
    return tuple(colors)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Plate:
    """A semi-transparent plate behind text: its colour and opacity (0-1)."""

    color: RGB
    opacity: float


def legibility_plate(text_rgb: ColorLike, behind: ColorLike | Sequence[ColorLike], min_contrast: float = 3.0,
                     max_opacity: float = 0.85) -> Plate | None:
    """The faintest plate that lifts the text's contrast to ``min_contrast``, or None if not needed.

    ``behind`` is the colour behind the text, or several (see :func:`backdrop_colors`; all must
    reach the contrast). The plate is black or white, whichever contrasts more with the text;
    its opacity rises in steps of 0.05 from 0.3 until every blend ``behind*(1-a) + plate*a``
    reaches the contrast, capped at ``max_opacity``.
    """
    backdrop = _as_backdrop(behind)
    if _worst_contrast(text_rgb, backdrop) >= min_contrast:
        return None
    plate_rgb = legible_color(text_rgb)
    opacity = 0.3
    while opacity < max_opacity:
        blends = [tuple(b * (1 - opacity) + p * opacity for b, p in zip(colour, plate_rgb)) for colour in backdrop]
        if _worst_contrast(text_rgb, blends) >= min_contrast:  # type: ignore[arg-type]
            break
        opacity += 0.05
    return Plate(plate_rgb, round(min(opacity, max_opacity), 2))
