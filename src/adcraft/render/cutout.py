"""Product cut-outs: an RGBA image of the product alone, cropped to it.

A product image either carries its own transparency (a PNG cut-out: used as it is) or is a photo
on a plain, usually light, background. For the latter the background is taken to be the median
colour of the image border, and every pixel close to it (Chebyshev distance in RGB at most
``tolerance``) that is connected to the border is made transparent, like a paint-bucket fill
started from every border pixel. Near-background pixels enclosed by the product (a white label)
are kept. The fill's edge is softened by one pixel so the product does not look cut with scissors.

A photo whose border is not plain (fewer than ``min_plain_border`` of the border pixels near the
median) has no background to remove; it is kept whole and opaque.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from adcraft.configuration import check_config
from adcraft.errors import InputError


@dataclass(frozen=True)
class CutoutConfig:
    """How a product photo without transparency is cut out of its background.

    tolerance: largest per-channel difference (0-255) from the border's median colour that still
        counts as background.
    min_plain_border: share of border pixels that must be background-coloured for the border to
        count as a plain background at all.
    soft_edge: soften the cut by one pixel (a 3x3 box blur of the mask, never raising alpha).
    """

    tolerance: int = 28
    min_plain_border: float = 0.6
    soft_edge: bool = True

    def __post_init__(self) -> None:
        check_config(self)
        if not 0 <= self.tolerance <= 255:
            raise InputError(f"cut-out tolerance must lie in [0, 255], got {self.tolerance}")
        if not 0.0 <= self.min_plain_border <= 1.0:
            raise InputError(f"min_plain_border must lie in [0, 1], got {self.min_plain_border}")


def has_transparency(image: Image.Image) -> bool:
    """True when the image has an alpha channel (or a transparent palette entry) that is used."""
    if "A" not in image.getbands() and "transparency" not in image.info:
        return False
    alpha = image.convert("RGBA").getchannel("A")
    low, _ = alpha.getextrema()
    return low < 255


def _run_labels(mask: np.ndarray) -> np.ndarray:
    """Label each horizontal run of True pixels with its own id (> 0); False pixels get 0."""
    starts = mask.copy()
    starts[:, 1:] &= ~mask[:, :-1]
    labels = np.cumsum(starts.ravel(), dtype=np.int64).reshape(mask.shape)
    labels[~mask] = 0
    return labels


def border_connected(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` 4-connected to the image border through ``mask`` (a flood fill).

    Instead of visiting pixels one at a time, the fill alternates horizontal and vertical sweeps:
    any run of mask pixels (a row segment, then a column segment) that touches the filled set joins
    it whole. Each sweep is a few vectorised NumPy operations; the number of sweeps is the number
    of turns on the longest path the fill must take, small for real photos.
    """
    rows = _run_labels(mask)
    cols = _run_labels(np.ascontiguousarray(mask.T))
    filled = np.zeros_like(mask)
    filled[0, :] = mask[0, :]
    filled[-1, :] = mask[-1, :]
    filled[:, 0] |= mask[:, 0]
    filled[:, -1] |= mask[:, -1]
    count = int(filled.sum())
    while True:
        hit = np.zeros(int(rows.max()) + 1, dtype=bool)
        hit[rows[filled]] = True
        hit[0] = False
        filled = hit[rows]
        hit = np.zeros(int(cols.max()) + 1, dtype=bool)
        hit[cols[filled.T]] = True
        hit[0] = False
        filled = hit[cols].T
        new_count = int(filled.sum())
        if new_count == count:
            return np.ascontiguousarray(filled)
        count = new_count


def _cut_plain_background(rgb: np.ndarray, config: CutoutConfig) -> np.ndarray | None:
    """Alpha (uint8 HxW) removing the border-connected background, or None if the border is not plain."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]]).astype(np.int16)
    median = np.median(border, axis=0)
    near_border = np.abs(border - median).max(axis=1) <= config.tolerance
    if near_border.mean() < config.min_plain_border:
        return None
    low = np.clip(median - config.tolerance, 0, 255)
    high = np.clip(median + config.tolerance, 0, 255)
    near = np.ones(rgb.shape[:2], dtype=bool)
    for c in range(3):  # per-channel range tests on uint8 planes: no int16 copy of the photo
        channel = rgb[..., c]
        near &= (channel >= low[c]) & (channel <= high[c])
    background = border_connected(near)
    alpha = np.where(background, 0, 255).astype(np.uint8)
    if config.soft_edge:
        blurred = np.asarray(Image.fromarray(alpha).filter(ImageFilter.BoxBlur(1)))
        alpha = np.minimum(alpha, blurred)
    return alpha


def _to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale ("I;16*", or "I" holding 16-bit values) scaled to 8 bits; Pillow would clip it."""
    if image.mode == "I" or image.mode.startswith("I;16"):
        values = np.asarray(image)
        if values.max() > 255:
            return Image.fromarray(np.clip(values / 257.0, 0, 255).round().astype(np.uint8))
    return image


def ensure_cutout(image: Image.Image, config: CutoutConfig | None = None) -> Image.Image:
    """The product as an RGBA image cropped to its visible pixels.

    Uses the image's own alpha when some pixels are transparent; otherwise removes a plain
    border-coloured background (see the module docstring). Raises :class:`InputError` when nothing
    of the product is left.
    """
    if not isinstance(image, Image.Image):
        raise InputError(f"the product image must be a PIL image, got {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise InputError("the product image is empty (0 pixels)")
    config = config or CutoutConfig()
    image = _to_8_bit(image)
    if has_transparency(image):
        rgba = image.convert("RGBA")
    else:
        rgb = image.convert("RGB")
        alpha = _cut_plain_background(np.asarray(rgb), config)
        rgba = rgb.convert("RGBA")
        if alpha is not None:
            rgba.putalpha(Image.fromarray(alpha))
    bbox = rgba.getchannel("A").getbbox()
    if bbox is None:
        raise InputError(
            "the product image has no visible product: it is fully transparent, or all of it "
            "matched the background colour (use a cut-out PNG or a photo with a distinct product)"
        )
    # One transparent pixel of margin keeps the result a cut-out when it is cut out again
    # (an opaque crop would otherwise read as a photo on a plain background).
    cropped = rgba.crop(bbox)
    framed = Image.new("RGBA", (cropped.width + 2, cropped.height + 2), (0, 0, 0, 0))
    framed.paste(cropped, (1, 1))
    return framed
