"""Canny edge maps with NumPy: the condition image of a Canny ControlNet.

Canny (1986), "A Computational Approach to Edge Detection": (1) optional Gaussian smoothing with
standard deviation ``sigma``; (2) Sobel gradients ``gx``, ``gy`` (3x3 kernels ``[1, 2, 1]^T [-1, 0, 1]``,
unnormalised, as OpenCV computes them) and the magnitude ``|g| = sqrt(gx^2 + gy^2)``; (3) non-maximum
suppression: a pixel stays only where ``|g|`` is a maximum across the edge, along the gradient
direction quantised to 0, 45, 90 or 135 degrees; (4) hysteresis: pixels with ``|g| >= high`` are
edges, and pixels with ``|g| >= low`` are edges when 8-connected to one through such pixels.

The defaults (no smoothing, thresholds 100 and 200 on 8-bit intensities, L2 magnitude) are those of
the annotator that Canny ControlNets were trained with (``cv2.Canny(image, 100, 200, L2gradient=True)``
up to ties), so the condition looks like what the model saw in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adcraft.configuration import check_config
from adcraft.errors import InputError


@dataclass(frozen=True)
class CannyConfig:
    """Settings of :func:`canny_edges`: Gaussian ``sigma`` in pixels (0: none) and the hysteresis thresholds
    ``low`` <= ``high`` on the Sobel gradient magnitude of 0-255 intensities."""

    sigma: float = 0.0
    low: float = 100.0
    high: float = 200.0

    def __post_init__(self) -> None:
        check_config(self)
        if self.sigma < 0:
            raise InputError(f"CannyConfig.sigma must be >= 0, got {self.sigma}")
        if not 0 <= self.low <= self.high:
            raise InputError(f"CannyConfig needs 0 <= low <= high, got low={self.low}, high={self.high}")


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` (2-D) convolved with a separable Gaussian of standard deviation ``sigma`` (edges replicated)."""
    if sigma <= 0:
        return image.astype(np.float64)
    radius = max(1, int(np.ceil(3 * sigma)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image.astype(np.float64), radius, mode="edge")
    rows = sum(w * padded[:, i:i + image.shape[1]] for i, w in enumerate(kernel))
    return sum(w * rows[i:i + image.shape[0], :] for i, w in enumerate(kernel))


def sobel(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The horizontal and vertical Sobel derivatives of a 2-D image (edges replicated)."""
    p = np.pad(image.astype(np.float64), 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return gx, gy


def _shifted(values: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``values[y + dy, x + dx]`` at every ``(y, x)``; zero outside the image."""
    p = np.pad(values, 1)
    h, w = values.shape
    return p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


def non_maximum_suppression(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """The gradient magnitude where it is a maximum along the (quantised) gradient direction, else 0.

    A pixel must be greater than its neighbour on one side and not smaller than the one on the other,
    so that a plateau two pixels wide keeps one of them.
    """
    magnitude = np.hypot(gx, gy)
    angle = np.rad2deg(np.arctan2(gy, gx)) % 180.0
    sector = (((angle + 22.5) // 45.0) % 4).astype(np.int8)  # 0: 0 deg, 1: 45, 2: 90, 3: 135 (y down)
    keep = np.zeros(magnitude.shape, dtype=bool)
    for index, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        ahead, behind = _shifted(magnitude, dy, dx), _shifted(magnitude, -dy, -dx)
        keep |= (sector == index) & (magnitude > ahead) & (magnitude >= behind)
    return np.where(keep, magnitude, 0.0)


def _dilated(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one pixel in all eight directions."""
    grown = mask.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                grown |= _shifted(mask, dy, dx)
    return grown


def hysteresis(strength: np.ndarray, low: float, high: float) -> np.ndarray:
    """Pixels ``>= high``, plus the pixels ``>= low`` 8-connected to one of them through pixels ``>= low``.

    A depth-first search from the strong pixels that touch a weak one: edge maps are thin, so it
    visits few pixels, and unlike repeated dilation its cost does not grow with the length of a chain.
    """
    edges = strength >= high
    weak = (strength >= low) & ~edges
    if not weak.any():
        return edges
    height, width = strength.shape
    out, weak_flat = edges.ravel().copy(), weak.ravel()
    stack = np.flatnonzero((edges & _dilated(weak)).ravel()).tolist()
    while stack:
        y, x = divmod(stack.pop(), width)
        for ny in range(max(0, y - 1), min(height, y + 2)):
            for nx in range(max(0, x - 1), min(width, x + 2)):
                j = ny * width + nx
                if weak_flat[j] and not out[j]:
                    out[j] = True
                    stack.append(j)
    return out.reshape(height, width)


def canny_edges(image: np.ndarray, config: CannyConfig | None = None) -> np.ndarray:
    """Boolean edge map (same height and width) of a 2-D array of 0-255 intensities."""
    config = config or CannyConfig()
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(f"canny_edges needs a 2-D intensity image, got shape {image.shape}")
    gx, gy = sobel(gaussian_blur(image, config.sigma))
    return hysteresis(non_maximum_suppression(gx, gy), config.low, config.high)
