"""The page a marketer reads after a run: headline figures, notes, small charts, then one row per product.

Everything is static and self-contained (inline CSS and SVG, images by relative path), so the output
folder can be zipped, mailed or served as is. Charts are drawn here as SVG rather than with a plotting
library: a histogram and a horizontal bar chart are all the report needs.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from adcraft.evaluate.gallery import Section, write_gallery

_BAR = "#3b6ea5"
_NEGATIVE = "#c0392b"
_DIAGONAL = "#c0392b"
_CALIBRATION = "#1e8449"


@dataclass(frozen=True)
class ReportSummary:
    """Headline figures (label, value) shown as cards, notes in a highlighted box, charts as SVG markup."""

    figures: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    charts: tuple[str, ...] = ()
    tables: tuple[str, ...] = field(default_factory=tuple)

    def to_html(self) -> str:
        parts = []
        if self.figures:
            parts.append("<div class='cards'>")
            parts += [
                f"<div class='card'><b>{html.escape(value)}</b>{html.escape(label)}</div>"
                for label, value in self.figures
            ]
            parts.append("</div>")
        parts += [f"<p class='note'>{html.escape(note)}</p>" for note in self.notes]
        if self.charts:
            parts.append("<div class='cards'>")
            parts += [f"<div class='card'>{chart}</div>" for chart in self.charts]
            parts.append("</div>")
        parts += [f"<div class='card' style='margin:0 0 16px'>{table}</div>" for table in self.tables]
        return "\n".join(parts)


def write_report(path: Path, title: str, lead: str, summary: ReportSummary, sections: list[Section]) -> Path:
    """Write the report page (atomic replace) and return its path."""
    return write_gallery(Path(path), title, lead, sections, summary_html=summary.to_html())


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]], caption: str = "") -> str:
    """A small escaped HTML table."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    cap = f"<caption style='text-align:left;font-weight:600'>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<tr>{head}</tr>{body}</table>"


def histogram_svg(values: Sequence[float], title: str, bins: int = 20, width: int = 360, height: int = 180,
                  percent: bool = True) -> str:
    """An SVG histogram of finite ``values`` with a marked zero line (percent axis labels by default)."""
    data = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    top, left, bottom = 24, 8, 22
    parts = [_svg_open(width, height), _text(left, 16, title, weight=600)]
    if data.size == 0:
        parts.append(_text(left, height / 2, "no values"))
        return "".join(parts) + "</svg>"
    low, high = float(data.min()), float(data.max())
    if high - low < 1e-12:
        low, high = low - 0.5 * max(abs(low), 1e-3), high + 0.5 * max(abs(high), 1e-3)
    counts, edges = np.histogram(data, bins=bins, range=(low, high))
    plot_w, plot_h = width - 2 * left, height - top - bottom
    bar_w = plot_w / bins
    peak = max(int(counts.max()), 1)
    for k, count in enumerate(counts):
        h = plot_h * count / peak
        colour = _NEGATIVE if edges[k + 1] <= 0 else _BAR
        parts.append(
            f"<rect x='{left + k * bar_w:.1f}' y='{top + plot_h - h:.1f}' width='{max(bar_w - 1, 1):.1f}' "
            f"height='{h:.1f}' fill='{colour}'><title>{int(count)}</title></rect>"
        )
    if low < 0 < high:
        x = left + plot_w * (0 - low) / (high - low)
        parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top}' y2='{top + plot_h}' stroke='#222' "
                     "stroke-dasharray='3,2'/>")
    fmt = (lambda v: f"{v:+.0%}") if percent else (lambda v: f"{v:.3g}")
    parts.append(_text(left, height - 6, fmt(low)))
    parts.append(_text(width - left, height - 6, fmt(high), anchor="end"))
    parts.append(_text(width / 2, height - 6, f"n = {data.size}", anchor="middle"))
    return "".join(parts) + "</svg>"


def bar_chart_svg(labels: Sequence[str], values: Sequence[float], title: str, width: int = 420,
                  row: int = 16) -> str:
    """A horizontal SVG bar chart around zero (negative bars in red), one row per label."""
    values = [float(v) for v in values]
    top, label_w = 24, 170
    height = top + row * len(labels) + 8
    parts = [_svg_open(width, height), _text(4, 16, title, weight=600)]
    span = max((abs(v) for v in values), default=1.0) or 1.0
    half = (width - label_w - 8) / 2
    zero = label_w + half
    for k, (label, value) in enumerate(zip(labels, values)):
        y = top + k * row
        w = half * abs(value) / span
        x = zero if value >= 0 else zero - w
        parts.append(_text(label_w - 6, y + row - 4, label[:28], anchor="end"))
        parts.append(
            f"<rect x='{x:.1f}' y='{y + 2}' width='{max(w, 0.5):.1f}' height='{row - 4}' "
            f"fill='{_BAR if value >= 0 else _NEGATIVE}'><title>{value:+.3f}</title></rect>"
        )
    parts.append(f"<line x1='{zero:.1f}' x2='{zero:.1f}' y1='{top}' y2='{height - 8}' stroke='#222'/>")
    return "".join(parts) + "</svg>"


def calibration_png(predicted: Sequence[float], observed: Sequence[float], weights: Sequence[float], title: str,
                    size: int = 360, line: tuple[float, float] | None = None) -> Image.Image:
    """A predicted-vs-observed scatter (one dot per item, area by weight) with the diagonal of perfect
    calibration and, given ``line = (intercept, slope)``, the fitted calibration line ``o = intercept + slope q``
    (``evaluate.evidence.calibration_line``), as a PNG-ready Pillow image; axes in percent from 0 to just above
    the 99th percentile of either value (the few items beyond, usually ones seen a handful of times, sit on the
    border)."""
    x, y, w = (np.asarray(v, dtype=float) for v in (predicted, observed, weights))
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(w)
    x, y, w = x[keep], y[keep], w[keep]
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, top, right, bottom = 44, 40, size - 12, size - 36
    draw.text((8, 6), title, fill="#222", font=font)
    draw.rectangle((left, top, right, bottom), outline="#888")
    span = float(max(np.quantile(x, 0.99), np.quantile(y, 0.99))) * 1.1 if len(x) else 0.0
    span = span or 1.0

    def at(u: float, v: float) -> tuple[float, float]:
        return left + (right - left) * u / span, bottom - (bottom - top) * v / span

    draw.line((*at(0, 0), *at(span, span)), fill=_DIAGONAL, width=1)
    legend = [(_DIAGONAL, "diagonal: calibrated")]
    if line is not None and all(np.isfinite(line)):
        intercept, slope = line
        segment = _clipped_line(intercept, slope, span)
        if segment is not None:
            (u0, v0), (u1, v1) = segment
            draw.line((*at(u0, v0), *at(u1, v1)), fill=_CALIBRATION, width=2)
        sign = "-" if slope < 0 else "+"
        legend.append((_CALIBRATION, f"fitted: observed = {intercept:.2%} {sign} {abs(slope):.2f} x predicted"))
    legend_x = 8
    for colour, label in legend:
        draw.line((legend_x, 26, legend_x + 14, 26), fill=colour, width=2)
        draw.text((legend_x + 18, 20), label, fill="#222", font=font)
        legend_x += 18 + int(draw.textlength(label, font=font)) + 12
    for fraction in (0.0, 0.5, 1.0):
        value = span * fraction
        label_x = min(at(value, 0)[0] - 10, right - 6 * len(f"{value:.1%}"))
        draw.text((label_x, bottom + 4), f"{value:.1%}", fill="#222", font=font)
        draw.text((4, at(0, value)[1] - 6), f"{value:.1%}", fill="#222", font=font)
    draw.text((left + 40, size - 16), "predicted CTR (held out) ->  observed CTR ^", fill="#222", font=font)
    radius = 1.5 + 5.0 * np.sqrt(w / w.max()) if len(w) and w.max() > 0 else np.zeros(0)
    for u, v, r in zip(np.minimum(x, span), np.minimum(y, span), radius):
        cx, cy = at(u, v)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=_BAR)
    return image


def _clipped_line(intercept: float, slope: float, span: float
                  ) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The part of ``v = intercept + slope u`` inside the square ``[0, span]^2`` (None when it misses it)."""
    low, high = 0.0, span
    if slope == 0:
        if not 0 <= intercept <= span:
            return None
    else:
        bounds = sorted(((0 - intercept) / slope, (span - intercept) / slope))
        low, high = max(low, bounds[0]), min(high, bounds[1])
        if low >= high:
            return None
    return (low, intercept + slope * low), (high, intercept + slope * high)


def _svg_open(width: int, height: int) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' font-family='system-ui,sans-serif' font-size='11'>")


def _text(x: float, y: float, text: str, anchor: str = "start", weight: int = 400) -> str:
    return (f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}' font-weight='{weight}'>"
            f"{html.escape(text)}</text>")
