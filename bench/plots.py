"""PNG line plots for the benchmark scripts, drawn with Pillow (axes, ticks, legend, labelled lines)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

# Tableau 10: distinct, colour-blind-friendlier hues.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
FONT_FILES = ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@dataclass(frozen=True)
class LineSeries:
    """One labelled line; ``lower``/``upper`` (optional) draw a translucent band around it."""

    name: str
    x: np.ndarray
    y: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans when installed, else Pillow's built-in font at ``size``."""
    for name in FONT_FILES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def thousands(value: float) -> str:
    """Tick label: 0, 20k, 1.5M, or the number itself below 1000."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _spread(positions: list[float], gap: float, low: float, high: float) -> list[float]:
    """Move label positions (sorted ascending) apart by at least ``gap``, staying within [low, high]."""
    out = list(positions)
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + gap)
    overflow = out[-1] - high if out else 0.0
    if overflow > 0:
        out = [p - overflow for p in out]
        for i in range(len(out) - 2, -1, -1):
            out[i] = min(out[i], out[i + 1] - gap)
    return [max(p, low) for p in out]


def line_plot(
    path: Path,
    series: Sequence[LineSeries],
    title: str,
    x_label: str,
    y_label: str,
    size: tuple[int, int] = (1400, 860),
    x_format: Callable[[float], str] = thousands,
    y_format: Callable[[float], str] = thousands,
    end_format: Callable[[float], str] | None = None,
) -> None:
    """Draw ``series`` as lines on shared axes and save a PNG at ``path``.

    The legend (upper left) lists the series in the order of their last value, highest first, so it
    reads in the same order as the lines' ends; with ``end_format`` each line's last value is written
    at its right end too.
    """
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    title_font, label_font, tick_font, legend_font = load_font(28), load_font(22), load_font(19), load_font(19)
    left, right, top, bottom = 120, width - (150 if end_format else 40), 80, height - 100

    x_max = max(float(np.max(s.x)) for s in series)
    x_min = min(float(np.min(s.x)) for s in series)
    tops = [float(np.nanmax(s.upper if s.upper is not None else s.y)) for s in series]
    bottoms = [float(np.nanmin(s.lower if s.lower is not None else s.y)) for s in series]
    x_ticks = nice_ticks(x_min, x_max)
    y_ticks = nice_ticks(min(0.0, min(bottoms)), max(tops))
    x_lo, x_hi, y_lo, y_hi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def px(x: np.ndarray | float) -> np.ndarray | float:
        return left + (np.asarray(x, dtype=float) - x_lo) / (x_hi - x_lo) * (right - left)

    def py(y: np.ndarray | float) -> np.ndarray | float:
        return bottom - (np.asarray(y, dtype=float) - y_lo) / (y_hi - y_lo) * (bottom - top)

    for tick in y_ticks:  # grid and y ticks
        y = float(py(tick))
        draw.line([(left, y), (right, y)], fill="#e6e6e6", width=1)
        draw.line([(left - 8, y), (left, y)], fill="black", width=2)
        draw.text((left - 14, y), y_format(tick), fill="black", font=tick_font, anchor="rm")
    for tick in x_ticks:
        x = float(px(tick))
        draw.line([(x, top), (x, bottom)], fill="#f0f0f0", width=1)
        draw.line([(x, bottom), (x, bottom + 8)], fill="black", width=2)
        draw.text((x, bottom + 14), x_format(tick), fill="black", font=tick_font, anchor="mt")

    order = sorted(range(len(series)), key=lambda i: -float(series[i].y[-1]))
    colours = {i: PALETTE[i % len(PALETTE)] for i in range(len(series))}
    bands = Image.new("RGBA", size, (0, 0, 0, 0))
    band_draw = ImageDraw.Draw(bands)
    for i, s in enumerate(series):
        if s.lower is None or s.upper is None:
            continue
        upper = list(zip(px(s.x).tolist(), py(s.upper).tolist(), strict=True))
        lower = list(zip(px(s.x).tolist(), py(s.lower).tolist(), strict=True))
        rgb = ImageColor.getrgb(colours[i])
        band_draw.polygon(upper + lower[::-1], fill=(*rgb, 55))
    image.paste(bands, (0, 0), bands)
    draw = ImageDraw.Draw(image)
    for i, s in enumerate(series):
        points = list(zip(px(s.x).tolist(), py(s.y).tolist(), strict=True))
        draw.line(points, fill=colours[i], width=3, joint="curve")

    draw.line([(left, top), (left, bottom), (right, bottom)], fill="black", width=2)  # axes over the data
    draw.text(((left + right) / 2, 20), title, fill="black", font=title_font, anchor="mt")
    draw.text(((left + right) / 2, height - 30), x_label, fill="black", font=label_font, anchor="ms")
    y_title = Image.new("RGBA", (bottom - top, 40), (255, 255, 255, 0))
    ImageDraw.Draw(y_title).text(((bottom - top) / 2, 20), y_label, fill="black", font=label_font, anchor="mm")
    y_title = y_title.rotate(90, expand=True)
    image.paste(y_title, (14, top), y_title)

    if end_format is not None:  # last values at the right end, spread so they do not overlap
        ends = sorted((float(py(series[i].y[-1])), i) for i in range(len(series)))
        placed = _spread([e for e, _ in ends], 24, top, bottom)
        for (y_end, i), y_text in zip(ends, placed, strict=True):
            x_end = float(px(series[i].x[-1]))
            draw.line([(x_end, y_end), (x_end + 12, y_text)], fill=colours[i], width=2)
            draw.text((x_end + 16, y_text), end_format(float(series[i].y[-1])), fill=colours[i],
                      font=tick_font, anchor="lm")

    line_height, pad = 28, 12
    legend_w = max(int(draw.textlength(series[i].name, font=legend_font)) for i in order) + 60 + 2 * pad
    legend_h = line_height * len(order) + 2 * pad
    x0, y0 = left + 20, top + 16
    draw.rectangle([(x0, y0), (x0 + legend_w, y0 + legend_h)], fill="white", outline="#999999", width=1)
    for row, i in enumerate(order):
        y = y0 + pad + row * line_height + line_height / 2
        draw.line([(x0 + pad, y), (x0 + pad + 40, y)], fill=colours[i], width=4)
        draw.text((x0 + pad + 50, y), series[i].name, fill="black", font=legend_font, anchor="lm")

    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)

