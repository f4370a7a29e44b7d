"""Parts, lighting and compositing: how a list of parts becomes a premultiplied RGBA image.

Each part is rasterised at ``SUPERSAMPLE`` times the output size and composited back to front with the
premultiplied "over" operator (Porter & Duff 1984, "Compositing Digital Images"):
``C = c_src * a_src + C_dst * (1 - a_src)``. It is lit by one key light with Lambert diffuse plus
Blinn-Phong specular, ``I = k_a + k_d (n . l) + g (n . h)^s`` (Blinn 1977, "Models of light reflection
for computer synthesized pictures"), with normals from a cylinder (turned objects), an ellipsoid, or a
blurred copy of the mask used as a height field (soft goods). :func:`downsample` filters the canvas
down with a Lanczos filter and un-premultiplies it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from adcraft.simulator.photos.colors import Color
from adcraft.simulator.photos.geometry import Shape, bbox, ribbon

SUPERSAMPLE = 2


@dataclass
class Part:
    """One painted region: a shape, its colour and how light falls on it."""

    shape: Shape
    color: Color
    shade: str = "puffy"  # "cylinder", "sphere", "puffy", "flat", "inside"
    gloss: float = 0.0
    pattern: str = "plain"
    accent: Color = (1.0, 1.0, 1.0)
    clip: Shape | None = None
    opacity: float = 1.0
    relief: float = 1.0  # height-field radius of "puffy" shading, in units of 4.5 % of the frame
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


def make_light(rng: np.random.Generator) -> _Light:
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
                draw.polygon(ribbon(pts, w0, w1).ravel().tolist(), fill=fill)
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


class Canvas:
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
        self._clips: dict[int, tuple[Shape, Image.Image]] = {}

    def _box(self, shape: Shape, to_px: Callable[[np.ndarray], np.ndarray]) -> tuple[int, int, int, int] | None:
        """The canvas region a shape can touch, with even corners (a 2 x 2 block is one output pixel)."""
        b = bbox(shape)
        lo = to_px(b[:2]) - 2
        hi = to_px(b[2:]) + 2
        x0, y0 = (max(0, int(v) // SUPERSAMPLE * SUPERSAMPLE) for v in lo)
        x1, y1 = (min(self.n, -(-int(math.ceil(v)) // SUPERSAMPLE) * SUPERSAMPLE) for v in hi)
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def _clip_mask(self, clip: Shape, to_px: Callable[[np.ndarray], np.ndarray], scale: float) -> Image.Image:
        """The whole-canvas coverage of a clip shape, drawn once however many parts it clips."""
        cached = self._clips.get(id(clip))
        if cached is None or cached[0] is not clip:
            cached = (clip, _rasterize(clip, (0, 0, self.n, self.n), to_px, scale))
            self._clips[id(clip)] = cached
        return cached[1]

    def paint(self, part: Part, to_px: Callable[[np.ndarray], np.ndarray], scale: float) -> None:
        """Composite one part; ``to_px`` maps object units to canvas pixels, ``scale`` is pixels per unit."""
        box = self._box(part.shape, to_px)
        if box is None:
            return
        mask = _rasterize(part.shape, box, to_px, scale)
        if part.clip is not None:
            mask = ImageChops.multiply(mask, self._clip_mask(part.clip, to_px, scale).crop(box))
        inner = mask.getbbox()
        if inner is None:
            return
        # shrink to the painted pixels (clips and stroke ends can leave much of the box empty)
        inner = (inner[0] & ~1, inner[1] & ~1, min(mask.width, inner[2] + 1) & ~1, min(mask.height, inner[3] + 1) & ~1)
        if inner != (0, 0, mask.width, mask.height):
            mask = mask.crop(inner)
            box = (box[0] + inner[0], box[1] + inner[1], box[0] + inner[2], box[1] + inner[3])
        small = mask.reduce(SUPERSAMPLE)
        fan_at = None if part.fan is None else to_px(np.array(part.fan[:2])) / self.n
        planes = self._surface(part, small, box, fan_at)
        opaque = Image.new("L", small.size, 255)
        color = Image.merge("RGBa", [*(Image.fromarray(p) for p in planes), opaque])
        color = color.resize(mask.size, Image.Resampling.NEAREST)
        if part.opacity < 1.0:
            mask = mask.point([round(v * part.opacity) for v in range(256)])
        self.image.paste(color, box, mask)

    def _normals(self, part: Part, crop: Image.Image, m: np.ndarray) -> tuple[np.ndarray, ...]:
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
            radius = min(part.relief * 0.045 * self.n / SUPERSAMPLE, 0.3 * min(h, w))
            nx, ny, nz = _height_normals(crop, max(radius, 1.5))
            return nx, ny, nz, None
        return np.float32(0.0), np.float32(0.0), np.float32(1.0), None

    def _surface(self, part: Part, small: Image.Image, box: tuple[int, int, int, int],
                 fan_at: np.ndarray | None) -> list[np.ndarray]:
        """Lit colour of the part's box at output resolution, as three uint8 planes.

        Lambert diffuse plus Blinn-Phong specular (see the module docstring), normalised so that a
        surface facing the camera shows exactly its base colour. ``fan_at`` is where radiating
        folds start, in frame units.
        """
        m = np.asarray(small)
        h, w = m.shape
        n_out = self.n / SUPERSAMPLE
        x0, y0 = box[0] / SUPERSAMPLE, box[1] / SUPERSAMPLE
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
        color = np.asarray(part.color, np.float32)[:, None, None] * np.float32(255.0)
        if part.color_bottom is not None:
            t = (np.arange(h, dtype=np.float32)[None, :, None] + 0.5) / h
            color = color + (np.asarray(part.color_bottom, np.float32)[:, None, None] * 255.0 - color) * t
        if part.pattern != "plain":
            hit = self._pattern(part, m, u)
            color = color + (np.asarray(part.accent, np.float32)[:, None, None] * 255.0 - color) * hit
        out = color * light
        out += spec * np.float32(255.0) + np.float32(0.5)  # light and spec are >= 0: only the top needs a clip
        np.minimum(out, 255.0, out=out)
        return list(out.astype(np.uint8))

    def _pattern(self, part: Part, m: np.ndarray, u: np.ndarray | None) -> np.ndarray:
        """Coverage of the accent pattern in [0, 1] per output pixel, anti-aliased analytically."""
        h, w = m.shape
        ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
        if part.pattern == "block":
            return np.broadcast_to(np.clip(ys - part.block_at * h, 0.0, 1.0), (h, w))
        n_out = self.n / SUPERSAMPLE
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


def downsample(canvas: Canvas, size: int) -> Image.Image:
    """Lanczos-downsample the premultiplied canvas, then un-premultiply (so edges get no dark fringe).

    Only the object's box (with a margin wider than the filter) is filtered; the rest is empty.
    """
    box = canvas.image.getbbox()
    out = np.zeros((size, size, 4), np.uint8)
    if box is None:
        return Image.fromarray(out)
    margin = 8 * SUPERSAMPLE
    lo = [max(0, (v - margin) // SUPERSAMPLE * SUPERSAMPLE) for v in box[:2]]
    hi = [min(canvas.n, -(-(v + margin) // SUPERSAMPLE) * SUPERSAMPLE) for v in box[2:]]
    region = (lo[0], lo[1], hi[0], hi[1])
    small = canvas.image.crop(region).resize(((hi[0] - lo[0]) // SUPERSAMPLE, (hi[1] - lo[1]) // SUPERSAMPLE),
                           Image.Resampling.LANCZOS)
    arr = np.array(small.convert("RGBA"))  # Pillow un-premultiplies (and clamps)
    arr[arr[..., 3] == 0] = 0
    x0, y0 = lo[0] // SUPERSAMPLE, lo[1] // SUPERSAMPLE
    out[y0:y0 + arr.shape[0], x0:x0 + arr.shape[1]] = arr
    return Image.fromarray(out)
