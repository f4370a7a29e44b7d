from __future__ import annotations

import numpy as np
import pytest

from adcraft.evaluate.report import calibration_png


def test_calibration_plot_draws_the_diagonal_and_the_dots():
    predicted, observed = np.array([0.01, 0.02, 0.03]), np.array([0.012, 0.018, 0.05])
    image = calibration_png(predicted, observed, [100, 200, 300], "backtest", size=200)
    assert image.size == (200, 200)
    pixels = np.asarray(image)
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 100) & (pixels[..., 2] < 100)
    assert red.sum() > 50  # the diagonal of perfect calibration
    blue = (pixels[..., 2] > 120) & (pixels[..., 0] < 120)
    assert blue.any()  # the dots


def _pixels(image, colour: tuple[int, int, int], box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Columns and rows (upward) of the pixels within 40 of ``colour`` inside ``box`` (left, top, right, bottom)."""
    pixels = np.asarray(image).astype(int)[box[1]:box[3], box[0]:box[2]]
    rows, columns = np.nonzero(np.abs(pixels - np.array(colour)).sum(axis=2) < 40)
    return columns.astype(float), -rows.astype(float)


def test_calibration_plot_draws_the_fitted_line_with_its_slope():
    rng = np.random.default_rng(0)
    predicted = rng.uniform(0.01, 0.05, 40)
    observed = 0.01 + 0.5 * predicted
    image = calibration_png(predicted, observed, np.full(40, 100.0), "backtest", size=360, line=(0.01, 0.5))
    inside = (46, 42, 346, 322)  # the plot's box (left, top, right, bottom), less its frame: no legend, no labels
    green_x, green_y = _pixels(image, (0x1E, 0x84, 0x49), inside)
    red_x, red_y = _pixels(image, (0xC0, 0x39, 0x2B), inside)
    assert green_x.size > 100 and red_x.size > 100
    green_slope, red_slope = np.polyfit(green_x, green_y, 1)[0], np.polyfit(red_x, red_y, 1)[0]
    assert green_slope / red_slope == pytest.approx(0.5, abs=0.05)  # the calibration line, at half the diagonal


def test_a_calibration_line_outside_the_plot_draws_nothing_in_it():
    predicted = np.array([0.01, 0.02, 0.03])
    image = calibration_png(predicted, predicted, [100, 100, 100], "backtest", size=360, line=(5.0, 1.0))
    green_x, _ = _pixels(image, (0x1E, 0x84, 0x49), (46, 42, 346, 322))
    assert green_x.size == 0
