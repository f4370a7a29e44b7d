"""Geometry in object units (x right, y down); every shape is a list of polygon or stroke operations.

Shapes are polygons (ellipses, rounded rectangles, Catmull-Rom splines, turned silhouettes) and strokes
(bands of a width along a polyline); :func:`cut` turns a shape into an eraser, so appending it subtracts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class _Op:
    kind: str  # "poly" or "stroke"
    pts: np.ndarray  # (n, 2)
    width: float = 0.0
    add: bool = True
    end_width: float | None = None  # a stroke tapers linearly to this width


Shape = list[_Op]


def poly(pts: Sequence[Sequence[float]] | np.ndarray) -> Shape:
    return [_Op("poly", np.asarray(pts, dtype=np.float64))]


def stroke(pts: Sequence[Sequence[float]] | np.ndarray, width: float, end_width: float | None = None) -> Shape:
    """A band of ``width`` along an open polyline, with round ends (optionally tapering)."""
    return [_Op("stroke", np.asarray(pts, dtype=np.float64), width, end_width=end_width)]


def ribbon(pts: np.ndarray, w0: float, w1: float) -> np.ndarray:
    """The outline of a band along ``pts`` whose width goes from ``w0`` to ``w1`` (offset curves)."""
    d = np.gradient(pts, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    half = np.linspace(w0, w1, len(pts))[:, None] / 2
    return np.vstack([pts + normal * half, (pts - normal * half)[::-1]])


def cut(shape: Shape) -> Shape:
    """The same operations, erasing instead of filling (shape subtraction when appended)."""
    return [replace(op, add=False) for op in shape]


def arc(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = 2 * math.pi,
        n: int = 72) -> np.ndarray:
    """Points on an ellipse from angle ``a0`` to ``a1`` (0 = right, pi/2 = down)."""
    t = np.linspace(a0, a1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def ellipse(cx: float, cy: float, rx: float, ry: float) -> Shape:
    return poly(arc(cx, cy, rx, ry, n=96))


def rrect(x0: float, y0: float, x1: float, y1: float, r: float, r_bottom: float | None = None) -> Shape:
    """A rectangle with rounded corners (top radius ``r``, bottom radius ``r_bottom``, default ``r``)."""
    rb = r if r_bottom is None else r_bottom
    half = min(x1 - x0, y1 - y0) / 2
    rt, rb = min(r, half), min(rb, half)
    pi = math.pi
    pts = np.vstack([
        arc(x1 - rt, y0 + rt, rt, rt, -pi / 2, 0, 16),
        arc(x1 - rb, y1 - rb, rb, rb, 0, pi / 2, 16),
        arc(x0 + rb, y1 - rb, rb, rb, pi / 2, pi, 16),
        arc(x0 + rt, y0 + rt, rt, rt, pi, 1.5 * pi, 16),
    ])
    return poly(pts)


def spline(pts: Sequence[Sequence[float]], closed: bool = False, n: int = 12) -> np.ndarray:
    """Uniform Catmull-Rom spline through ``pts`` (a repeated point makes a corner)."""
    p = np.asarray(pts, dtype=np.float64)
    p = np.vstack([p[-1], p, p[0], p[1]]) if closed else np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
    segments = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        segments.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                               + (3 * p1 - p0 - 3 * p2 + p3) * t**3))
    if not closed:
        segments.append(p[-2][None])
    return np.vstack(segments)


def rounded(pts: Sequence[Sequence[float]], r: float, n: int = 8) -> np.ndarray:
    """A closed polygon whose corners are rounded by quadratic Bezier arcs of about radius ``r``."""
    p = np.asarray(pts, dtype=np.float64)
    out = []
    t = np.linspace(0.0, 1.0, n)[:, None]
    for i in range(len(p)):
        prev, v, nxt = p[i - 1], p[i], p[(i + 1) % len(p)]
        a = v + (prev - v) * min(r / max(np.linalg.norm(prev - v), 1e-9), 0.5)
        b = v + (nxt - v) * min(r / max(np.linalg.norm(nxt - v), 1e-9), 0.5)
        out.append((1 - t) ** 2 * a + 2 * (1 - t) * t * v + t**2 * b)
    return np.vstack(out)


def lathe(profile: Sequence[tuple[float, float]], e_top: float, e_bottom: float, cx: float = 0.0) -> Shape:
    """Silhouette of a turned object seen slightly from above.

    ``profile`` lists (y, radius) from top to bottom; the top and bottom circles appear as ellipses
    with half-heights ``e_top`` and ``e_bottom`` (back half of the top, front half of the bottom).
    """
    prof = np.asarray(profile, dtype=np.float64)
    side = spline(prof[:, ::-1], n=14) if len(prof) > 2 else prof[:, ::-1]
    right = np.stack([cx + side[:, 0], side[:, 1]], axis=1)
    left = np.stack([cx - side[::-1, 0], side[::-1, 1]], axis=1)
    y_top, r_top = prof[0]
    y_bot, r_bot = prof[-1]
    bottom = arc(cx, y_bot, r_bot, e_bottom, 0.0, math.pi, 40)
    top = arc(cx, y_top, r_top, e_top, math.pi, 2 * math.pi, 40)
    return poly(np.vstack([right, bottom, left, top]))


def radius_at(profile: Sequence[tuple[float, float]], y: float) -> float:
    prof = np.asarray(profile, dtype=np.float64)
    return float(np.interp(y, prof[:, 0], prof[:, 1]))


def dashes(pts: np.ndarray, dash: float, gap: float, width: float) -> Shape:
    """A dashed line along the polyline ``pts`` (stitching, seams), one small quadrilateral per dash."""
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    starts = np.arange(gap / 2, s[-1] - dash + 1e-9, dash + gap)
    ops: Shape = []
    for a in starts:
        ends = np.stack([np.interp([a, a + dash], s, pts[:, 0]), np.interp([a, a + dash], s, pts[:, 1])], axis=1)
        d = ends[1] - ends[0]
        n = np.array([-d[1], d[0]]) / max(np.linalg.norm(d), 1e-9) * width / 2
        ops += poly([ends[0] + n, ends[1] + n, ends[1] - n, ends[0] - n])
    return ops


def bbox(shape: Shape) -> np.ndarray:
    """(x0, y0, x1, y1) around the filled operations of ``shape``, stroke widths included."""
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for op in shape:
        if op.add:
            pad = max(op.width, op.end_width or 0.0) / 2
            lo = np.minimum(lo, op.pts.min(0) - pad)
            hi = np.maximum(hi, op.pts.max(0) + pad)
    return np.concatenate([lo, hi])
