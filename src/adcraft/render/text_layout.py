"""Fitting text into a box, and keeping it legible.

``fit_text`` finds the largest font size in ``[min_px, max_px]`` at which the text, wrapped at
word boundaries, fits the box; only if no size fits that way are words wider than the box broken
between characters. Fitting
is checked on the glyphs' ink boxes, not on nominal line heights, so nothing is ever drawn outside
the box. If even ``min_px`` does not fit, the text is cut after the last line that fits and ends
with an ellipsis; if not even one line fits, the block is empty.

Any text is accepted (:func:`visible_text`): every Unicode line break breaks a line, control
characters are dropped, and a text with nothing visible (zero-width spaces, direction marks) is
the empty block. The work is bounded by the box, not by the text: line breaks and cuts are found
by bisection, wrapping stops at the most lines the box can hold, and only as many characters are
read as can fit at ``min_px`` (a longer text ends with the ellipsis).

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
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw, ImageFont

from adcraft.render.fonts import resolve_font

RGB = tuple[int, int, int]
ColorLike = tuple[float, float, float] | RGB
Box = tuple[int, int, int, int]

ELLIPSIS = "\u2026"
_REMOVED = frozenset({"Cc", "Cs"})  # control characters (line breaks are handled first), lone surrogates
_INVISIBLE = frozenset({"Cf", "Zs", "Zl", "Zp", "Cc"})  # format characters (zero-width, joiners, marks of direction)
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


def visible_text(text: str) -> str:
    """``text`` as it is laid out: every line break (``\\r\\n``, ``\\r``, U+2028, U+2029, ...) a
    ``\\n``, tabs as spaces, other control characters and lone surrogates removed, the ends stripped
    of white space; "" when nothing visible is left (only white space and invisible format
    characters such as zero-width spaces, joiners or direction marks).

    FreeType/Raqm cannot measure most of the removed characters (``raqm_layout() failed``), and a
    text of invisible characters alone has no ink to place or to judge the contrast of.
    """
    lines = []
    for line in text.replace("\t", " ").splitlines():
        lines.append("".join(ch for ch in line if unicodedata.category(ch) not in _REMOVED))
    shown = "\n".join(lines).strip()
    if all(ch.isspace() or unicodedata.category(ch) in _INVISIBLE for ch in shown):
        return ""
    return shown


def _longest(fits: Callable[[int], bool], upper: int) -> int:
    """The largest ``n`` in ``[0, upper]`` with ``fits(n)``, for ``fits`` true up to some ``n`` and
    false after: doubling from 1, then bisection, so ``O(log n)`` calls, none asking about more than
    twice the answer. Should ``fits`` not be monotone (kerning, shaping), the answer is still one it
    accepted, or 0."""
    good, bad = 0, upper + 1
    probe = 1
    while probe < bad:
        if not fits(probe):
            bad = probe
            break
        good = probe
        probe *= 2
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return good


def _pitch(font: ImageFont.FreeTypeFont, line_spacing: float) -> int:
    ascent, descent = font.getmetrics()
    return max(1, round((ascent + descent) * line_spacing))


def _line_limits(font: ImageFont.FreeTypeFont, box_w: int, box_h: int, line_spacing: float) -> tuple[int, int]:
    """At most how many lines, and characters per line, can fit the box in ``font``.

    The ``i``-th line's ink starts ``i`` pitches below the first's, so more than ``box_h // pitch + 1``
    lines never fit. A line is given at most ``2 * box_w + 2`` characters: only glyphs narrower than
    half a pixel (zero-width marks and joiners, or any glyph at a size of a pixel or two) could fit
    more, and those are cut rather than measured without end.
    """
    return box_h // _pitch(font, line_spacing) + 1, 2 * box_w + 2


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int, split_words: bool, max_lines: int,
          max_chars: int) -> tuple[list[str], bool] | None:
    """Greedy word wrap by advance width, keeping hard line breaks: the lines and whether the text
    ends in them (False once more than ``max_lines`` lines are made: the rest cannot fit anyway).

    Each line takes the most words that fit, found by :func:`_longest` (``O(log k)`` measurements
    of at most ``max_chars`` characters for a line of ``k`` words), so wrapping costs
    ``O(lines log n)`` measurements, not one per character. A word wider than ``width`` is split
    between characters (as many as fit, at least one a line) if ``split_words``; otherwise the text
    does not wrap at this size and the result is None.
    """

    def fits(line: str) -> bool:
        return len(line) <= max_chars and font.getlength(line) <= width

    lines: list[str] = []
    for paragraph in text.split("\n"):
        words = paragraph.split()
        i = 0
        while i < len(words):
            if len(lines) >= max_lines:
                return lines, False
            count = _words_that_fit(words, i, fits, max_chars)
            if count:
                lines.append(" ".join(words[i : i + count]))
                i += count
                continue
            word = words[i]  # wider than the box on its own
            if not split_words:
                return None
            cut = max(1, _longest(lambda n, word=word: fits(word[:n]), len(word) - 1))
            lines.append(word[:cut])
            if cut < len(word):
                words[i] = word[cut:]
            else:  # one character wider than the box: its line will not fit
                i += 1
    return lines, True


def _words_that_fit(words: list[str], start: int, fits: Callable[[str], bool], max_chars: int) -> int:
    """How many words from ``start`` on fit one line; a line longer than ``max_chars`` is not measured."""

    def line_fits(count: int) -> bool:
        line = words[start : start + count]
        return sum(len(word) for word in line) + count - 1 <= max_chars and fits(" ".join(line))

    return _longest(line_fits, len(words) - start)


def _layout(lines: list[str], font: ImageFont.FreeTypeFont, box_w: int, box_h: int,
            line_spacing: float) -> tuple[list[tuple[int, int]], Box] | None:
    """Centred positions and the ink box of ``lines`` in the box, or None if they do not fit."""
    pitch = _pitch(font, line_spacing)
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
    """The most lines that fit, the last one cut to end with an ellipsis; None if only "…" would be
    left. Both the number of lines and the cut are bisected (more lines or characters never take
    less room), so this costs ``O(log)`` layouts, not one per character."""

    def with_ellipsis(head: list[str], last: str) -> list[str]:
        return head + [last.rstrip(" .,;:-") + ELLIPSIS]

    count = _longest(lambda n: _layout(lines[: n - 1] + [ELLIPSIS], font, box_w, box_h, line_spacing)
                     is not None, len(lines))
    if count == 0:
        return None
    head, last = lines[: count - 1], lines[count - 1]
    keep = _longest(lambda n: _layout(with_ellipsis(head, last[:n]), font, box_w, box_h, line_spacing)
                    is not None, len(last))
    if not head and not last[:keep].strip():
        return None
    return _block(with_ellipsis(head, last[:keep]), font, size, box_w, box_h, line_spacing, truncated=True)


def fit_text(text: str, family: str | None, box_w: int, box_h: int, max_px: int, min_px: int,
             bold: bool = False, line_spacing: float = 1.1) -> TextBlock:
    """Wrap and size ``text`` to fit a ``box_w`` x ``box_h`` box (see the module docstring).

    Only a bounded prefix of ``text`` is read: no more characters than can fit the box at
    ``min_px`` (:func:`_line_limits`); a longer text is truncated with an ellipsis. The work is
    then bounded by the box, not by the text's length.
    """
    box_w, box_h = int(box_w), int(box_h)
    min_px = max(1, int(min_px))
    max_px = max(min_px, int(max_px))
    if not text or box_w <= 0 or box_h <= 0:
        return _empty(box_w, box_h)
    max_lines, max_chars = _line_limits(resolve_font(family, min_px, bold), box_w, box_h, line_spacing)
    readable = max_lines * (max_chars + 1)
    return _fit_text(text[:readable], len(text) > readable, family, box_w, box_h, max_px, min_px, bold,
                     line_spacing)


def _empty(box_w: int, box_h: int) -> TextBlock:
    return TextBlock((), None, 0, (), (0, 0, 0, 0), (box_w, box_h))


@functools.lru_cache(maxsize=1024)
def _fit_text(text: str, cut: bool, family: str | None, box_w: int, box_h: int, max_px: int, min_px: int,
              bold: bool, line_spacing: float) -> TextBlock:
    """:func:`fit_text` on a prefix of at most the readable length; ``cut``: the text went on."""
    text = visible_text(text)
    if not text:
        return _empty(box_w, box_h)

    def wrapped(size: int, split_words: bool) -> tuple[ImageFont.FreeTypeFont, tuple[list[str], bool] | None]:
        font = resolve_font(family, size, bold)
        return font, _wrap(text, font, box_w, split_words, *_line_limits(font, box_w, box_h, line_spacing))

    def attempt(size: int, split_words: bool) -> TextBlock | None:
        font, result = wrapped(size, split_words)
        if result is None:
            return None
        lines, complete = result
        return _block(lines, font, size, box_w, box_h, line_spacing) if complete and lines else None

    # Whole words first; splitting words between characters only when no size fits otherwise.
    for split_words in (False, True) if not cut else ():
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
        return _shown(best)
    font, result = wrapped(min_px, split_words=True)
    lines = result[0] if result is not None else []
    block = _truncated(lines, font, min_px, box_w, box_h, line_spacing) if lines else None
    return _shown(block) if block is not None else _empty(box_w, box_h)


def _shown(block: TextBlock) -> TextBlock:
    """``block``, or the empty block when its ink has no area (glyphs that draw nothing)."""
    left, top, right, bottom = block.ink_box
    return block if right > left and bottom > top else _empty(*block.box_size)


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
    if len(colors) == 0:  # nothing behind: every colour reads (see _worst_contrast)
        return ()
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
