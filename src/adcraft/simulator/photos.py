"""Procedural product photos: RGBA packshot cut-outs drawn from shapes, so a fresh clone needs no images.

Each category has a drawing function that lays out *parts* (a silhouette built from polygons, ellipses,
Catmull-Rom splines and strokes, with a colour and a shading model) in object units. The parts are
fitted into the frame, rasterised at ``_SUPERSAMPLE`` times the requested size and composited back to
front with the premultiplied "over" operator (Porter & Duff 1984, "Compositing Digital Images"):
``C = c_src * a_src + C_dst * (1 - a_src)``. Each part is lit by one key light with Lambert diffuse
plus Blinn-Phong specular, ``I = k_a + k_d (n . l) + g (n . h)^s`` (Blinn 1977, "Models of light
reflection for computer synthesized pictures"), with normals from a cylinder (turned objects), an
ellipsoid, or a blurred copy of the mask used as a height field (soft goods). The premultiplied image
is downsampled with a Lanczos filter, so edges are anti-aliased without a dark halo, then
un-premultiplied; background pixels end as alpha 0 and RGB 0.

The :class:`PhotoStyle` (colours, pattern, gloss, proportions, silhouette variant) says which product
is shown; the ``seed`` of :func:`draw_product_photo` moves the light a little, as two shots of one
product would differ. With no style, the style is drawn from the seed with :func:`random_style`.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from adcraft.errors import InputError

RGB = tuple[int, int, int]
Color = tuple[float, float, float]

PHOTO_PATTERNS: tuple[str, ...] = ("plain", "stripes", "dots", "block")

_SUPERSAMPLE = 2
_FRAME = 0.84  # the object's bounding box fits in this fraction of the photo's width and height
_LIGHT_STREAM = 0x11647  # the light's random stream, apart from the style's


class PhotoInputError(InputError, ValueError):
    """A photo request names an unknown category or an impossible style (also a ``ValueError``)."""


@dataclass(frozen=True)
class PhotoStyle:
    """What product a photo shows: colours, surface pattern, gloss and proportions.

    ``base_color`` is the main material, ``accent_color`` the pattern, trims and secondary panels,
    ``detail_color`` the hardware (caps, laces, frames, legs, metal). ``width`` and ``height``
    stretch the silhouette (1.0 is the category's typical shape), ``variant`` picks one of the
    category's silhouettes (e.g. wine, sports or pump bottle) and ``gloss`` in [0, 1] scales the
    specular highlight.
    """

    base_color: RGB
    accent_color: RGB
    detail_color: RGB = (40, 40, 44)
    pattern: str = "plain"
    gloss: float = 0.3
    width: float = 1.0
    height: float = 1.0
    variant: int = 0

    def __post_init__(self) -> None:
        for name in ("base_color", "accent_color", "detail_color"):
            value = getattr(self, name)
            if len(value) != 3 or any(not 0 <= int(v) <= 255 for v in value):
                raise PhotoInputError(f"PhotoStyle.{name} must be three integers in 0..255, got {value!r}")
        if self.pattern not in PHOTO_PATTERNS:
            raise PhotoInputError(
                f"PhotoStyle.pattern {self.pattern!r} is unknown; use one of {', '.join(PHOTO_PATTERNS)}"
            )
        if not 0.0 <= self.gloss <= 1.0:
            raise PhotoInputError(f"PhotoStyle.gloss must be in [0, 1], got {self.gloss}")
        for name in ("width", "height"):
            if not 0.6 <= getattr(self, name) <= 1.5:
                raise PhotoInputError(f"PhotoStyle.{name} must be in [0.6, 1.5], got {getattr(self, name)}")
        if self.variant < 0:
            raise PhotoInputError(f"PhotoStyle.variant must be >= 0, got {self.variant}")


# --------------------------------------------------------------------------------------------------
# Geometry in object units (x right, y down); every shape is a list of polygon or stroke operations.


@dataclass(frozen=True)
class _Op:
    kind: str  # "poly" or "stroke"
    pts: np.ndarray  # (n, 2)
    width: float = 0.0
    add: bool = True
    end_width: float | None = None  # a stroke tapers linearly to this width


Shape = list[_Op]


def _poly(pts: Sequence[Sequence[float]] | np.ndarray) -> Shape:
    return [_Op("poly", np.asarray(pts, dtype=np.float64))]


def _stroke(pts: Sequence[Sequence[float]] | np.ndarray, width: float, end_width: float | None = None) -> Shape:
    """A band of ``width`` along an open polyline, with round ends (optionally tapering)."""
    return [_Op("stroke", np.asarray(pts, dtype=np.float64), width, end_width=end_width)]


def _ribbon(pts: np.ndarray, w0: float, w1: float) -> np.ndarray:
    """The outline of a band along ``pts`` whose width goes from ``w0`` to ``w1`` (offset curves)."""
    d = np.gradient(pts, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    half = np.linspace(w0, w1, len(pts))[:, None] / 2
    return np.vstack([pts + normal * half, (pts - normal * half)[::-1]])


def _cut(shape: Shape) -> Shape:
    """The same operations, erasing instead of filling (shape subtraction when appended)."""
    return [replace(op, add=False) for op in shape]


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = 2 * math.pi,
         n: int = 72) -> np.ndarray:
    """Points on an ellipse from angle ``a0`` to ``a1`` (0 = right, pi/2 = down)."""
    t = np.linspace(a0, a1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> Shape:
    return _poly(_arc(cx, cy, rx, ry, n=96))


def _rrect(x0: float, y0: float, x1: float, y1: float, r: float, r_bottom: float | None = None) -> Shape:
    """A rectangle with rounded corners (top radius ``r``, bottom radius ``r_bottom``, default ``r``)."""
    rb = r if r_bottom is None else r_bottom
    half = min(x1 - x0, y1 - y0) / 2
    rt, rb = min(r, half), min(rb, half)
    pi = math.pi
    pts = np.vstack([
        _arc(x1 - rt, y0 + rt, rt, rt, -pi / 2, 0, 16),
        _arc(x1 - rb, y1 - rb, rb, rb, 0, pi / 2, 16),
        _arc(x0 + rb, y1 - rb, rb, rb, pi / 2, pi, 16),
        _arc(x0 + rt, y0 + rt, rt, rt, pi, 1.5 * pi, 16),
    ])
    return _poly(pts)


def _spline(pts: Sequence[Sequence[float]], closed: bool = False, n: int = 12) -> np.ndarray:
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


def _rounded(pts: Sequence[Sequence[float]], r: float, n: int = 8) -> np.ndarray:
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


def _lathe(profile: Sequence[tuple[float, float]], e_top: float, e_bottom: float, cx: float = 0.0) -> Shape:
    """Silhouette of a turned object seen slightly from above.

    ``profile`` lists (y, radius) from top to bottom; the top and bottom circles appear as ellipses
    with half-heights ``e_top`` and ``e_bottom`` (back half of the top, front half of the bottom).
    """
    prof = np.asarray(profile, dtype=np.float64)
    side = _spline(prof[:, ::-1], n=14) if len(prof) > 2 else prof[:, ::-1]
    right = np.stack([cx + side[:, 0], side[:, 1]], axis=1)
    left = np.stack([cx - side[::-1, 0], side[::-1, 1]], axis=1)
    y_top, r_top = prof[0]
    y_bot, r_bot = prof[-1]
    bottom = _arc(cx, y_bot, r_bot, e_bottom, 0.0, math.pi, 40)
    top = _arc(cx, y_top, r_top, e_top, math.pi, 2 * math.pi, 40)
    return _poly(np.vstack([right, bottom, left, top]))


def _radius_at(profile: Sequence[tuple[float, float]], y: float) -> float:
    prof = np.asarray(profile, dtype=np.float64)
    return float(np.interp(y, prof[:, 0], prof[:, 1]))


def _dashes(pts: np.ndarray, dash: float, gap: float, width: float) -> Shape:
    """A dashed line along the polyline ``pts`` (stitching, seams)."""
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    ops: Shape = []
    start = gap / 2
    while start + dash <= s[-1]:
        ts = np.linspace(start, start + dash, 4)
        ops += _stroke(np.stack([np.interp(ts, s, pts[:, 0]), np.interp(ts, s, pts[:, 1])], axis=1), width)
        start += dash + gap
    return ops


def _bbox(shape: Shape) -> np.ndarray:
    boxes = [np.r_[op.pts.min(0) - max(op.width, op.end_width or 0.0) / 2,
                   op.pts.max(0) + max(op.width, op.end_width or 0.0) / 2] for op in shape if op.add]
    b = np.array(boxes)
    return np.r_[b[:, :2].min(0), b[:, 2:].max(0)]


# --------------------------------------------------------------------------------------------------
# Parts, lighting and compositing.


@dataclass
class _Part:
    """One painted region: a shape, its colour and how light falls on it."""

    shape: Shape
    color: Color
    shade: str = "puffy"  # "cylinder", "sphere", "puffy", "flat", "inside"
    gloss: float = 0.0
    pattern: str = "plain"
    accent: Color = (1.0, 1.0, 1.0)
    clip: Shape | None = None
    opacity: float = 1.0
    relief: float = 1.0  # height-field radius for "puffy", as a fraction of the frame
    ambient: float = 0.38
    folds: float = 0.0  # fabric fold strength
    color_bottom: Color | None = None  # vertical colour gradient (lenses)
    curve: float = 0.0  # ellipse ratio of a turned body, bends its pattern
    block_at: float = 0.6  # where the "block" pattern starts, as a fraction of the part's height
    pattern_scale: float = 1.0
    fan: tuple[float, float, float, int] | None = None  # folds radiating from (x, y): strength, count


@dataclass
class _Light:
    direction: np.ndarray
    half: np.ndarray
    fold_phase: np.ndarray = field(default_factory=lambda: np.zeros(3))


def _make_light(rng: np.random.Generator) -> _Light:
    d = np.array([-0.55 + rng.uniform(-0.15, 0.15), -0.7 + rng.uniform(-0.12, 0.12), 0.75])
    d /= np.linalg.norm(d)
    h = d + np.array([0.0, 0.0, 1.0])
    return _Light(d, h / np.linalg.norm(h), rng.uniform(0, 2 * math.pi, 3))


def _rasterize(shape: Shape, box: tuple[int, int, int, int], to_px: Callable[[np.ndarray], np.ndarray],
               scale: float) -> Image.Image:
    """Coverage of ``shape`` (255 inside) over the canvas region ``box``."""
    img = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    draw = ImageDraw.Draw(img)
    origin = np.array(box[:2], np.float64)
    for op in shape:
        fill = 255 if op.add else 0
        pts = to_px(op.pts) - origin
        if op.kind == "poly":
            draw.polygon(pts.ravel().tolist(), fill=fill)
        else:
            w0 = max(1.0, op.width * scale)
            w1 = w0 if op.end_width is None else max(1.0, op.end_width * scale)
            if len(pts) > 1:
                draw.polygon(_ribbon(pts, w0, w1).ravel().tolist(), fill=fill)
            for (x, y), w in ((pts[0], w0), (pts[-1], w1)):
                draw.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=fill)
    return img


def _box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a window of ``2 r + 1`` rows (zero outside), by differences of a running sum."""
    n = a.shape[0]
    s = np.zeros((n + 2 * r + 1, a.shape[1]), np.float32)
    np.cumsum(a, axis=0, out=s[r + 1:n + r + 1])
    s[n + r + 1:] = s[n + r]
    return (s[2 * r + 1:] - s[:n]) * np.float32(1.0 / (2 * r + 1))


def _height_normals(mask: Image.Image, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normals of the height field "mask blurred by about ``radius`` px" (three box passes per axis
    approximate a Gaussian).

    The blur runs in floating point on a copy shrunk to about 4 px per radius and is enlarged back
    bicubically, so the field is smooth and cheap at any size.
    """
    w, h = mask.size
    f = max(1, int(radius / 4))
    sw, sh = max(1, w // f), max(1, h // f)
    height = np.asarray(mask.resize((sw, sh), Image.Resampling.BOX), np.float32) * np.float32(1 / 255)
    r = max(1, int(round(radius / f * 0.6)))
    for _ in range(3):
        height = _box_blur(height, r)
    height = height.T.copy()
    for _ in range(3):
        height = _box_blur(height, r)
    big = np.asarray(Image.fromarray(np.ascontiguousarray(height.T)).resize((w, h), Image.Resampling.BICUBIC))
    gy, gx = np.gradient(big)
    k = np.float32(1.6 * radius)
    nx, ny = gx * -k, gy * -k
    inv = 1.0 / np.sqrt(nx * nx + ny * ny + 1.0)
    return nx * inv, ny * inv, inv


class _Canvas:
    """A supersampled premultiplied RGB image and its alpha; parts are composited back to front.

    The "over" operator is Pillow's masked paste: with an opaque source it blends every band as
    ``dst * (1 - m) + src * m``, which is exactly premultiplied "over" for colour and for alpha.
    Shading is smooth, so it is computed at the output resolution (half the canvas) and each value
    fills a 2 x 2 block; only silhouettes and patterns use the full supersampled resolution.
    """

    def __init__(self, n: int, light: _Light) -> None:
        self.n = n
        self.light = light
        self.image = Image.new("RGBa", (n, n), (0, 0, 0, 0))

    def _box(self, shape: Shape, to_px: Callable[[np.ndarray], np.ndarray], scale: float) -> tuple[int, ...] | None:
        """The canvas region a shape can touch, with even corners (a 2 x 2 block is one output pixel)."""
        b = _bbox(shape)
        lo = to_px(b[:2]) - 2
        hi = to_px(b[2:]) + 2
        x0, y0 = (max(0, int(v) // _SUPERSAMPLE * _SUPERSAMPLE) for v in lo)
        x1, y1 = (min(self.n, -(-int(math.ceil(v)) // _SUPERSAMPLE) * _SUPERSAMPLE) for v in hi)
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def paint(self, part: _Part, to_px: Callable[[np.ndarray], np.ndarray], scale: float) -> None:
        box = self._box(part.shape, to_px, scale)
        if box is None:
            return
        mask = _rasterize(part.shape, box, to_px, scale)
        if part.clip is not None:
            mask = ImageChops.multiply(mask, _rasterize(part.clip, box, to_px, scale))
        if mask.getbbox() is None:
            return
        small = mask.reduce(_SUPERSAMPLE)
        fan_at = None if part.fan is None else to_px(np.array(part.fan[:2])) / self.n
        planes = self._surface(part, small, box, fan_at)
        opaque = Image.new("L", small.size, 255)
        color = Image.merge("RGBa", [*(Image.fromarray(p) for p in planes), opaque])
        color = color.resize(mask.size, Image.Resampling.NEAREST)
        if part.opacity < 1.0:
            mask = mask.point([round(v * part.opacity) for v in range(256)])
        self.image.paste(color, box, mask)

    def _normals(self, part: _Part, crop: Image.Image, m: np.ndarray) -> tuple[np.ndarray, ...]:
        h, w = m.shape
        if part.shade in ("cylinder", "inside"):
            inside = m > 127
            left = np.argmax(inside, axis=1)[:, None]
            right = (w - 1 - np.argmax(inside[:, ::-1], axis=1))[:, None]
            half = np.maximum((right - left) / 2.0, 1.0)
            u = np.clip((np.arange(w)[None, :] - (left + right) / 2.0) / (half + 0.5), -0.999, 0.999)
            u = (-u if part.shade == "inside" else u).astype(np.float32)
            nz = np.sqrt(1.0 - u * u)
            return u * np.float32(0.97), np.full_like(u, -0.22), nz, u
        if part.shade == "sphere":
            u = ((np.arange(w, dtype=np.float32)[None, :] + 0.5) / w * 2 - 1).repeat(h, 0)
            v = ((np.arange(h, dtype=np.float32)[:, None] + 0.5) / h * 2 - 1).repeat(w, 1)
            r = np.maximum(np.sqrt(u * u + v * v), 1e-6)
            s = np.where(r > 0.999, 0.999 / r, 1.0).astype(np.float32)
            u, v = u * s, v * s
            return u, v, np.sqrt(np.maximum(1.0 - u * u - v * v, 0.0)), u
        if part.shade == "puffy":
            radius = min(part.relief * 0.045 * self.n / _SUPERSAMPLE, 0.3 * min(h, w))
            nx, ny, nz = _height_normals(crop, max(radius, 1.5))
            return nx, ny, nz, None
        return np.float32(0.0), np.float32(0.0), np.float32(1.0), None

    def _surface(self, part: _Part, small: Image.Image, box: tuple[int, int, int, int],
                 fan_at: np.ndarray | None) -> list[np.ndarray]:
        """Lit colour of the part's box at output resolution, as three uint8 planes.

        Lambert diffuse plus Blinn-Phong specular (see the module docstring), normalised so that a
        surface facing the camera shows exactly its base colour. ``fan_at`` is where radiating
        folds start, in frame units.
        """
        m = np.asarray(small)
        h, w = m.shape
        n_out = self.n / _SUPERSAMPLE
        x0, y0 = box[0] / _SUPERSAMPLE, box[1] / _SUPERSAMPLE
        ys = (np.arange(h, dtype=np.float32)[:, None] + np.float32(y0 + 0.5)) / np.float32(n_out)
        xs = (np.arange(w, dtype=np.float32)[None, :] + np.float32(x0 + 0.5)) / np.float32(n_out)
        nx, ny, nz, u = self._normals(part, small, m)
        if part.fan is not None and fan_at is not None:  # folds of a flared skirt tilt the normals
            dx, dy = xs - np.float32(fan_at[0]), ys - np.float32(fan_at[1])
            fade = np.clip((np.sqrt(dx * dx + dy * dy) - 0.12) / 0.3, 0.0, 1.0)
            nx = nx + np.float32(part.fan[2]) * fade * np.sin(np.float32(4 * part.fan[3]) * np.arctan2(dx, dy))
        lx, ly, lz = (float(c) for c in self.light.direction)
        ndl = np.maximum(nx * lx + ny * ly + nz * lz, 0.0)
        light = np.float32(part.ambient) + ndl * np.float32((1.0 - part.ambient) / lz)
        # a soft studio falloff: a little darker to the right and towards the floor
        light = light * (1.0 - 0.10 * (xs - 0.5) - 0.08 * (ys - 0.5))
        if part.folds > 0:
            ph = self.light.fold_phase
            waves = (np.sin(np.float32(2 * math.pi) * (xs * 3.1 + ys * 1.3) + np.float32(ph[0]))
                     + 0.7 * np.sin(np.float32(2 * math.pi) * (xs * -2.3 + ys * 2.9) + np.float32(ph[1]))
                     + 0.5 * np.sin(np.float32(2 * math.pi * 7.0) * xs + np.float32(ph[2])) * ys)
            light *= 1.0 + np.float32(part.folds) * waves
        spec: np.ndarray | float = 0.0
        if part.gloss > 0:
            hx, hy, hz = (float(c) for c in self.light.half)
            ndh = np.clip(nx * hx + ny * hy + nz * hz, 1e-4, 1.0)
            shininess = np.float32(10.0 + 70.0 * part.gloss)
            spec = np.float32(part.gloss * 0.85) * np.exp(shininess * np.log(ndh))
            if u is not None:  # a studio reflector seen along the shadow side of round bodies
                spec = spec + np.float32(part.gloss * 0.22) * np.clip((u - 0.72) / 0.16, 0.0, 1.0) * (u < 0.93)
        color = np.asarray(part.color, np.float32)[:, None, None]
        if part.color_bottom is not None:
            t = (np.arange(h, dtype=np.float32)[None, :, None] + 0.5) / h
            color = color + (np.asarray(part.color_bottom, np.float32)[:, None, None] - color) * t
        if part.pattern != "plain":
            hit = self._pattern(part, m, u)
            color = color + (np.asarray(part.accent, np.float32)[:, None, None] - color) * hit
        out = color * light
        out += spec
        out *= 255.0
        out += 0.5
        np.clip(out, 0.0, 255.0, out=out)
        return list(out.astype(np.uint8))

    def _pattern(self, part: _Part, m: np.ndarray, u: np.ndarray | None) -> np.ndarray:
        """Coverage of the accent pattern in [0, 1] per output pixel, anti-aliased analytically."""
        h, w = m.shape
        ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
        if part.pattern == "block":
            return np.broadcast_to(np.clip(ys - part.block_at * h, 0.0, 1.0), (h, w))
        n_out = self.n / _SUPERSAMPLE
        yy = np.broadcast_to(ys, (h, w))
        xx = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :] + 0.5, (h, w))
        if u is not None and part.curve > 0:  # wrap the pattern around a turned body
            yy = yy - np.float32(part.curve * w / 2) * np.sqrt(1 - u * u)
            xx = np.float32(w / 2) + np.arcsin(u) * np.float32(w / 2 * 0.8)
        period = np.float32(0.075 * n_out * part.pattern_scale)
        if part.pattern == "stripes":
            d = np.abs((yy / period) % 1.0 - 0.5) * period  # distance to a stripe's centre line
            return np.clip(period / 4 - d + 0.5, 0.0, 1.0)
        s = period * np.float32(1.1)
        row = np.floor(yy / s)
        dx = ((xx / s + 0.5 * (row % 2)) % 1.0 - 0.5) * s
        dy = ((yy / s) % 1.0 - 0.5) * s
        return np.clip(np.float32(0.22) * s - np.sqrt(dx * dx + dy * dy) + 0.5, 0.0, 1.0)


# --------------------------------------------------------------------------------------------------
# Colour helpers.


def _c(rgb: Sequence[float]) -> Color:
    return (rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)


def _mix(a: Color, b: Color, t: float) -> Color:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def _scale(a: Color, f: float) -> Color:
    return (min(a[0] * f, 1.0), min(a[1] * f, 1.0), min(a[2] * f, 1.0))


def _luma(a: Color) -> float:
    return 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2]


def _contrast(a: Color) -> Color:
    """A near-white or near-black ink that reads on ``a``."""
    return (0.12, 0.12, 0.13) if _luma(a) > 0.55 else (0.95, 0.95, 0.93)


def _shadow(a: Color) -> Color:
    """A darker tone of ``a`` that stays visible on black."""
    return _mix(_scale(a, 0.6), (0.1, 0.1, 0.1), 0.2)


WHITE: Color = (0.97, 0.97, 0.96)
_DARK: Color = (0.1, 0.1, 0.11)


# --------------------------------------------------------------------------------------------------
# The categories. Each returns its parts in object units; the frame fit makes the units irrelevant.


def _turned_rim(r: float, e: float, y: float, color: Color, gloss: float, wall: float) -> list[_Part]:
    """The open top of a turned vessel: the lip and the darker inside wall."""
    inner = r - wall
    return [
        _Part(_ellipse(0, y, r, e), _scale(color, 1.08), shade="flat", gloss=gloss * 0.5),
        _Part(_ellipse(0, y + wall * 0.15, inner, e * inner / r), _scale(color, 0.55), shade="inside",
              gloss=gloss * 0.4, ambient=0.3),
    ]


def _mug(st: PhotoStyle) -> list[_Part]:
    base, acc = _c(st.base_color), _c(st.accent_color)
    h, r = 1.0 * st.height, 0.44 * st.width
    profile = [
        [(0.0, r), (h, r)],
        [(0.0, r), (0.5 * h, 0.92 * r), (h, 0.82 * r)],
        [(0.0, 0.88 * r), (0.5 * h, r), (h, 0.86 * r)],
    ][st.variant % 3]
    e = 0.2 * profile[0][1]
    r_mid = _radius_at(profile, 0.45 * h)
    handle_rx, handle_ry = 0.17 + 0.08 * st.width, 0.28 * h
    hx, thick = r_mid + handle_rx * 0.45, 0.09
    handle = _ellipse(hx, 0.47 * h, handle_rx + thick / 2, handle_ry + thick / 2) + _cut(
        _ellipse(hx, 0.47 * h, handle_rx - thick / 2, handle_ry - thick / 2))
    return [
        _Part(handle, base, shade="puffy", gloss=st.gloss, relief=0.6),
        _Part(_lathe(profile, e, e * 1.15), base, shade="cylinder", gloss=st.gloss,
              pattern=st.pattern, accent=acc, curve=0.2, block_at=0.55),
        *_turned_rim(profile[0][1], e, 0.0, base, st.gloss, 0.035),
    ]


def _label_text(x0: float, y0: float, x1: float, y1: float, ink: Color) -> list[_Part]:
    """Two or three bars of "print" that make a band read as a label."""
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    return [
        _Part(_rrect(cx - 0.34 * w, y0 + 0.28 * h, cx + 0.34 * w, y0 + 0.46 * h, 0.02), ink, shade="flat"),
        _Part(_rrect(cx - 0.22 * w, y0 + 0.58 * h, cx + 0.22 * w, y0 + 0.68 * h, 0.01), ink, shade="flat"),
    ]


def _bottle(st: PhotoStyle) -> list[_Part]:
    base, acc, det = _c(st.base_color), _c(st.accent_color), _c(st.detail_color)
    h = 1.0 * st.height
    variant = st.variant % 3
    if variant == 0:  # wine bottle: long neck, foil capsule, paper label
        r = 0.23 * st.width
        profile = [(0.0, 0.055), (0.22 * h, 0.06), (0.33 * h, 0.1), (0.42 * h, 0.9 * r),
                   (0.48 * h, r), (h, r)]
        body = _lathe(profile, 0.01, 0.035)
        capsule = _lathe([(0.0, 0.062), (0.2 * h, 0.066)], 0.012, 0.012)
        band = _rrect(-r * 1.1, 0.58 * h, r * 1.1, 0.86 * h, 0.0)
        label_color = acc
        parts = [
            _Part(body, base, shade="cylinder", gloss=st.gloss, ambient=0.3),
            _Part(capsule, det, shade="cylinder", gloss=0.7),
            _Part(_ellipse(0, 0.0, 0.062, 0.012), _scale(det, 1.15), shade="flat"),
        ]
        label_box = (-0.6 * r, 0.58 * h, 0.6 * r, 0.86 * h)
    elif variant == 1:  # sports bottle: screw cap with a carry loop
        r = 0.24 * st.width
        profile = [(0.12 * h, 0.13), (0.17 * h, 0.17), (0.25 * h, r), (0.55 * h, 0.93 * r),
                   (0.62 * h, r), (h, r)]
        body = _lathe(profile, 0.02, 0.045)
        cap = _rrect(-0.14, 0.02 * h, 0.14, 0.14 * h, 0.025)
        loop = _stroke(_arc(0.0, 0.02 * h, 0.07, 0.06, math.pi, 2 * math.pi, 30), 0.035)
        ridges = [op for k in range(-3, 4) for op in _stroke([(0.035 * k, 0.03 * h), (0.035 * k, 0.13 * h)], 0.008)]
        band = _rrect(-r * 1.1, 0.66 * h, r * 1.1, 0.9 * h, 0.0)
        label_color = acc
        parts = [
            _Part(loop, det, shade="puffy", gloss=0.4, relief=0.3),
            _Part(body, base, shade="cylinder", gloss=st.gloss, pattern=st.pattern, accent=acc,
                  curve=0.15, block_at=0.5),
            _Part(cap, det, shade="cylinder", gloss=0.5),
            _Part(ridges, _shadow(det), shade="flat", clip=cap),
        ]
        label_box = (-0.6 * r, 0.66 * h, 0.6 * r, 0.9 * h)
    else:  # pump bottle: collar, stem and nozzle
        r = 0.26 * st.width
        profile = [(0.33 * h, 0.15), (0.37 * h, 0.8 * r), (0.43 * h, r), (h, 0.97 * r)]
        body = _lathe(profile, 0.03, 0.05)
        head = _rrect(-0.1, 0.06 * h, 0.1, 0.13 * h, 0.02)
        nozzle = _stroke([(0.05, 0.085 * h), (0.22, 0.08 * h), (0.26, 0.095 * h)], 0.035)
        stem = _rrect(-0.025, 0.12 * h, 0.025, 0.25 * h, 0.0)
        collar = _rrect(-0.13, 0.23 * h, 0.13, 0.36 * h, 0.025)
        band = _rrect(-r * 1.1, 0.56 * h, r * 1.1, 0.84 * h, 0.0)
        label_color = _mix(acc, WHITE, 0.15)
        parts = [
            _Part(nozzle, det, shade="puffy", gloss=0.5, relief=0.3),
            _Part(stem, _scale(det, 1.2), shade="cylinder", gloss=0.6),
            _Part(head, det, shade="cylinder", gloss=0.6),
            _Part(body, base, shade="cylinder", gloss=st.gloss, pattern=st.pattern, accent=acc,
                  curve=0.15, block_at=0.35),
            _Part(collar, det, shade="cylinder", gloss=0.6),
        ]
        label_box = (-0.6 * r, 0.56 * h, 0.6 * r, 0.84 * h)
    parts.append(_Part(band, label_color, shade="cylinder", gloss=0.1, clip=body, ambient=0.45))
    parts += _label_text(*label_box, _contrast(label_color))
    return parts


def _perfume(st: PhotoStyle) -> list[_Part]:
    liquid, acc, det = _c(st.base_color), _c(st.accent_color), _c(st.detail_color)
    glass = _mix(liquid, WHITE, 0.6)
    w, h = 0.36 * st.width, 1.0 * st.height
    variant = st.variant % 3
    top = 0.36 * h
    if variant == 0:  # rectangular flacon
        body = _rrect(-w, top, w, h, 0.05)
        inner = _rrect(-w + 0.05, top + 0.12 * h, w - 0.05, h - 0.05, 0.03)
        shade = "flat"
    elif variant == 1:  # round flacon
        body = _ellipse(0, (top + h) / 2, w * 1.05, (h - top) / 2)
        inner = _ellipse(0, (top + h) / 2 + 0.04, w * 1.05 - 0.06, (h - top) / 2 - 0.08)
        shade = "sphere"
    else:  # tall tapered flacon
        body = _poly(_rounded([(-0.7 * w, top), (0.7 * w, top), (w, h), (-w, h)], 0.05))
        inner = _poly(_rounded([(-0.7 * w + 0.05, top + 0.12 * h), (0.7 * w - 0.05, top + 0.12 * h),
                                (w - 0.06, h - 0.05), (-w + 0.06, h - 0.05)], 0.03))
        shade = "cylinder"
    bx = _bbox(body)
    streak = _rrect(bx[0] + 0.05, top + 0.06, bx[0] + 0.09, h - 0.08, 0.02)
    edge = _rrect(bx[2] - 0.06, top, bx[2], h, 0.0)
    cap_w = 0.12 + 0.06 * st.width
    cap = [
        _rrect(-cap_w, 0.02 * h, cap_w, 0.29 * h, 0.02),
        _ellipse(0, 0.16 * h, cap_w * 1.1, 0.15 * h),
        _poly(_rounded([(-cap_w * 0.8, 0.0), (cap_w * 0.8, 0.0), (cap_w * 1.2, 0.29 * h),
                        (-cap_w * 1.2, 0.29 * h)], 0.02)),
    ][variant]
    plate = _rrect(-0.55 * w, 0.62 * h, 0.55 * w, 0.76 * h, 0.01)
    return [
        _Part(_rrect(-0.08, 0.26 * h, 0.08, top + 0.03, 0.01), det, shade="cylinder", gloss=0.8),
        _Part(body, glass, shade=shade, gloss=0.9, ambient=0.6),
        _Part(inner, liquid, shade=shade, gloss=0.35, ambient=0.5, color_bottom=_scale(liquid, 0.8)),
        _Part(edge, WHITE, shade="flat", opacity=0.35, clip=body),
        _Part(streak, WHITE, shade="flat", opacity=0.6, clip=body),
        _Part(plate, det, shade="flat", gloss=0.6, opacity=0.9),
        *_label_text(-0.55 * w, 0.62 * h, 0.55 * w, 0.76 * h, _contrast(det)),
        _Part(cap, acc, shade="sphere" if variant == 1 else "cylinder", gloss=0.85),
    ]


def _vase(st: PhotoStyle) -> list[_Part]:
    base, acc = _c(st.base_color), _c(st.accent_color)
    h, r = 1.0 * st.height, 0.36 * st.width
    profile = [
        [(0.0, 0.45 * r), (0.08 * h, 0.36 * r), (0.22 * h, 0.34 * r), (0.48 * h, 0.9 * r),
         (0.7 * h, r), (0.9 * h, 0.78 * r), (h, 0.55 * r)],
        [(0.0, 0.66 * r), (0.05 * h, 0.6 * r), (0.5 * h, 0.64 * r), (0.95 * h, 0.62 * r), (h, 0.58 * r)],
        [(0.0, 0.6 * r), (0.07 * h, 0.5 * r), (0.38 * h, r), (0.75 * h, 0.86 * r), (h, 0.45 * r)],
    ][st.variant % 3]
    e = 0.2 * profile[0][1]
    return [
        _Part(_lathe(profile, e, 0.2 * profile[-1][1]), base, shade="cylinder", gloss=st.gloss,
              pattern=st.pattern, accent=acc, curve=0.2, block_at=0.62, pattern_scale=0.9),
        *_turned_rim(profile[0][1], e, 0.0, base, st.gloss, 0.03),
    ]


def _lamp(st: PhotoStyle) -> list[_Part]:
    shade_color, acc, det = _c(st.base_color), _c(st.accent_color), _c(st.detail_color)
    sw, h = st.width, st.height
    rt, rb, sh = 0.25 * sw, 0.42 * sw, 0.42 * h
    shade = _lathe([(0.0, rt), (sh, rb)], 0.18 * rt, 0.18 * rb)
    glow = _mix((1.0, 0.86, 0.6), shade_color, 0.2)
    variant = st.variant % 3
    foot_y = sh + 0.58 * h
    if variant == 0:  # ceramic gourd base
        prof = [(sh + 0.06 * h, 0.05), (sh + 0.14 * h, 0.07), (sh + 0.32 * h, 0.24 * sw),
                (sh + 0.48 * h, 0.2 * sw), (foot_y, 0.1 * sw)]
        base = [_Part(_lathe(prof, 0.01, 0.02), acc, shade="cylinder", gloss=0.75)]
    elif variant == 1:  # metal stem on a disc foot
        base = [
            _Part(_rrect(-0.018, sh - 0.05, 0.018, foot_y - 0.03, 0.0), det, shade="cylinder", gloss=0.8),
            _Part(_ellipse(0, sh + 0.3 * h, 0.04, 0.03), det, shade="sphere", gloss=0.8),
            _Part(_lathe([(foot_y - 0.04, 0.2 * sw), (foot_y, 0.22 * sw)], 0.04 * sw, 0.045 * sw),
                  det, shade="cylinder", gloss=0.8),
        ]
    else:  # column base
        prof = [(sh + 0.12 * h, 0.1 * sw), (foot_y - 0.06, 0.1 * sw), (foot_y - 0.04, 0.15 * sw),
                (foot_y, 0.15 * sw)]
        base = [
            _Part(_rrect(-0.018, sh - 0.05, 0.018, sh + 0.14 * h, 0.0), det, shade="cylinder", gloss=0.8),
            _Part(_lathe(prof, 0.02, 0.03), acc, shade="cylinder", gloss=0.6),
        ]
    return [
        *base,
        _Part(shade, shade_color, shade="cylinder", gloss=0.1, ambient=0.62, pattern=st.pattern,
              accent=acc, curve=0.18, block_at=0.8),
        _Part(_ellipse(0, 0.0, rt, 0.18 * rt), glow, shade="inside", ambient=0.75),
        _Part(_stroke(_arc(0, sh, rb, 0.18 * rb, 0.0, math.pi, 40), 0.012), _scale(shade_color, 0.8),
              shade="flat"),
    ]


def _watch(st: PhotoStyle) -> list[_Part]:
    strap, dial, metal = _c(st.base_color), _c(st.accent_color), _c(st.detail_color)
    variant = st.variant % 3
    sw = 0.36 * st.width
    R = 0.3 * (0.6 + 0.4 * st.width)
    h = 0.7 + 0.5 * st.height
    cy = h / 2
    top = _poly(_rounded([(-sw / 2, cy), (sw / 2, cy), (0.44 * sw, 0.0), (-0.44 * sw, 0.0)], 0.05))
    bottom = _poly(_rounded([(-sw / 2, cy), (sw / 2, cy), (0.44 * sw, h), (-0.44 * sw, h)], 0.12))
    parts: list[_Part] = []
    if variant == 1:  # metal bracelet
        links = [op for y in np.arange(0.04, h, 0.05) for op in _stroke([(-sw, y), (sw, y)], 0.008)]
        parts += [
            _Part(top, metal, shade="cylinder", gloss=0.8),
            _Part(bottom, metal, shade="cylinder", gloss=0.8),
            _Part(links, _shadow(metal), shade="flat", clip=top + bottom),
            _Part(_rrect(-0.16 * sw, 0, 0.16 * sw, h, 0), _scale(metal, 1.12), shade="flat",
                  clip=top + bottom, opacity=0.6),
        ]
    else:  # leather or rubber strap with holes, stitching, keeper and buckle
        stitch = []
        for s in (-1, 1):
            stitch += _dashes(np.array([(s * 0.4 * sw, 0.03), (s * 0.45 * sw, cy - R)]), 0.03, 0.02, 0.006)
            stitch += _dashes(np.array([(s * 0.45 * sw, cy + R), (s * 0.4 * sw, h - 0.05)]), 0.03, 0.02, 0.006)
        holes = [op for y in (h - 0.21, h - 0.145, h - 0.08) for op in _ellipse(0, y, 0.018, 0.018)]
        gloss = 0.35 if variant == 0 else 0.15
        parts += [
            _Part(_rrect(-0.6 * sw, 0.0, 0.6 * sw, 0.1, 0.03) + _cut(_rrect(-0.45 * sw, 0.025, 0.45 * sw, 0.075, 0.02)),
                  metal, shade="puffy", gloss=0.8, relief=0.2),
            _Part(top, strap, shade="puffy", gloss=gloss, relief=0.7),
            _Part(bottom, strap, shade="puffy", gloss=gloss, relief=0.7),
            _Part(_rrect(-0.55 * sw, 0.16, 0.55 * sw, 0.22, 0.01), _scale(strap, 0.85), shade="puffy",
                  gloss=gloss, relief=0.2),
            _Part(holes, _DARK, shade="flat"),
        ]
        if variant == 0:
            parts.append(_Part(stitch, _mix(strap, WHITE, 0.45), shade="flat"))
    lugs = [op for sx in (-1, 1) for sy in (-1, 1)
            for op in _rrect(sx * 0.36 * sw - 0.03, cy + sy * R * 0.95 - 0.06, sx * 0.36 * sw + 0.03,
                             cy + sy * R * 0.95 + 0.06, 0.015)]
    if variant == 2:
        case = _rrect(-R, cy - R, R, cy + R, 0.08)
        face = _rrect(-0.78 * R, cy - 0.78 * R, 0.78 * R, cy + 0.78 * R, 0.05)
        bezel = _rrect(-0.9 * R, cy - 0.9 * R, 0.9 * R, cy + 0.9 * R, 0.07)
    else:
        case = _ellipse(0, cy, R, R)
        bezel = _ellipse(0, cy, 0.9 * R, 0.9 * R)
        face = _ellipse(0, cy, 0.8 * R, 0.8 * R)
    ink = _contrast(dial)
    markers = []
    for k in range(12):
        a = k * math.pi / 6
        d = np.array([math.sin(a), -math.cos(a)])
        length = 0.14 if k % 3 == 0 else 0.08
        p0, p1 = d * 0.7 * R, d * (0.7 - length) * R
        markers += _stroke([(p0[0], cy + p0[1]), (p1[0], cy + p1[1])], 0.022 if k % 3 == 0 else 0.012)

    def hand(angle: float, length: float, width: float) -> Shape:
        d = np.array([math.sin(angle), -math.cos(angle)])
        n = np.array([d[1], -d[0]]) * width / 2
        tip, tail = d * length, -d * 0.08 * R
        return _poly([tail + n + (0, cy), tip + n * 0.3 + (0, cy), tip - n * 0.3 + (0, cy), tail - n + (0, cy)])

    sec = _c((200, 40, 40)) if _luma(dial) > 0.3 else _c((230, 120, 40))
    return parts + [
        _Part(lugs, metal, shade="cylinder", gloss=0.8),
        _Part(_rrect(R * 0.9, cy - 0.045, R + 0.06, cy + 0.045, 0.015), metal, shade="cylinder", gloss=0.8),
        _Part(case, metal, shade="sphere", gloss=0.9, ambient=0.45),
        _Part(bezel, _mix(metal, _DARK, 0.25), shade="sphere", gloss=0.7, ambient=0.5),
        _Part(face, dial, shade="flat", ambient=0.5),
        _Part(markers, ink, shade="flat"),
        _Part(hand(math.radians(305), 0.45 * R, 0.05), ink, shade="flat"),
        _Part(hand(math.radians(60), 0.66 * R, 0.035), ink, shade="flat"),
        _Part(_stroke([(0, cy + 0.12 * R), (0.25 * R, cy - 0.62 * R)], 0.008), sec, shade="flat"),
        _Part(_ellipse(0, cy, 0.025, 0.025), metal, shade="sphere", gloss=0.8),
        _Part(_ellipse(-0.25 * R, cy - 0.35 * R, 0.55 * R, 0.35 * R), WHITE, shade="flat", opacity=0.12,
              clip=face),
    ]


def _headphones(st: PhotoStyle) -> list[_Part]:
    shell, acc, det = _c(st.base_color), _c(st.accent_color), _c(st.detail_color)
    X, h = 0.36 * st.width, st.height
    cup_y, rx, ry = 0.7 * h, 0.14, 0.21 * h
    band_y = 0.44 * h
    metal = _mix(det, WHITE, 0.35)
    band = _stroke(_arc(0, band_y, X, band_y - 0.02, math.pi, 2 * math.pi, 80), 0.08)
    pad = _stroke(_arc(0, band_y, X - 0.05, band_y - 0.075, 1.2 * math.pi, 1.8 * math.pi, 60), 0.075)
    parts = [
        _Part(band, shell, shade="puffy", gloss=st.gloss, relief=0.35),
        _Part(pad, _shadow(det), shade="puffy", gloss=0.15, relief=0.45),
    ]
    for s in (-1, 1):
        cx = s * X
        ring = _ellipse(cx, cup_y, 0.3 * rx, 0.3 * ry) + _cut(_ellipse(cx, cup_y, 0.2 * rx, 0.2 * ry))
        parts += [
            _Part(_rrect(cx - 0.014, band_y - 0.03, cx + 0.014, cup_y - ry - 0.02, 0.0), metal,
                  shade="cylinder", gloss=0.9),
            _Part(_stroke(_arc(cx, cup_y, rx + 0.035, ry + 0.035, 1.15 * math.pi, 1.85 * math.pi, 40), 0.024),
                  metal, shade="puffy", gloss=0.8, relief=0.15),
            _Part(_ellipse(cx - s * 0.085, cup_y + 0.005, 0.085, ry * 0.97), _shadow(det), shade="puffy",
                  gloss=0.15, relief=0.6),
            _Part(_ellipse(cx, cup_y, rx, ry), shell, shade="sphere", gloss=st.gloss, ambient=0.4),
            _Part(_ellipse(cx + s * 0.008, cup_y, 0.74 * rx, 0.74 * ry), _scale(shell, 0.93), shade="sphere",
                  gloss=st.gloss, ambient=0.55),
            _Part(ring, acc, shade="flat", gloss=0.5),
        ]
    return parts


def _backpack(st: PhotoStyle) -> list[_Part]:
    base, acc, det = _c(st.base_color), _c(st.accent_color), _c(st.detail_color)
    bw, h = 0.78 * st.width, 1.0 * st.height
    half = bw / 2
    straps = []
    for s in (-1, 1):
        straps += _stroke(_spline([(s * 0.3 * bw, 0.12 * h), (s * 0.56 * bw, 0.38 * h),
                                   (s * 0.55 * bw, 0.7 * h), (s * 0.42 * bw, 0.9 * h)]), 0.085)
    body = _rrect(-half, 0.05 * h, half, h, 0.85 * half, 0.1)
    r_top = 0.85 * half
    zip_path = np.vstack([
        [(-half + 0.06, 0.5 * h)],
        _arc(0, 0.05 * h + r_top, r_top - 0.06, r_top - 0.06, math.pi, 2 * math.pi, 40),
        [(half - 0.06, 0.5 * h)],
    ])
    pocket = _rrect(-0.68 * half, 0.56 * h, 0.68 * half, 0.94 * h, 0.09)
    pull = _rrect(0.3 * half, 0.6 * h, 0.36 * half, 0.7 * h, 0.01)
    return [
        _Part(straps, _shadow(base), shade="puffy", relief=0.4),
        _Part(_stroke([(-0.09, 0.1 * h), (-0.06, 0.0), (0.06, 0.0), (0.09, 0.1 * h)], 0.035), det,
              shade="puffy", relief=0.2),
        _Part(body, base, shade="puffy", gloss=st.gloss, relief=1.3, pattern=st.pattern, accent=acc,
              block_at=0.78, folds=0.03),
        _Part(_stroke(zip_path, 0.018), _shadow(base), shade="flat"),
        _Part(_rrect(half * 0.62, 0.24 * h, half * 0.7, 0.34 * h, 0.01), det, shade="cylinder", gloss=0.6),
        _Part(pocket, acc if st.pattern == "plain" else _scale(base, 0.9), shade="puffy", gloss=st.gloss,
              relief=0.8),
        _Part(_stroke([(-0.6 * half, 0.6 * h), (0.6 * half, 0.6 * h)], 0.016), _DARK, shade="flat"),
        _Part(pull, det, shade="cylinder", gloss=0.6),
        _Part(_rrect(-0.08, 0.4 * h, 0.08, 0.47 * h, 0.015), _mix(det, WHITE, 0.3), shade="puffy",
              relief=0.15),
    ]


def _handbag(st: PhotoStyle) -> list[_Part]:
    base, acc, det = _c(st.base_color), _c(st.accent_color), _c(st.detail_color)
    W, h = 0.5 * st.width, st.height
    variant = st.variant % 3
    top = 0.36 * h
    parts: list[_Part] = []
    if variant == 0:  # tote with two handles
        body = _poly(_rounded([(-W, top), (W, top), (0.86 * W, h), (-0.86 * W, h)], 0.08))
        for depth, color in ((0.0, _shadow(base)), (1.0, base)):
            arch = _spline([(-0.45 * W, top + 0.06 * depth), (-0.4 * W, 0.02), (0.4 * W, 0.02),
                            (0.45 * W, top + 0.06 * depth)])
            part = _Part(_stroke(arch, 0.05), color, shade="puffy", gloss=st.gloss, relief=0.25)
            if depth == 0.0:
                parts.append(part)
            else:
                handle = part
        parts += [
            _Part(body, base, shade="puffy", gloss=st.gloss, relief=1.0, pattern=st.pattern, accent=acc,
                  block_at=0.72),
            _Part(_dashes(_rounded([(-W + 0.04, top + 0.04), (W - 0.04, top + 0.04)], 0.0)[[0, -1]], 0.03, 0.02,
                          0.007), _mix(base, WHITE, 0.35), shade="flat"),
            handle,
        ]
        for s in (-1, 1):
            parts.append(_Part(_rrect(s * 0.45 * W - 0.04, top + 0.02, s * 0.45 * W + 0.04, top + 0.12, 0.01),
                               _scale(base, 0.85), shade="puffy", relief=0.15, gloss=st.gloss))
        return parts
    if variant == 1:  # satchel with flap, clasp and one handle
        body = _rrect(-W, top, W, h, 0.09)
        flap_y = top + 0.42 * (h - top)
        flap = _poly(np.vstack([[(-W, top)], _spline([(-W, top + 0.02), (-0.95 * W, flap_y - 0.05),
                                                      (-0.7 * W, flap_y), (0.7 * W, flap_y),
                                                      (0.95 * W, flap_y - 0.05), (W, top + 0.02)]),
                                [(W, top)]]))
        flap_color = acc if st.pattern != "plain" else _scale(base, 0.9)
        parts += [
            _Part(_stroke(_spline([(-0.3 * W, top), (-0.25 * W, top - 0.22), (0.25 * W, top - 0.22),
                                   (0.3 * W, top)]), 0.05), base, shade="puffy", gloss=st.gloss, relief=0.25),
            _Part(body, base, shade="puffy", gloss=st.gloss, relief=1.0),
            _Part(flap + _rrect(-W, top, W, top + 0.05, 0.02), flap_color, shade="puffy", gloss=st.gloss,
                  relief=0.7),
            _Part(_dashes(_spline([(-0.9 * W, flap_y - 0.06), (-0.68 * W, flap_y - 0.03),
                                   (0.68 * W, flap_y - 0.03), (0.9 * W, flap_y - 0.06)]),
                          0.03, 0.02, 0.007), _mix(flap_color, WHITE, 0.4), shade="flat"),
            _Part(_rrect(-0.07, flap_y - 0.04, 0.07, flap_y + 0.05, 0.015), det, shade="puffy", gloss=0.9,
                  relief=0.15),
        ]
        return parts
    # half-moon bag with a top handle
    body = _poly(_arc(0, top, W, h - top, 0.0, math.pi, 80))
    return [
        _Part(_stroke(_spline([(-0.5 * W, top), (-0.42 * W, 0.0), (0.42 * W, 0.0), (0.5 * W, top)]), 0.07),
              acc, shade="puffy", gloss=st.gloss, relief=0.3),
        _Part(body, base, shade="puffy", gloss=st.gloss, relief=1.2, pattern=st.pattern, accent=acc,
              block_at=0.65),
        _Part(_stroke([(-0.9 * W, top + 0.035), (0.9 * W, top + 0.035)], 0.02), det, shade="flat"),
        _Part(_rrect(0.55 * W, top + 0.03, 0.6 * W, top + 0.12, 0.01), det, shade="cylinder", gloss=0.8),
    ]


def _rotate(parts: list[_Part], degrees: float) -> list[_Part]:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])

    def turn(shape: Shape | None) -> Shape | None:
        return None if shape is None else [replace(op, pts=op.pts @ rot.T) for op in shape]

    return [replace(p, shape=turn(p.shape), clip=turn(p.clip)) for p in parts]


def _sneaker(st: PhotoStyle) -> list[_Part]:
    upper_c, acc, det = _c(st.base_color), _c(st.accent_color), _c(st.detail_color)
    L, H = st.width, st.height
    variant = st.variant % 3
    collar = -0.1 * H if variant == 2 else 0.06 * H
    sole_top = 0.33 * H
    upper = _poly(_spline([
        (0.05 * L, sole_top + 0.02), (0.005 * L, 0.22 * H), (0.02 * L, collar + 0.05 * H), (0.08 * L, collar),
        (0.2 * L, collar + 0.05 * H), (0.3 * L, 0.05 * H), (0.35 * L, 0.0), (0.42 * L, 0.03 * H),
        (0.56 * L, 0.13 * H), (0.75 * L, 0.2 * H), (0.92 * L, 0.24 * H), (0.995 * L, 0.3 * H),
        (0.97 * L, sole_top + 0.02), (0.5 * L, sole_top + 0.03),
    ], closed=True))
    sole_h = (0.13 if variant == 1 else 0.1) * H
    sole = _poly(_spline([
        (0.02 * L, sole_top - 0.01), (0.5 * L, sole_top + 0.005), (0.86 * L, sole_top - 0.005),
        (0.975 * L, sole_top - 0.02), (1.005 * L, sole_top + 0.04), (0.985 * L, sole_top + sole_h),
        (0.5 * L, sole_top + sole_h + 0.005), (0.04 * L, sole_top + sole_h), (0.0, sole_top + 0.05),
    ], closed=True))
    outsole = _rrect(0.0, sole_top + sole_h - 0.03, 1.0 * L, sole_top + sole_h + 0.02, 0.02)
    block = st.pattern != "plain"
    sole_color = acc if (block and variant == 0) else _mix(WHITE, acc, 0.06)
    toe = _ellipse(1.0 * L, 0.34 * H, 0.2 * L, 0.13 * H)
    heel = _poly(_spline([(0.0, 0.12 * H), (0.17 * L, 0.16 * H), (0.2 * L, 0.36 * H), (0.0, 0.36 * H)],
                         closed=True))
    parts = [
        _Part(_rrect(0.29 * L, -0.03 * H, 0.4 * L, 0.2 * H, 0.03), _scale(upper_c, 0.92), shade="puffy",
              relief=0.2),
        _Part(upper, upper_c, shade="puffy", gloss=st.gloss, relief=0.55, folds=0.02),
        _Part(toe, acc if block else _scale(upper_c, 0.95), shade="puffy", gloss=st.gloss, clip=upper,
              relief=0.4),
        _Part(heel, acc if block else _shadow(upper_c), shade="puffy", gloss=st.gloss, clip=upper, relief=0.4),
        _Part(_stroke(_spline([(0.04 * L, collar + 0.03 * H), (0.1 * L, collar + 0.015 * H),
                               (0.2 * L, collar + 0.065 * H), (0.29 * L, 0.07 * H)]), 0.025 * H),
              _shadow(upper_c), shade="puffy", relief=0.1),
    ]
    if variant == 1:  # court shoe: three side stripes
        for k in range(3):
            x = 0.42 * L + k * 0.06 * L
            parts.append(_Part(_poly([(x, 0.09 * H + k * 0.03 * H), (x + 0.035 * L, 0.11 * H + k * 0.03 * H),
                                      (x - 0.04 * L, sole_top + 0.01), (x - 0.075 * L, sole_top)]),
                               acc, shade="puffy", relief=0.15, clip=upper))
    else:  # runner: a curved side logo
        top_curve = _spline([(0.22 * L, 0.27 * H), (0.45 * L, 0.26 * H), (0.72 * L, 0.16 * H)], n=20)
        low_curve = _spline([(0.72 * L, 0.16 * H), (0.45 * L, 0.3 * H), (0.2 * L, 0.29 * H)], n=20)
        parts.append(_Part(_poly(np.vstack([top_curve, low_curve])), acc if not block else det,
                           shade="puffy", relief=0.15, clip=upper))
    if variant == 2:
        parts.append(_Part(_ellipse(0.2 * L, 0.06 * H, 0.045 * L, 0.045 * L), acc, shade="puffy", relief=0.1))
    lace_line = _spline([(0.33 * L, 0.05 * H), (0.45 * L, 0.09 * H), (0.6 * L, 0.155 * H)], n=20)
    laces, eyelets = [], []
    for t in np.linspace(0.05, 0.95, 5):
        i = int(t * (len(lace_line) - 1))
        p = lace_line[i]
        d = lace_line[min(i + 1, len(lace_line) - 1)] - lace_line[max(i - 1, 0)]
        nrm = np.array([d[1], -d[0]]) / np.linalg.norm(d)
        laces += _stroke([p - nrm * 0.035 - d * 0.3, p + nrm * 0.035 + d * 0.3], 0.022)
        eyelets += _ellipse(*(p + nrm * 0.045), 0.01, 0.01)
    parts += [
        _Part(eyelets, _shadow(upper_c), shade="flat"),
        _Part(laces, det, shade="puffy", gloss=0.3, relief=0.1),
        _Part(sole, sole_color, shade="puffy", gloss=0.2, relief=0.25),
        _Part(outsole, _scale(_mix(det, _c((90, 70, 50)), 0.3), 0.8), shade="puffy", relief=0.15),
        _Part(_dashes(np.array([(0.06 * L, sole_top - 0.02), (0.9 * L, sole_top - 0.02)]), 0.02, 0.015, 0.006),
              _shadow(upper_c), shade="flat", clip=upper),
        _Part(_stroke([(0.04 * L, sole_top + 0.045 * H), (0.96 * L, sole_top + 0.045 * H)], 0.008),
              _scale(sole_color, 0.8), shade="flat", clip=sole),
    ]
    return _rotate(parts, -14.0 - 10.0 * (st.width - 0.85) / 0.3)


def _tshirt(st: PhotoStyle) -> list[_Part]:
    base, acc = _c(st.base_color), _c(st.accent_color)
    W, H = st.width, st.height
    variant = st.variant % 3
    nw = 0.11
    hem = 0.95 * H
    if variant == 1:  # long sleeves
        sleeve = [(0.6 * W, 0.78 * H), (0.49 * W, 0.8 * H), (0.32 * W, 0.3)]
    else:
        sleeve = [(0.54 * W, 0.3), (0.42 * W, 0.39), (0.32 * W, 0.31)]
    right = [(nw, 0.0), (0.3 * W, 0.04), *sleeve, (0.33 * W, hem)]
    left = [(-x, y) for x, y in reversed(right)]
    outline = _rounded(right + left, 0.025)
    back_neck = _spline([(-nw, 0.0), (0.0, 0.025), (nw, 0.0)], n=12)
    front_neck = ([(-nw, 0.0), (0.0, 0.2), (nw, 0.0)] if variant == 2
                  else _spline([(-nw, 0.0), (-0.07, 0.08), (0.0, 0.1), (0.07, 0.08), (nw, 0.0)], n=12))
    body = _poly(outline) + _cut(_poly(np.vstack([back_neck, [(nw, -0.2), (-nw, -0.2)]])))
    sleeve_end = np.array(sleeve[:2])
    hem_stitch = []
    for s in (-1, 1):
        a, b = sleeve_end * (s, 1)
        inward = np.array(sleeve[2]) * (s, 1) - (a + b) / 2
        d = inward / np.linalg.norm(inward) * 0.035
        hem_stitch += _dashes(np.array([a + d, b + d]), 0.02, 0.015, 0.006)
    hem_stitch += _dashes(np.array([(-0.31 * W, hem - 0.04), (0.31 * W, hem - 0.04)]), 0.02, 0.015, 0.006)
    return [
        _Part(body, base, shade="puffy", relief=0.8, folds=0.06, pattern=st.pattern, accent=acc,
              block_at=0.55, gloss=st.gloss),
        _Part(_poly(np.vstack([back_neck[::-1], front_neck[1:-1]])), _scale(base, 0.62), shade="inside",
              ambient=0.6),
        _Part(_stroke(front_neck, 0.035), _scale(base, 0.94) if st.pattern == "plain" else acc,
              shade="puffy", relief=0.1),
        _Part(hem_stitch, _shadow(base), shade="flat", opacity=0.7, clip=body),
    ]


def _dress(st: PhotoStyle) -> list[_Part]:
    base, acc = _c(st.base_color), _c(st.accent_color)
    W, H = st.width, st.height
    variant = st.variant % 3
    waist_y = 0.36
    hem = (1.05 if variant == 2 else 0.9) * H
    flare = (0.32 if variant == 2 else 0.42) * W
    right = _spline([(0.12, waist_y), (0.17 * W, waist_y + 0.1), (0.72 * flare, waist_y + 0.62 * (hem - waist_y)),
                     (flare, hem)], n=14)
    left = np.stack([-right[::-1, 0], right[::-1, 1]], axis=1)
    skirt = _poly(np.vstack([right, _arc(0, hem, flare, 0.05, 0.0, math.pi, 40), left]))
    inside: Shape = []
    if variant == 1:  # cap sleeves and a round neck
        half = [(-0.12, waist_y + 0.01), (-0.15, 0.17), (-0.2, 0.2), (-0.25, 0.11), (-0.17, 0.02), (-0.07, 0.0)]
        bodice = _poly(_rounded(half + [(-x, y) for x, y in reversed(half)], 0.025))
        inside = _poly(np.vstack([[(-0.07, 0.0)], _spline([(-0.07, 0.0), (0.0, 0.07), (0.07, 0.0)], n=10)[1:],
                                  [(0.0, 0.012)]]))
        straps: Shape = []
    else:  # sleeveless with straps and a sweetheart or V neckline
        neck = [(0.0, 0.16)] if variant == 0 else [(0.0, 0.22)]
        bodice = _poly([(-0.12, waist_y + 0.01), (-0.15, 0.18), (-0.13, 0.1), (-0.05, 0.11), *neck,
                        (0.05, 0.11), (0.13, 0.1), (0.15, 0.18), (0.12, waist_y + 0.01)])
        straps = _stroke([(-0.115, 0.11), (-0.1, 0.0)], 0.022) + _stroke([(0.115, 0.11), (0.1, 0.0)], 0.022)
    skirt_color = acc if st.pattern == "block" else base
    pattern = "plain" if st.pattern == "block" else st.pattern
    parts = [
        _Part(skirt, skirt_color, shade="puffy", relief=0.7, folds=0.04, pattern=pattern, accent=acc,
              gloss=st.gloss, fan=(0.0, waist_y - 0.3, 0.4, 11 + 4 * variant)),
        _Part(bodice, base, shade="puffy", relief=0.5, folds=0.03, pattern=pattern, accent=acc, gloss=st.gloss),
        _Part(_rrect(-0.15, waist_y - 0.02, 0.15, waist_y + 0.035, 0.0), acc if st.pattern != "block" else base,
              shade="puffy", relief=0.12, clip=skirt + bodice, gloss=0.3),
    ]
    if straps:
        parts.insert(0, _Part(straps, base, shade="puffy", relief=0.1))
    if inside:
        parts.append(_Part(inside, _scale(base, 0.6), shade="inside", ambient=0.6))
    return parts


def _sunglasses(st: PhotoStyle) -> list[_Part]:
    lens, tint2, frame = _c(st.base_color), _c(st.accent_color), _c(st.detail_color)
    W, H = st.width, st.height
    variant = st.variant % 3
    cx, cy = 0.25 * W, 0.78
    half_width, rim = [(0.22, 0.06), (0.2, 0.03), (0.2, 0.025)][variant]
    shape = [
        [(-0.22, -0.16), (0.22, -0.17), (0.18, 0.15), (-0.17, 0.17)],  # wayfarer
        [],  # round
        [(-0.21, -0.15), (0.0, -0.17), (0.21, -0.14), (0.19, 0.1), (0.04, 0.21), (-0.13, 0.14)],  # aviator
    ][variant]

    def outline(side: int, k: float) -> np.ndarray:
        """The right (side 1) or left (side -1) lens, grown by ``k`` for its frame."""
        if variant == 1:
            return _arc(side * cx, cy, 0.2 * W * k, 0.2 * H * k, n=80)
        pts = [(side * (x * W * k + cx), y * H * k + cy) for x, y in shape]
        return _rounded(pts, 0.08 * k) if variant == 0 else _spline(pts, closed=True)

    k_frame = 1.0 + rim / (half_width * W)
    hinge_x, hinge_y = cx + half_width * W * k_frame, cy - 0.1 * H
    parts = []
    for s in (-1, 1):
        # the temples recede away from the camera, so they converge and thin out
        temple = _spline([(s * hinge_x, hinge_y), (s * (hinge_x - 0.015), 0.42), (s * (hinge_x - 0.1), 0.16)])
        w = 0.045 if variant == 0 else 0.03
        parts.append(_Part(_stroke(temple, w, 0.55 * w), _shadow(frame), shade="puffy", gloss=0.6, relief=0.2))
    bridge = _spline([(-cx + 0.16, cy - 0.11 * H), (0.0, cy - 0.14 * H), (cx - 0.16, cy - 0.11 * H)])
    parts.append(_Part(_stroke(bridge, 0.05 if variant == 0 else 0.025), frame, shade="puffy", gloss=0.7,
                       relief=0.15))
    if variant == 2:
        parts.append(_Part(_stroke([(-cx + 0.1, cy - 0.16 * H), (cx - 0.1, cy - 0.16 * H)], 0.02), frame,
                           shade="puffy", gloss=0.8, relief=0.1))
    for s in (-1, 1):
        lens_shape = _poly(outline(s, 1.0))
        parts += [
            _Part(_poly(outline(s, k_frame)), frame, shade="puffy", gloss=0.7, relief=0.25),
            _Part(lens_shape, lens, shade="sphere", gloss=0.95, ambient=0.75, color_bottom=tint2),
            _Part(_poly([(s * cx - 0.2, cy + 0.02), (s * cx - 0.02, cy - 0.2), (s * cx + 0.04, cy - 0.2),
                         (s * cx - 0.14, cy + 0.02)]), WHITE, shade="flat", opacity=0.22, clip=lens_shape),
            _Part(_rrect(s * hinge_x - 0.03, hinge_y - 0.025, s * hinge_x + 0.03, hinge_y + 0.03, 0.01),
                  _mix(frame, WHITE, 0.35), shade="cylinder", gloss=0.9),
        ]
    return parts


def _chair(st: PhotoStyle) -> list[_Part]:
    fabric, acc, wood = _c(st.base_color), _c(st.accent_color), _c(st.detail_color)
    W, H = st.width, st.height
    variant = st.variant % 3
    seat_back, seat_front = 0.55 * H, 0.66 * H
    bw, fw = 0.34 * W, 0.42 * W

    def leg(x0: float, y0: float, x1: float, y1: float, w: float) -> Shape:
        return _poly([(x0 - w, y0), (x0 + w, y0), (x1 + w * 0.6, y1), (x1 - w * 0.6, y1)])

    back_legs = leg(-bw + 0.04, seat_back, -bw + 0.02, 0.95 * H + 0.1, 0.022) + leg(
        bw - 0.04, seat_back, bw - 0.02, 0.95 * H + 0.1, 0.022)
    front_legs = leg(-fw + 0.05, seat_front, -fw + 0.02, H + 0.12, 0.03) + leg(
        fw - 0.05, seat_front, fw - 0.02, H + 0.12, 0.03)
    seat_top = _poly(_rounded([(-bw, seat_back), (bw, seat_back), (fw, seat_front), (-fw, seat_front)], 0.04))
    parts = [_Part(back_legs, _scale(wood, 0.75), shade="cylinder", gloss=0.35)]
    if variant == 1:  # moulded shell on splayed wooden legs with a wire base
        shell = _poly(_spline([
            (-0.36 * W, 0.03), (0.0, 0.0), (0.36 * W, 0.03), (0.4 * W, 0.14 * H), (0.37 * W, 0.36 * H),
            (0.38 * W, seat_back + 0.02), (0.42 * W, seat_front), (0.32 * W, seat_front + 0.07),
            (0.0, seat_front + 0.08), (-0.32 * W, seat_front + 0.07), (-0.42 * W, seat_front),
            (-0.38 * W, seat_back + 0.02), (-0.37 * W, 0.36 * H), (-0.4 * W, 0.14 * H),
        ], closed=True))
        crease = _spline([(-0.33 * W, seat_back - 0.01), (0.0, seat_back + 0.02), (0.33 * W, seat_back - 0.01)])
        lip = _spline([(-0.4 * W, seat_front + 0.01), (0.0, seat_front + 0.05), (0.4 * W, seat_front + 0.01)])
        wires = _stroke([(-fw + 0.05, H - 0.05), (bw - 0.04, seat_back + 0.2), (-bw + 0.04, seat_back + 0.2),
                         (fw - 0.05, H - 0.05)], 0.012)
        parts = [
            _Part(leg(-bw + 0.06, seat_back, -bw - 0.02, 0.95 * H + 0.1, 0.02)
                  + leg(bw - 0.06, seat_back, bw + 0.02, 0.95 * H + 0.1, 0.02), _scale(wood, 0.75),
                  shade="cylinder", gloss=0.35),
            _Part(wires, _c((60, 60, 62)), shade="puffy", gloss=0.8, relief=0.1),
            _Part(leg(-fw + 0.08, seat_front, -fw - 0.03, H + 0.12, 0.025)
                  + leg(fw - 0.08, seat_front, fw + 0.03, H + 0.12, 0.025), wood, shade="cylinder", gloss=0.35),
            _Part(shell, fabric, shade="puffy", relief=1.4, gloss=st.gloss),
            _Part(_stroke(crease, 0.05), _scale(fabric, 0.8), shade="puffy", relief=0.3, opacity=0.55, clip=shell),
            _Part(_stroke(lip, 0.025), _scale(fabric, 1.1), shade="puffy", relief=0.2, opacity=0.6, clip=shell),
        ]
        return parts
    if variant == 2:  # wooden frame with slats and a seat pad
        posts = (_stroke([(-bw + 0.03, seat_back), (-bw + 0.01, 0.02)], 0.055)
                 + _stroke([(bw - 0.03, seat_back), (bw - 0.01, 0.02)], 0.055))
        slats = [op for y in (0.03, 0.18, 0.33) for op in _rrect(-bw, y * H, bw, y * H + 0.115, 0.025)]
        parts += [
            _Part(posts, wood, shade="cylinder", gloss=0.35),
            _Part(slats, _scale(wood, 1.05), shade="puffy", relief=0.2, gloss=0.3),
        ]
    else:  # upholstered dining chair
        parts += [
            _Part(_rrect(-bw, 0.0, bw, seat_back + 0.02, 0.09, 0.0), fabric, shade="puffy", relief=1.0,
                  folds=0.02, gloss=st.gloss, pattern=st.pattern, accent=acc, block_at=0.0, pattern_scale=1.2),
            _Part(_stroke(_rrect(-bw + 0.01, 0.01, bw - 0.01, seat_back + 0.2, 0.08, 0.0)[0].pts[:-20], 0.012),
                  _scale(fabric, 0.8), shade="flat", opacity=0.6, clip=_rrect(-bw, 0.0, bw, seat_back, 0.09, 0.0)),
        ]
    seat_color = acc if variant == 2 else _scale(fabric, 1.06)
    parts += [
        _Part(front_legs, wood, shade="cylinder", gloss=0.35),
        _Part(_rrect(-fw, seat_front - 0.02, fw, seat_front + 0.07, 0.03), _scale(seat_color, 0.82),
              shade="puffy", relief=0.3, gloss=st.gloss),
        _Part(seat_top, seat_color, shade="puffy", relief=0.9, gloss=st.gloss, folds=0.02),
    ]
    return parts


# --------------------------------------------------------------------------------------------------
# Styles per category.


@dataclass(frozen=True)
class _CategorySpec:
    draw: Callable[[PhotoStyle], list[_Part]]
    bases: tuple[RGB, ...]
    accents: tuple[RGB, ...]
    details: tuple[RGB, ...]
    gloss: tuple[float, float]
    patterns: tuple[float, float, float, float]  # probabilities of plain, stripes, dots, block
    variants: int = 3


_CERAMIC: tuple[RGB, ...] = ((240, 238, 232), (235, 225, 205), (45, 45, 50), (35, 55, 95), (140, 165, 130),
                             (190, 95, 70), (215, 165, 50), (235, 180, 185), (130, 175, 215), (185, 45, 50))
_FABRIC: tuple[RGB, ...] = ((245, 245, 242), (40, 40, 44), (150, 152, 158), (35, 50, 90), (185, 40, 45),
                            (95, 110, 60), (215, 170, 60), (140, 185, 220), (230, 160, 175), (40, 100, 70))
_BRIGHT: tuple[RGB, ...] = ((245, 245, 240), (210, 50, 50), (30, 90, 180), (240, 190, 40), (40, 150, 110),
                            (240, 120, 40), (30, 30, 34), (120, 60, 160), (230, 110, 150))
_METAL: tuple[RGB, ...] = ((200, 200, 205), (212, 175, 95), (205, 145, 125), (85, 88, 95), (40, 40, 44))
_WOOD: tuple[RGB, ...] = ((185, 140, 90), (110, 70, 45), (45, 42, 40), (200, 165, 110))

_SPECS: dict[str, _CategorySpec] = {
    "mug": _CategorySpec(_mug, _CERAMIC, _BRIGHT, _METAL, (0.45, 0.9), (0.5, 0.15, 0.15, 0.2)),
    "bottle": _CategorySpec(
        _bottle, ((40, 95, 60), (120, 65, 25), (60, 75, 90), (40, 70, 150), (200, 60, 50), (60, 160, 150),
                  (240, 130, 40), (225, 225, 220), (150, 110, 170)),
        ((240, 232, 210), (250, 250, 245), (30, 30, 34), (215, 175, 90), (170, 40, 45)),
        _METAL + ((30, 30, 34), (245, 245, 240)), (0.6, 1.0), (0.75, 0.1, 0.1, 0.05)),
    "sneaker": _CategorySpec(
        _sneaker, ((245, 245, 242), (35, 35, 38), (140, 142, 148), (190, 40, 45), (35, 75, 160),
                   (215, 195, 160), (95, 110, 70), (235, 170, 185)),
        _BRIGHT, ((250, 250, 248), (30, 30, 32), (200, 200, 200)), (0.05, 0.4), (0.6, 0.0, 0.0, 0.4)),
    "t-shirt": _CategorySpec(_tshirt, _FABRIC, _BRIGHT, _METAL, (0.0, 0.08), (0.5, 0.25, 0.1, 0.15)),
    "handbag": _CategorySpec(
        _handbag, ((30, 30, 32), (180, 120, 70), (150, 80, 40), (120, 30, 45), (235, 225, 205),
                   (225, 175, 165), (35, 50, 90), (90, 100, 60)),
        ((215, 175, 95), (30, 30, 32), (235, 225, 205), (150, 80, 40), (185, 45, 50)), _METAL,
        (0.15, 0.6), (0.75, 0.05, 0.05, 0.15)),
    "watch": _CategorySpec(
        _watch, ((30, 30, 32), (100, 60, 35), (175, 120, 70), (35, 50, 90), (90, 100, 60), (40, 110, 90)),
        ((245, 244, 238), (25, 25, 28), (30, 45, 90), (30, 80, 60), (235, 225, 200), (150, 150, 155)),
        _METAL, (0.2, 0.5), (1.0, 0.0, 0.0, 0.0)),
    "lamp": _CategorySpec(
        _lamp, ((245, 242, 232), (230, 215, 190), (205, 190, 165), (150, 170, 140), (45, 45, 48),
                (215, 165, 50), (180, 95, 70)),
        _CERAMIC, _METAL + ((30, 30, 32),), (0.3, 0.8), (0.8, 0.15, 0.0, 0.05)),
    "headphones": _CategorySpec(
        _headphones, ((30, 30, 34), (240, 240, 236), (180, 182, 188), (35, 50, 90), (215, 170, 165),
                      (150, 165, 140), (215, 200, 175), (185, 45, 50)),
        _METAL + ((185, 45, 50), (30, 90, 180)), ((40, 40, 44), (120, 120, 126), (200, 200, 205)),
        (0.3, 0.75), (1.0, 0.0, 0.0, 0.0)),
    "backpack": _CategorySpec(
        _backpack, ((35, 50, 90), (35, 35, 38), (95, 110, 60), (185, 45, 50), (215, 165, 50), (130, 132, 138),
                    (40, 120, 120), (175, 120, 70)),
        _BRIGHT + ((175, 120, 70),), ((30, 30, 32), (200, 200, 205), (175, 120, 70)),
        (0.0, 0.2), (0.6, 0.1, 0.1, 0.2)),
    "dress": _CategorySpec(
        _dress, ((185, 35, 45), (30, 30, 34), (30, 45, 90), (25, 110, 80), (235, 180, 180), (215, 170, 60),
                 (170, 150, 210), (245, 242, 235), (120, 35, 60)),
        ((245, 245, 240), (30, 30, 34), (215, 175, 95), (235, 180, 185), (240, 190, 40)), _METAL,
        (0.0, 0.25), (0.5, 0.1, 0.25, 0.15)),
    "sunglasses": _CategorySpec(
        _sunglasses, ((40, 40, 45), (90, 60, 35), (50, 70, 55), (40, 80, 140), (150, 70, 90)),
        ((150, 150, 155), (200, 150, 100), (150, 180, 160), (140, 180, 220), (235, 170, 180)),
        ((25, 25, 28), (110, 65, 35), (212, 175, 95), (185, 45, 50), (200, 200, 205)),
        (0.8, 1.0), (1.0, 0.0, 0.0, 0.0)),
    "vase": _CategorySpec(
        _vase, _CERAMIC + ((40, 70, 150), (170, 200, 180), (120, 30, 35), (185, 110, 75)), _BRIGHT + _CERAMIC,
        _METAL, (0.35, 0.9), (0.55, 0.15, 0.15, 0.15)),
    "perfume": _CategorySpec(
        _perfume, ((235, 150, 170), (225, 165, 60), (235, 210, 140), (185, 160, 215), (90, 140, 210),
                   (230, 230, 222), (120, 190, 140), (200, 60, 80)),
        ((212, 175, 95), (200, 200, 205), (25, 25, 28), (245, 245, 240), (205, 145, 125)),
        ((25, 25, 28), (212, 175, 95), (245, 245, 240), (200, 200, 205)),
        (0.8, 1.0), (1.0, 0.0, 0.0, 0.0)),
    "chair": _CategorySpec(
        _chair, ((150, 152, 158), (215, 165, 50), (40, 120, 120), (225, 175, 170), (35, 50, 90), (235, 228, 210),
                 (60, 100, 70), (185, 95, 70), (245, 245, 242)),
        ((185, 140, 90), (225, 215, 195), (150, 152, 158), (35, 50, 90)), _WOOD,
        (0.05, 0.4), (0.85, 0.0, 0.0, 0.15)),
}

PHOTO_CATEGORIES: tuple[str, ...] = tuple(_SPECS)


def _category_spec(category: str) -> _CategorySpec:
    spec = _SPECS.get(category.strip().lower()) if isinstance(category, str) else None
    if spec is None:
        raise PhotoInputError(
            f"unknown photo category {category!r}; valid categories: {', '.join(PHOTO_CATEGORIES)}"
        )
    return spec


def _jitter(rgb: RGB, rng: np.random.Generator) -> RGB:
    """The colour moved a little in hue, saturation and value, so no two products match exactly."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    h = (h + rng.uniform(-0.025, 0.025)) % 1.0
    s = min(1.0, s * rng.uniform(0.85, 1.15))
    v = min(1.0, max(0.12, v * rng.uniform(0.9, 1.08)))
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def random_style(category: str, rng: np.random.Generator) -> PhotoStyle:
    """A plausible style for ``category``: colours from the category's palettes (jittered), its typical
    gloss range, a pattern with the category's odds, proportions within about +-15 % and a variant."""
    spec = _category_spec(category)
    base = _jitter(spec.bases[rng.integers(len(spec.bases))], rng)
    accents = [a for a in spec.accents if sum(abs(x - y) for x, y in zip(a, base, strict=True)) > 120]
    accent = _jitter((accents or list(spec.accents))[rng.integers(len(accents or spec.accents))], rng)
    detail = _jitter(spec.details[rng.integers(len(spec.details))], rng)
    pattern = PHOTO_PATTERNS[rng.choice(len(PHOTO_PATTERNS), p=np.asarray(spec.patterns) / sum(spec.patterns))]
    return PhotoStyle(
        base_color=base,
        accent_color=accent,
        detail_color=detail,
        pattern=pattern,
        gloss=float(rng.uniform(*spec.gloss)),
        width=float(rng.uniform(0.85, 1.15)),
        height=float(rng.uniform(0.88, 1.12)),
        variant=int(rng.integers(spec.variants)),
    )


def _visible_bbox(part: _Part) -> np.ndarray:
    box = _bbox(part.shape)
    if part.clip is not None:
        clip = _bbox(part.clip)
        box = np.r_[np.maximum(box[:2], clip[:2]), np.minimum(box[2:], clip[2:])]
    return box


def draw_product_photo(
    category: str, style: PhotoStyle | None = None, *, size: int = 384, seed: int = 0
) -> Image.Image:
    """Draw one product of ``category`` as a ``size`` x ``size`` RGBA cut-out on a transparent background.

    The same (category, style, seed) always gives the same pixels. Without a style, the style is
    ``random_style(category, np.random.default_rng(seed))``; the seed also moves the key light slightly.
    """
    spec = _category_spec(category)
    if not isinstance(size, int | np.integer) or size < 16:
        raise PhotoInputError(f"photo size must be an integer >= 16 pixels, got {size!r}")
    if style is None:
        style = random_style(category, np.random.default_rng(seed))
    light = _make_light(np.random.default_rng([_LIGHT_STREAM, seed & 0xFFFFFFFFFFFF]))
    parts = spec.draw(style)

    n = int(size) * _SUPERSAMPLE
    boxes = np.array([_visible_bbox(p) for p in parts])
    box = np.r_[boxes[:, :2].min(0), boxes[:, 2:].max(0)]
    extent = max((box[2] - box[0]) / _FRAME, (box[3] - box[1]) / _FRAME)
    scale = n / extent
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])

    def to_px(pts: np.ndarray) -> np.ndarray:
        return (pts - centre) * scale + n / 2

    canvas = _Canvas(n, light)
    for part in parts:
        canvas.paint(part, to_px, scale)
    return _downsample(canvas, int(size))


def _downsample(canvas: _Canvas, size: int) -> Image.Image:
    """Lanczos-downsample the premultiplied canvas, then un-premultiply (so edges get no dark fringe).

    Only the object's box (with a margin wider than the filter) is filtered; the rest is empty.
    """
    box = canvas.image.getbbox()
    out = np.zeros((size, size, 4), np.uint8)
    if box is None:
        return Image.fromarray(out)
    margin = 8 * _SUPERSAMPLE
    lo = [max(0, (v - margin) // _SUPERSAMPLE * _SUPERSAMPLE) for v in box[:2]]
    hi = [min(canvas.n, -(-(v + margin) // _SUPERSAMPLE) * _SUPERSAMPLE) for v in box[2:]]
    region = (lo[0], lo[1], hi[0], hi[1])
    small = canvas.image.crop(region).resize(((hi[0] - lo[0]) // _SUPERSAMPLE, (hi[1] - lo[1]) // _SUPERSAMPLE),
                           Image.Resampling.LANCZOS)
    arr = np.array(small.convert("RGBA"))  # Pillow un-premultiplies (and clamps)
    arr[arr[..., 3] == 0] = 0
    x0, y0 = lo[0] // _SUPERSAMPLE, lo[1] // _SUPERSAMPLE
    out[y0:y0 + arr.shape[0], x0:x0 + arr.shape[1]] = arr
    return Image.fromarray(out)
