"""Interpretable visual attributes of a creative, and how unique it looks within its category.

Each attribute is a float computed with NumPy from the image as it would appear on a white page
(transparency composited onto white). Images whose longer side exceeds 512 pixels are first
box-downscaled to 512 so every attribute costs a few milliseconds; sharpness and clutter depend on
resolution, so compare them between images of similar size. Luma is Rec. 601,
``Y = 0.299 R + 0.587 G + 0.114 B`` with channels in 0..1.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from adcraft.errors import InputError
from adcraft.features.preprocess import check_images, to_rgb

ATTRIBUTE_NAMES: tuple[str, ...] = (
    "brightness",
    "contrast",
    "colourfulness",
    "sharpness",
    "symmetry",
    "product_area",
    "clutter",
)
ANALYSIS_MAX_SIDE = 512
REC601_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
COLOURFULNESS_SCALE = 109.0  # Hasler & Süsstrunk's "extremely colourful" M (8-bit units)
SHARPNESS_REFERENCE = 100.0  # Laplacian variance (8-bit luma) usually taken as the blur threshold
EDGE_THRESHOLD = 0.1  # Sobel magnitude, in luma steps, that counts as an edge
BORDER_TOLERANCE = 0.1  # per-channel difference from the border colour that counts as "product"
STRIP_ROWS = 48  # float32 work happens 48 rows at a time, so temporaries stay small and in cache


def compute_attributes(
    image: Image.Image, product_mask: np.ndarray | None = None
) -> dict[str, float]:
    """The visual attributes of one image, keyed by :data:`ATTRIBUTE_NAMES`.

    - brightness: mean luma, in [0, 1].
    - contrast: standard deviation of luma, in [0, 0.5].
    - colourfulness: ``tanh(M / 109)`` in [0, 1), with Hasler & Süsstrunk's (2003, "Measuring
      colourfulness in natural images", eq. 3) ``M = sqrt(s_rg² + s_yb²) + 0.3 sqrt(m_rg² + m_yb²)``
      over ``rg = R - G`` and ``yb = (R + G) / 2 - B`` in 8-bit units (m: mean, s: std); 109 is
      their "extremely colourful" level, which maps to 0.76; a grey image gives 0.
    - sharpness: ``v / (v + 100)`` in [0, 1), v the variance of the 4-neighbour Laplacian of
      8-bit luma over interior pixels (Pech-Pacheco et al. 2000); 0.5 at the usual blur
      threshold v = 100.
    - symmetry: ``1 - mean |I - mirror(I)|`` over RGB in 0..1, mirror the left-right flip; in
      [0, 1], 1 for a mirror-symmetric image.
    - product_area: fraction of the canvas covered by ``product_mask``, in [0, 1]; without a mask,
      the fraction of pixels whose colour differs from the border's median colour by more than
      0.1 in some channel (a product shot on a plain background).
    - clutter: edge density, in [0, 1]: the fraction of interior pixels whose Sobel gradient
      magnitude ``sqrt(gx² + gy²) / 4`` (a luma step's height) exceeds 0.1, counted outside the
      product mask when one is given (0 when nothing is outside it).

    ``product_mask``: a ``(height, width)`` array; booleans, integers (nonzero = product) or floats
    (>= 0.5 = product).
    """
    check_images([image])
    mask = None if product_mask is None else _as_mask(product_mask, image)
    page = to_rgb(image)
    scale = ANALYSIS_MAX_SIDE / max(page.size)
    if scale < 1:
        size = (max(1, round(page.width * scale)), max(1, round(page.height * scale)))
        page = page.resize(size, Image.Resampling.BOX)
    # uint8 channel planes, shape (3, height, width): contiguous, and a quarter of float32's
    # memory traffic for the attributes that need no arithmetic beyond differences.
    planes = np.stack([np.asarray(channel) for channel in page.split()])
    luma = np.empty(planes.shape[1:], dtype=np.float32)  # 8-bit units
    luma_moments = _RunningMoments()
    for top, bottom in _strips(luma.shape[0]):
        red, green, blue = planes[:, top:bottom]
        strip = np.multiply(red, REC601_LUMA[0], dtype=np.float32, out=luma[top:bottom])
        strip += REC601_LUMA[1] * green
        strip += REC601_LUMA[2] * blue
        luma_moments.add(strip)

    if mask is None:
        product_area = _area_unlike_border(planes)
        analysis_mask = None
    else:
        product_area = float(mask.mean())
        analysis_mask = mask
        if mask.shape != luma.shape:
            resized = Image.fromarray(mask).resize(page.size, Image.Resampling.NEAREST)
            analysis_mask = np.asarray(resized, dtype=bool)

    return {
        "brightness": min(luma_moments.mean / 255.0, 1.0),  # float32 rounding may pass 255
        "contrast": luma_moments.std / 255.0,
        "colourfulness": _colourfulness(planes),
        "sharpness": _sharpness(luma),
        "symmetry": _symmetry(planes),
        "product_area": product_area,
        "clutter": _clutter(luma, analysis_mask),
    }


def attribute_matrix(
    images: Sequence[Image.Image], masks: Sequence[np.ndarray | None] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Attributes of many images: a float32 ``(len(images), 7)`` matrix and its column names."""
    if masks is not None and len(masks) != len(images):
        raise InputError(f"got {len(masks)} masks for {len(images)} images; give one per image.")
    matrix = np.zeros((len(images), len(ATTRIBUTE_NAMES)), dtype=np.float32)
    for row, image in enumerate(images):
        values = compute_attributes(image, None if masks is None else masks[row])
        matrix[row] = [values[name] for name in ATTRIBUTE_NAMES]
    return matrix, list(ATTRIBUTE_NAMES)


def uniqueness(
    features: np.ndarray, groups: Sequence[str], singleton_value: float = 0.5
) -> np.ndarray:
    """How unlike its category's other images each image is.

    ``u_i = 1 - mean_{j in g(i), j != i} cos(x_i, x_j)``: 0 for a copy of every peer, 1 for a
    vector orthogonal to all of them (up to 2 for opposite vectors; non-negative features such as
    pooled CNN activations stay in [0, 1]). An all-zero vector has cosine 0 with everything. An
    image alone in its group has no peers and gets ``singleton_value`` (0.5: neither typical nor
    unusual).
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise InputError(f"features must be a 2-d (images, dims) array, got shape {features.shape}.")
    if len(groups) != len(features):
        raise InputError(f"got {len(groups)} groups for {len(features)} feature rows; give one each.")
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)
    labels = np.asarray([str(group) for group in groups], dtype=object)  # not as wide as the longest name
    out = np.full(len(features), singleton_value, dtype=np.float32)
    for group in np.unique(labels):
        members = np.flatnonzero(labels == group)
        if len(members) < 2:
            continue
        similarity = unit[members] @ unit[members].T
        mean_to_others = (similarity.sum(axis=1) - np.diag(similarity)) / (len(members) - 1)
        out[members] = 1.0 - mean_to_others
    return out


def _as_mask(product_mask: np.ndarray, image: Image.Image) -> np.ndarray:
    mask = np.asarray(product_mask)
    if mask.shape != (image.height, image.width):
        raise InputError(
            f"product mask has shape {mask.shape}; it must be (height, width) = "
            f"({image.height}, {image.width}) like its image."
        )
    if mask.dtype == bool:
        return mask
    if np.issubdtype(mask.dtype, np.integer):
        return mask != 0
    if np.issubdtype(mask.dtype, np.floating):
        return mask >= 0.5
    raise InputError(f"product mask must hold booleans or numbers, not {mask.dtype}.")


def _colourfulness(planes: np.ndarray) -> float:
    rg_moments, yb_moments = _RunningMoments(), _RunningMoments()
    for top, bottom in _strips(planes.shape[1]):
        red, green, blue = planes[:, top:bottom]
        rg = np.subtract(red, green, dtype=np.float32)
        yb = np.add(red, green, dtype=np.float32)
        yb *= 0.5
        yb -= blue
        rg_moments.add(rg)
        yb_moments.add(yb)
    spread = math.hypot(rg_moments.std, yb_moments.std)
    offset = math.hypot(rg_moments.mean, yb_moments.mean)
    return math.tanh((spread + 0.3 * offset) / COLOURFULNESS_SCALE)


def _symmetry(planes: np.ndarray) -> float:
    # |I - mirror(I)| is itself mirror-symmetric (and 0 on an odd width's middle column), so the
    # left half holds exactly half of its sum.
    half = planes.shape[2] // 2
    left = planes[:, :, :half]
    mirrored_left = planes[:, :, ::-1][:, :, :half]
    difference = np.maximum(left, mirrored_left)
    difference -= np.minimum(left, mirrored_left)  # |a - b| without leaving uint8
    total = 2.0 * float(difference.sum(dtype=np.int64))
    return 1.0 - total / (planes.size * 255.0)


def _sharpness(luma: np.ndarray) -> float:
    if min(luma.shape) < 3:
        return 0.0
    moments = _RunningMoments()
    for top, bottom in _strips(luma.shape[0] - 2):  # rows of the interior, 1..height-2
        y = luma[top : bottom + 2]  # with one row of context above and below
        moments.add(y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4.0 * y[1:-1, 1:-1])
    variance = moments.std**2
    return variance / (variance + SHARPNESS_REFERENCE)


def _clutter(luma: np.ndarray, product_mask: np.ndarray | None) -> float:
    if min(luma.shape) < 3:
        return 0.0
    threshold = (4.0 * 255.0 * EDGE_THRESHOLD) ** 2  # |Sobel| / 4 > t  <=>  gx² + gy² > (4 t)²
    edges = counted = 0
    for top, bottom in _strips(luma.shape[0] - 2):
        y = luma[top : bottom + 2]
        # Sobel, separably: a central difference along one axis smoothed by [1, 2, 1] along the other.
        across = y[:, 2:] - y[:, :-2]
        down = y[2:] - y[:-2]
        gx = across[:-2] + 2.0 * across[1:-1] + across[2:]
        gy = down[:, :-2] + 2.0 * down[:, 1:-1] + down[:, 2:]
        np.multiply(gx, gx, out=gx)
        np.multiply(gy, gy, out=gy)
        strong = np.add(gx, gy, out=gx) > threshold
        if product_mask is None:
            edges += np.count_nonzero(strong)
            counted += strong.size
        else:
            background = ~product_mask[top + 1 : bottom + 1, 1:-1]
            edges += np.count_nonzero(strong & background)
            counted += np.count_nonzero(background)
    return float(edges / counted) if counted else 0.0


def _area_unlike_border(planes: np.ndarray) -> float:
    border = np.concatenate([planes[:, 0], planes[:, -1], planes[:, :, 0], planes[:, :, -1]], axis=1)
    colour = np.median(border, axis=1)
    tolerance = 255.0 * BORDER_TOLERANCE
    differs = np.zeros(planes.shape[1:], dtype=bool)
    for plane, level in zip(planes, colour, strict=True):
        # |plane - level| > tolerance, as integer bounds so the comparison stays in uint8
        low, high = math.ceil(level - tolerance), math.floor(level + tolerance)
        if low > 0:
            differs |= plane < low
        if high < 255:
            differs |= plane > high
    return float(np.count_nonzero(differs) / differs.size)


class _RunningMoments:
    """Count, mean and spread of values seen strip by strip.

    Strips are merged with the pairwise update of Chan, Golub & LeVeque (1979):
    ``M2 = M2_a + M2_b + delta² n_a n_b / n``, as stable as a two-pass variance.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.squared_deviations = 0.0

    def add(self, values: np.ndarray) -> None:
        count = values.size
        if count == 0:
            return
        mean = float(values.mean())
        deviations = (values - np.float32(mean)).ravel()
        total = self.count + count
        delta = mean - self.mean
        self.squared_deviations += (
            float(np.dot(deviations, deviations)) + delta**2 * self.count * count / total
        )
        self.mean += delta * count / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.squared_deviations / self.count) if self.count else 0.0


def _strips(rows: int) -> Iterator[tuple[int, int]]:
    """``(top, bottom)`` row ranges of at most ``STRIP_ROWS`` rows covering ``range(rows)``."""
    for top in range(0, rows, STRIP_ROWS):
        yield top, min(rows, top + STRIP_ROWS)
