"""Demand-aware editing of an ad image that keeps the product faithful (UA-InfoNCE, arXiv 2605.28733).

An image (a product photo or a creative) is split into the product and the rest, then parametric
edits are searched for a higher utility-aware score of the
:class:`~adcraft.rewards.contrastive.ContrastiveModel`, with its own demand weight ``w``:

    E(v, t) = w h̃(v) + β s(v, t),

h̃ the model's standardised demand utility, s its text–image cosine and β its similarity weight.
``w`` is ``EditConfig.demand_weight`` (the model's α when that is None, which makes E the model's
``US``). The two are apart because they guard different things: the model's α is the largest that
leaves retrieval intact (it shapes the embedding during training), while an edit's faithfulness to
its text is kept by the consistency floor below, so the edit objective may weigh demand more.

The edits:

- photometric, on the whole image: brightness, contrast, saturation (Pillow's ``ImageEnhance``
  factors) and warmth (red × (1 + w), blue × (1 − w));
- the background: everything outside the product painted one colour;
- geometric: the product scaled about its centre and shifted (shares of the canvas), then a crop
  around the product resized back to the canvas (a zoom).

An edit is accepted only while the product stays faithful and the image still says what the text
says: the structural similarity (SSIM, :func:`ssim_map`) of the product's pixels before and after,
compared at the smaller of the two sizes with the product tracked through the geometric edits, is at
least ``min_ssim``; and the consistency ``s(v, t)`` has dropped by at most ``max_consistency_drop``.

Product region: the caller's mask (e.g. :func:`creative_product_mask` for a rendered creative),
else the alpha of a cut-out, else the pixels whose colour differs from the border's median colour.

The search is greedy coordinate ascent: each round tries every single-parameter change of the
current edit on the configured grids, scores all faithful candidates in one batch and moves to the
best one if it raises the score; it stops when no change helps. The identity is where it starts, so
the returned edit never scores below the original.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.features.preprocess import check_images, to_rgb
from adcraft.render.background import parse_color
from adcraft.render.cutout import has_transparency

if TYPE_CHECKING:
    from adcraft.render.from_market import MarketRenderer
    from adcraft.rewards.contrastive import ContrastiveModel, ImageScores

# SSIM constants of Wang, Bovik, Sheikh & Simoncelli (2004), "Image quality assessment: from error
# visibility to structural similarity", IEEE TIP 13(4): K1, K2, and the 11x11 Gaussian window, σ = 1.5.
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5
SSIM_MAX_SIDE = 128  # products are compared at most this large: enough for shape and texture, cheap per candidate
PRODUCT_ALPHA = 128  # alpha from which a pixel counts as product


@dataclass(frozen=True)
class EditParameters:
    """One parametric edit; the defaults change nothing.

    brightness, contrast, saturation: ``ImageEnhance`` factors (1 = unchanged). warmth: w in
    (−1, 1), red × (1 + w) and blue × (1 − w). background: a colour (word or ``#RRGGBB``) for
    everything outside the product, or None to keep it. scale: product size factor about its centre.
    shift_x, shift_y: product shift as shares of the canvas width and height. crop: share of each
    dimension cut away around the product before resizing back to the canvas, in [0, 0.9).
    """

    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    warmth: float = 0.0
    background: str | None = None
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    crop: float = 0.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation", "scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"edit {name} must be a positive factor, got {value!r}")
        if not -1.0 < self.warmth < 1.0:
            raise InputError(f"edit warmth must lie in (-1, 1), got {self.warmth!r}")
        if not 0.0 <= self.crop < 0.9:
            raise InputError(f"edit crop must lie in [0, 0.9), got {self.crop!r}")
        if not (math.isfinite(self.shift_x) and math.isfinite(self.shift_y)):
            raise InputError("edit shifts must be finite numbers")
        if self.background is not None and parse_color(self.background) is None:
            raise InputError(f"edit background {self.background!r} is not a colour (try a word or #RRGGBB)")

    @property
    def moves_product(self) -> bool:
        return self.scale != 1.0 or self.shift_x != 0.0 or self.shift_y != 0.0


PARAMETER_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EditParameters))
IDENTITY = EditParameters()


@dataclass(frozen=True)
class EditConfig:
    """Thresholds and search grids of :func:`edit_image`.

    - ``min_ssim``: least structural similarity of the product before and after an edit.
    - ``max_consistency_drop``: largest fall of the text–image cosine s(v, t) an edit may cause;
      ``min_consistency``: optionally, an absolute floor as well.
    - ``demand_weight``: w, the weight of the standardised demand h̃ against ``β s(v, t)`` in the edit
      objective E (module docstring); None: the model's α. The default 0.1 is ``ContrastiveConfig``'s
      default α before its validation search lowers it to protect retrieval: one sd of demand is worth
      0.1 of cosine, twice the default ``max_consistency_drop``.
    - ``rounds``: most rounds of coordinate ascent.
    - one grid per :class:`EditParameters` field: the values tried besides the current one and the
      identity (``background``: colours).
    - ``border_tolerance``: per-channel difference (0–255) from the border's median colour above which
      a pixel counts as product, for images with neither a mask nor transparency.
    """

    min_ssim: float = 0.9
    max_consistency_drop: float = 0.05
    min_consistency: float | None = None
    demand_weight: float | None = 0.1
    rounds: int = 3
    brightness: tuple[float, ...] = (0.85, 1.15)
    contrast: tuple[float, ...] = (0.85, 1.15)
    saturation: tuple[float, ...] = (0.9, 1.1)
    warmth: tuple[float, ...] = (-0.08, 0.08)
    background: tuple[str, ...] = (
        "#FFFFFF", "#EDEDED", "#F4E9D8", "#DCEAF7", "#F6DDE4", "#DDEFD9", "#3A3A3A", "#1F2A44",
    )
    scale: tuple[float, ...] = (0.8, 0.9, 1.12, 1.25)
    shift_x: tuple[float, ...] = (-0.08, 0.08)
    shift_y: tuple[float, ...] = (-0.08, 0.08)
    crop: tuple[float, ...] = (0.1, 0.2)
    border_tolerance: int = 25

    def __post_init__(self) -> None:
        check_config(self)
        if not -1.0 <= self.min_ssim <= 1.0:
            raise InputError(f"min_ssim must lie in [-1, 1], got {self.min_ssim}")
        if not self.max_consistency_drop >= 0:
            raise InputError(f"max_consistency_drop must be >= 0, got {self.max_consistency_drop}")
        if self.demand_weight is not None and not (math.isfinite(self.demand_weight) and self.demand_weight >= 0):
            raise InputError(f"demand_weight must be a finite number >= 0 or None, got {self.demand_weight!r}")
        if self.rounds < 0:
            raise InputError(f"rounds must be >= 0, got {self.rounds}")
        if not 0 <= self.border_tolerance <= 255:
            raise InputError(f"border_tolerance must lie in [0, 255], got {self.border_tolerance}")
        for name in PARAMETER_NAMES:
            values = getattr(self, name)
            if isinstance(values, (str, float, int)):
                raise InputError(f"the {name} grid must be a list of values, got {values!r}")
            for value in values:  # each value must make a valid edit on its own
                dataclasses.replace(IDENTITY, **{name: value})


@dataclass(frozen=True)
class EditResult:
    """The chosen edit and its figures. ``score_*`` are the edit objective E (module docstring),
    ``demand_*`` the model's standardised demand utility h̃, ``consistency_*`` the cosine s(v, t),
    ``ssim`` the product's fidelity, ``passed`` whether the thresholds hold, ``evaluated`` how many
    candidate images were scored."""

    image: Image.Image
    parameters: EditParameters
    score_before: float
    score_after: float
    demand_before: float
    demand_after: float
    consistency_before: float
    consistency_after: float
    ssim: float
    passed: bool
    evaluated: int

    def to_json(self) -> dict[str, Any]:
        """Everything but the image, as plain JSON data."""
        figures = [f.name for f in dataclasses.fields(self) if f.name not in ("image", "parameters")]
        return {"parameters": dataclasses.asdict(self.parameters), **{name: getattr(self, name) for name in figures}}


# ---------------------------------------------------------------------------------------- SSIM


@functools.cache
def _gaussian_window() -> np.ndarray:
    taps = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    window = np.exp(-(taps**2) / (2 * SSIM_SIGMA**2))
    return window / window.sum()


def _gaussian_filter(x: np.ndarray) -> np.ndarray:
    """Separable 11-tap Gaussian filter (σ = 1.5) over the last two axes, mirrored borders
    (``d c b a | a b c d``); leading axes are filtered apart."""
    r, window = SSIM_RADIUS, _gaussian_window()
    height, width = x.shape[-2:]
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)], mode="symmetric")
    rows = window[0] * padded[..., 0:height, :]
    for k in range(1, len(window)):
        rows += window[k] * padded[..., k : k + height, :]
    out = window[0] * rows[..., 0:width]
    for k in range(1, len(window)):
        out += window[k] * rows[..., k : k + width]
    return out


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Local SSIM of two equal-shape images (Wang et al. 2004, eq. 13), (H, W) or (H, W, channels)
    with one map per channel, same shape as the inputs:

        SSIM = (2 μ_a μ_b + C1)(2 σ_ab + C2) / ((μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2)),

    with Gaussian-weighted local means, variances and covariance, C1 = (0.01 L)², C2 = (0.03 L)² and
    L = ``data_range``. Identical images give exactly 1 everywhere.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise InputError(f"SSIM needs two images of one shape, (H, W) or (H, W, C); got {a.shape} and {b.shape}")
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    planes_a, planes_b = (np.moveaxis(x, -1, 0) if x.ndim == 3 else x[None] for x in (a, b))
    mu_a, mu_b, aa, bb, ab = _gaussian_filter(
        np.stack([planes_a, planes_b, planes_a * planes_a, planes_b * planes_b, planes_a * planes_b])
    )
    var_a, var_b, cov = aa - mu_a * mu_a, bb - mu_b * mu_b, ab - mu_a * mu_b
    local = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return np.moveaxis(local, 0, -1) if a.ndim == 3 else local[0]


def structural_similarity(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of two images, (H, W) or (H, W, channels) (channels averaged), over the pixels at
    least 5 from the border, as in Wang et al.'s reference and scikit-image's Gaussian-window SSIM."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"SSIM needs two images of one shape, got {a.shape} and {b.shape}")
    if min(a.shape[:2]) <= 2 * SSIM_RADIUS:
        raise InputError(f"SSIM needs images larger than {2 * SSIM_RADIUS + 1} pixels, got {a.shape[:2]}")
    r = SSIM_RADIUS
    return float(ssim_map(a, b, data_range)[r:-r, r:-r].mean())


# ---------------------------------------------------------------------------------------- product layers


@dataclass(frozen=True)
class ProductLayers:
    """An image split for editing: ``page`` (RGB, as on white), the product's ``alpha`` (uint8, H×W),
    its ``bbox`` (x0, y0, x1, y1) where alpha ≥ 128, the product as an RGBA crop of that box, and the
    ``background`` with the product removed (white for a cut-out, else filled in from around it)."""

    page: Image.Image
    alpha: np.ndarray
    bbox: tuple[int, int, int, int]
    product: Image.Image
    background: Image.Image


def product_layers(
    image: Image.Image, product_mask: np.ndarray | None = None, border_tolerance: int = 25
) -> ProductLayers:
    """Split ``image`` into product and background (see the module docstring for the product region).

    ``product_mask``: (H, W) booleans, 0–255 integers (an alpha) or floats in [0, 1].
    """
    check_images([image])
    page = to_rgb(image)
    pixels = np.asarray(page)
    cutout = product_mask is None and has_transparency(image)
    if product_mask is not None:
        alpha = _mask_as_alpha(product_mask, image)
    elif cutout:
        alpha = np.asarray(image.convert("RGBA").getchannel("A"))
    else:
        alpha = _unlike_border(pixels, border_tolerance)
    solid = alpha >= PRODUCT_ALPHA
    if not solid.any():
        raise InputError("no product region found in the image: give a product mask, a cut-out with "
                         "transparency, or an image whose product differs from its border colour")
    rows, columns = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    bbox = (int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1)
    if cutout:
        background = Image.new("RGB", page.size, (255, 255, 255))
    else:
        background = Image.fromarray(_fill_hole(pixels, alpha > 0))
    product = page.crop(bbox).convert("RGBA")
    product.putalpha(Image.fromarray(alpha).crop(bbox))
    return ProductLayers(page, alpha, bbox, product, background)


def creative_product_mask(renderer: MarketRenderer, product_id: str, element_ids: Sequence[str]) -> np.ndarray:
    """The product's alpha (uint8, canvas-sized) in the creative the renderer draws for this combination:
    exactly where the compositor pastes the product cut-out."""
    spec = renderer.spec(product_id, element_ids)
    width, height = renderer.market.config.canvas
    cutout, (x0, y0, x1, y1) = renderer.compositor.product_cutout_resized(spec, (width, height))
    alpha = np.zeros((height, width), dtype=np.uint8)
    alpha[y0:y1, x0:x1] = np.asarray(cutout.getchannel("A"))
    return alpha


def _mask_as_alpha(mask: np.ndarray, image: Image.Image) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != (image.height, image.width):
        raise InputError(f"product mask has shape {mask.shape}; it must be (height, width) = "
                         f"({image.height}, {image.width}) like its image")
    if mask.dtype == bool:
        return np.where(mask, 255, 0).astype(np.uint8)
    if np.issubdtype(mask.dtype, np.integer):
        return np.clip(mask, 0, 255).astype(np.uint8)
    if np.issubdtype(mask.dtype, np.floating):
        return np.clip(np.nan_to_num(mask) * 255.0, 0, 255).round().astype(np.uint8)
    raise InputError(f"product mask must hold booleans or numbers, not {mask.dtype}")


def _border_colour(pixels: np.ndarray) -> np.ndarray:
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return np.median(border, axis=0)


def _unlike_border(pixels: np.ndarray, tolerance: int) -> np.ndarray:
    """255 where some channel differs from the border's median colour by more than ``tolerance``."""
    difference = np.abs(pixels.astype(np.int16) - _border_colour(pixels).astype(np.int16)).max(axis=2)
    return np.where(difference > tolerance, 255, 0).astype(np.uint8)


def _fill_hole(pixels: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The image with ``hole`` filled smoothly from the pixels around it, by pull-push (Gortler et al.
    1996, "The Lumigraph"): known pixels are averaged down an image pyramid (each level's
    weights capped at 1), then every level is filled from the one above, upsampled, where its own
    weight falls short of 1."""
    weight = (~hole).astype(np.float64)
    colour = pixels.astype(np.float64) * weight[..., None]
    if not weight.any():
        return np.broadcast_to(_border_colour(pixels), pixels.shape).astype(np.uint8).copy()
    filled = _pull(colour, weight)
    out = np.where(hole[..., None], filled, pixels)
    return np.clip(out.round(), 0, 255).astype(np.uint8)


def _pull(colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The mean colour of one pyramid level given its weight-premultiplied ``colour`` and its ``weight``,
    where the weight falls short of 1 blended with the coarser level's (recursively)."""
    height, width = weight.shape
    mean = colour / np.maximum(weight, 1e-12)[..., None]
    if height <= 1 and width <= 1:
        return mean
    # 2x2 sums (an odd last row or column is padded by repeating it)
    padded_w = np.pad(weight, ((0, height % 2), (0, width % 2)), mode="edge")
    padded_c = np.pad(colour, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    coarse_w = padded_w[0::2, 0::2] + padded_w[1::2, 0::2] + padded_w[0::2, 1::2] + padded_w[1::2, 1::2]
    coarse_c = padded_c[0::2, 0::2] + padded_c[1::2, 0::2] + padded_c[0::2, 1::2] + padded_c[1::2, 1::2]
    scale = np.minimum(coarse_w, 1.0) / np.maximum(coarse_w, 1e-12)
    coarse = _pull(coarse_c * scale[..., None], coarse_w * scale)
    upsampled = np.stack(
        [np.asarray(Image.fromarray(coarse[..., c].astype(np.float32)).resize(
            (width, height), Image.Resampling.BILINEAR)) for c in range(coarse.shape[2])],
        axis=-1,
    ).astype(np.float64)
    confidence = np.minimum(weight, 1.0)[..., None]
    return confidence * mean + (1.0 - confidence) * upsampled


# ---------------------------------------------------------------------------------------- edits


@dataclass(frozen=True)
class EditedImage:
    """An edited image and where the product went: original pixel (x, y) ↦ (kx·x + ox, ky·y + oy)."""

    image: Image.Image
    kx: float = 1.0
    ky: float = 1.0
    ox: float = 0.0
    oy: float = 0.0


def apply_edit(layers: ProductLayers, parameters: EditParameters) -> EditedImage:
    """Apply ``parameters`` to an image split by :func:`product_layers`: product geometry and background
    first, then the crop, then the photometric changes over the whole image."""
    width, height = layers.page.size
    x0, y0, x1, y1 = layers.bbox
    kx = ky = 1.0
    ox = oy = 0.0
    if parameters.moves_product or parameters.background is not None:
        if parameters.background is not None:
            image = Image.new("RGB", (width, height), parse_color(parameters.background))
        else:
            image = layers.background.copy()
        product = layers.product
        left, top = x0, y0
        if parameters.moves_product:
            size = (max(1, round(product.width * parameters.scale)), max(1, round(product.height * parameters.scale)))
            product = product.resize(size, Image.Resampling.LANCZOS)
            centre_x = (x0 + x1) / 2 + parameters.shift_x * width
            centre_y = (y0 + y1) / 2 + parameters.shift_y * height
            left, top = round(centre_x - size[0] / 2), round(centre_y - size[1] / 2)
            kx, ky = size[0] / (x1 - x0), size[1] / (y1 - y0)
            ox, oy = left - kx * x0, top - ky * y0
        image.paste(product, (left, top), product)
    else:
        image = layers.page.copy()
    if parameters.crop > 0:
        crop_w, crop_h = (1 - parameters.crop) * width, (1 - parameters.crop) * height
        centre_x, centre_y = kx * (x0 + x1) / 2 + ox, ky * (y0 + y1) / 2 + oy
        left = min(max(centre_x - crop_w / 2, 0.0), width - crop_w)
        top = min(max(centre_y - crop_h / 2, 0.0), height - crop_h)
        image = image.resize((width, height), Image.Resampling.LANCZOS, box=(left, top, left + crop_w, top + crop_h))
        zoom_x, zoom_y = width / crop_w, height / crop_h
        kx, ky, ox, oy = kx * zoom_x, ky * zoom_y, (ox - left) * zoom_x, (oy - top) * zoom_y
    image = _photometric(image, parameters)
    return EditedImage(image, kx, ky, ox, oy)


def _photometric(image: Image.Image, parameters: EditParameters) -> Image.Image:
    if parameters.brightness != 1.0:
        image = ImageEnhance.Brightness(image).enhance(parameters.brightness)
    if parameters.contrast != 1.0:
        image = ImageEnhance.Contrast(image).enhance(parameters.contrast)
    if parameters.saturation != 1.0:
        image = ImageEnhance.Color(image).enhance(parameters.saturation)
    if parameters.warmth != 0.0:
        pixels = np.asarray(image, dtype=np.float64).copy()
        pixels[..., 0] *= 1 + parameters.warmth
        pixels[..., 2] *= 1 - parameters.warmth
        image = Image.fromarray(np.clip(pixels.round(), 0, 255).astype(np.uint8))
    return image


def product_fidelity(layers: ProductLayers, edited: EditedImage) -> float:
    """SSIM of the product's pixels before and after an edit, averaged over the product (alpha-weighted).

    The product's box is mapped through the edit's geometry, both versions are resampled to the smaller
    of the two product sizes (at most ``SSIM_MAX_SIDE`` pixels), pixels outside the product are zeroed
    in both by the alpha, and the SSIM map (mean over RGB) is averaged with the alpha as weights. Parts
    of the product pushed off the canvas compare against black, so cutting the product off fails.
    """
    x0, y0, x1, y1 = layers.bbox
    shrink = min(1.0, edited.kx, edited.ky)
    size = np.array([x1 - x0, y1 - y0], dtype=np.float64) * shrink
    size *= min(1.0, SSIM_MAX_SIDE / size.max())
    size = (max(2 * SSIM_RADIUS + 1, round(size[0])), max(2 * SSIM_RADIUS + 1, round(size[1])))
    before = np.asarray(layers.page.resize(size, Image.Resampling.LANCZOS, box=layers.bbox), dtype=np.float64)
    weight = np.asarray(
        Image.fromarray(layers.alpha).resize(size, Image.Resampling.BILINEAR, box=layers.bbox), dtype=np.float64
    ) / 255.0
    box = (edited.kx * x0 + edited.ox, edited.ky * y0 + edited.oy,
           edited.kx * x1 + edited.ox, edited.ky * y1 + edited.oy)
    width, height = edited.image.size
    margin = math.ceil(max(0.0, -box[0], -box[1], box[2] - width, box[3] - height))
    source = ImageOps.expand(edited.image, border=margin, fill=(0, 0, 0)) if margin else edited.image
    shifted = (box[0] + margin, box[1] + margin, box[2] + margin, box[3] + margin)
    after = np.asarray(source.resize(size, Image.Resampling.LANCZOS, box=shifted), dtype=np.float64)
    before, after = before * weight[..., None], after * weight[..., None]
    local = ssim_map(before, after).mean(axis=2)
    return float(np.sum(local * weight) / np.sum(weight))


# ---------------------------------------------------------------------------------------- search


@dataclass(frozen=True)
class _Candidate:
    parameters: EditParameters
    image: Image.Image
    ssim: float
    score: float
    demand: float
    consistency: float


def evaluate_edit(
    model: ContrastiveModel,
    image: Image.Image,
    text: str,
    parameters: EditParameters,
    config: EditConfig | None = None,
    product_mask: np.ndarray | None = None,
) -> EditResult:
    """Apply one edit and measure it against the original: scores, fidelity and whether it passes."""
    config = config or EditConfig()
    layers = product_layers(image, product_mask, config.border_tolerance)
    original = _original(model, layers, text, config)
    edited = apply_edit(layers, parameters)
    parts = model.score_parts([edited.image], text)
    candidate = _Candidate(parameters, edited.image, product_fidelity(layers, edited),
                           float(edit_objective(model, parts, config)[0]), float(parts.utility[0]),
                           float(parts.consistency[0]))
    return _result(original, candidate, config, evaluated=1)


def edit_image(
    model: ContrastiveModel,
    image: Image.Image,
    text: str,
    config: EditConfig | None = None,
    product_mask: np.ndarray | None = None,
) -> EditResult:
    """Search the edits of ``config`` for the highest edit objective E that keeps the product faithful and
    the text consistent (see the module docstring); returns the identity when no edit helps."""
    config = config or EditConfig()
    layers = product_layers(image, product_mask, config.border_tolerance)
    original = _original(model, layers, text, config)
    required = _required_consistency(original.consistency, config)
    best, visited, evaluated = original, {IDENTITY}, 0
    for _ in range(config.rounds):
        faithful = []
        for name in PARAMETER_NAMES:
            for value in (getattr(IDENTITY, name), *getattr(config, name)):
                parameters = dataclasses.replace(best.parameters, **{name: value})
                if parameters in visited:
                    continue
                visited.add(parameters)
                edited = apply_edit(layers, parameters)
                fidelity = product_fidelity(layers, edited)
                if fidelity >= config.min_ssim:
                    faithful.append((parameters, edited.image, fidelity))
        if not faithful:
            break
        parts = model.score_parts([image for _, image, _ in faithful], text)
        evaluated += len(faithful)
        objective = edit_objective(model, parts, config)
        allowed = np.where(parts.consistency >= required, objective, -np.inf)
        pick = int(np.argmax(allowed))
        if not allowed[pick] > best.score:
            break
        parameters, edited_image, fidelity = faithful[pick]
        best = _Candidate(parameters, edited_image, fidelity, float(objective[pick]), float(parts.utility[pick]),
                          float(parts.consistency[pick]))
    return _result(original, best, config, evaluated)


def edit_objective(model: ContrastiveModel, parts: ImageScores, config: EditConfig) -> np.ndarray:
    """The edit objective ``E = w h̃(v) + β s(v, t)`` of scored images (module docstring), ``w`` the
    config's ``demand_weight`` or, when None, the model's α (then E is the model's ``US``)."""
    if config.demand_weight is None:
        return parts.score
    return config.demand_weight * parts.utility + model.config.beta * parts.consistency


def _original(model: ContrastiveModel, layers: ProductLayers, text: str, config: EditConfig) -> _Candidate:
    parts = model.score_parts([layers.page], text)
    return _Candidate(IDENTITY, layers.page, 1.0, float(edit_objective(model, parts, config)[0]),
                      float(parts.utility[0]), float(parts.consistency[0]))


def _required_consistency(before: float, config: EditConfig) -> float:
    required = before - config.max_consistency_drop
    return required if config.min_consistency is None else max(required, config.min_consistency)


def _result(original: _Candidate, chosen: _Candidate, config: EditConfig, evaluated: int) -> EditResult:
    required = _required_consistency(original.consistency, config)
    passed = chosen.ssim >= config.min_ssim and chosen.consistency >= required
    return EditResult(
        image=chosen.image,
        parameters=chosen.parameters,
        score_before=original.score,
        score_after=chosen.score,
        demand_before=original.demand,
        demand_after=chosen.demand,
        consistency_before=original.consistency,
        consistency_after=chosen.consistency,
        ssim=chosen.ssim,
        passed=bool(passed),
        evaluated=evaluated,
    )
