from __future__ import annotations

import numpy as np

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
