"""Procedural product photos: RGBA packshot cut-outs drawn from shapes, so a fresh clone needs no images.

Each category has a drawing function that lays out *parts* (a silhouette built from polygons, ellipses,
Catmull-Rom splines and strokes, with a colour and a shading model) in object units. The parts are
fitted into the frame, rasterised at ``SUPERSAMPLE`` times the requested size and composited back to
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

import numpy as np
from PIL import Image

from adcraft.simulator.photos.categories import PHOTO_CATEGORIES, category_spec, random_style
from adcraft.simulator.photos.geometry import bbox
from adcraft.simulator.photos.shading import SUPERSAMPLE, Canvas, Part, downsample, make_light
from adcraft.simulator.photos.style import PHOTO_PATTERNS, RGB, PhotoInputError, PhotoStyle

__all__ = [
    "PHOTO_CATEGORIES",
    "PHOTO_PATTERNS",
    "RGB",
    "PhotoInputError",
    "PhotoStyle",
    "draw_product_photo",
    "random_style",
]

_FRAME = 0.84  # the object's bounding box fits in this fraction of the photo's width and height
_LIGHT_STREAM = 0x11647  # the light's random stream, apart from the style's


def _visible_bbox(part: Part) -> np.ndarray:
    box = bbox(part.shape)
    if part.clip is not None:
        clip = bbox(part.clip)
        box = np.concatenate([np.maximum(box[:2], clip[:2]), np.minimum(box[2:], clip[2:])])
    return box


def draw_product_photo(
    category: str, style: PhotoStyle | None = None, *, size: int = 384, seed: int = 0
) -> Image.Image:
    """Draw one product of ``category`` as a ``size`` x ``size`` RGBA cut-out on a transparent background.

    The same (category, style, seed) always gives the same pixels. Without a style, the style is
    ``random_style(category, np.random.default_rng(seed))``; the seed also moves the key light slightly.
    """
    spec = category_spec(category)
    if not isinstance(size, int | np.integer) or size < 16:
        raise PhotoInputError(f"photo size must be an integer >= 16 pixels, got {size!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise PhotoInputError(f"photo seed must be a non-negative integer, got {seed!r}")
    if style is None:
        style = random_style(category, np.random.default_rng(seed))
    light = make_light(np.random.default_rng([_LIGHT_STREAM, int(seed)]))
    parts = spec.draw(style)

    n = int(size) * SUPERSAMPLE
    boxes = np.array([_visible_bbox(p) for p in parts])
    box = np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])
    extent = max((box[2] - box[0]) / _FRAME, (box[3] - box[1]) / _FRAME)
    scale = n / extent
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])

    def to_px(pts: np.ndarray) -> np.ndarray:
        return (pts - centre) * scale + n / 2

    canvas = Canvas(n, light)
    for part in parts:
        canvas.paint(part, to_px, scale)
    return downsample(canvas, int(size))
