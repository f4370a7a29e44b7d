"""The NumPy Canny detector behind the ControlNet condition image."""

from __future__ import annotations

import numpy as np
import pytest

from adcraft.errors import InputError
from adcraft.render.canny import CannyConfig, canny_edges, hysteresis


def _square(size: int = 40) -> np.ndarray:
    image = np.zeros((size, size))
    image[10:30, 12:28] = 255.0
    return image


def test_edges_of_a_square_trace_its_outline_and_nothing_else():
    edges = canny_edges(_square())
    ys, xs = np.nonzero(edges)
    assert ys.min() >= 9 and ys.max() <= 30 and xs.min() >= 11 and xs.max() <= 28
    assert not edges[13:27, 15:25].any()  # the flat inside
    assert 60 <= edges.sum() <= 80  # one pixel wide: about the perimeter (2 * (20 + 16) = 72)


def test_a_flat_image_has_no_edges():
    assert not canny_edges(np.full((16, 16), 77.0)).any()


def test_hysteresis_keeps_weak_pixels_only_when_connected_to_a_strong_one():
    strength = np.zeros((5, 9))
    strength[2, 0] = 300.0  # strong
    strength[2, 1:4] = 150.0  # weak, touching it
    strength[2, 6:9] = 150.0  # weak, isolated
    edges = hysteresis(strength, low=100.0, high=200.0)
    assert edges[2, :4].all() and not edges[2, 6:].any() and edges.sum() == 4


def test_raising_the_thresholds_keeps_a_subset_of_the_edges():
    rng = np.random.default_rng(0)
    image = np.clip(128 + 60 * np.sin(np.arange(48)[None, :] / 4.0) + rng.normal(0, 8, (48, 48)), 0, 255)
    loose = canny_edges(image, CannyConfig(low=50, high=100))
    strict = canny_edges(image, CannyConfig(low=150, high=300))
    assert strict.sum() < loose.sum() and not (strict & ~loose).any()


def test_agrees_with_scikit_image_on_a_smooth_pattern():
    feature = pytest.importorskip("skimage.feature")
    yy, xx = np.mgrid[0:96, 0:96]
    image = 128 + 100 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    ours = canny_edges(image, CannyConfig(sigma=1.0, low=20, high=40))
    theirs = feature.canny(image, sigma=1.0, low_threshold=20, high_threshold=40)
    near = np.zeros_like(theirs)  # within one pixel of scikit-image's edges (the two suppress ties differently)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= np.roll(np.roll(theirs, dy, axis=0), dx, axis=1)
    assert ours.any() and (ours & near).sum() / ours.sum() > 0.9


@pytest.mark.parametrize("kwargs", [{"sigma": -1.0}, {"low": 50.0, "high": 10.0}, {"low": -1.0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(InputError):
        CannyConfig(**kwargs)


def test_a_colour_array_is_refused():
    with pytest.raises(InputError, match="2-D"):
        canny_edges(np.zeros((8, 8, 3)))
