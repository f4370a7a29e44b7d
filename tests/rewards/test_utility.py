"""The demand utility regression on data drawn from a known quadratic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adcraft.errors import InputError
from adcraft.rewards.utility import DemandUtilityModel, UtilityConfig, fit_utility

# y = 1 + Σ (b1 x + b2 x²) + noise; brightness peaks at 0.4 in [0, 1], colourfulness at 1.2 in
# [0, 2], symmetry is monotone (no square term).
TRUTH = {"brightness": (4.0, -5.0, 0.0, 1.0), "colourfulness": (4.8, -2.0, 0.0, 2.0),
         "symmetry": (1.5, 0.0, 0.0, 1.0)}
CONFIG = UtilityConfig(attributes=tuple(TRUTH))


def synthetic_table(n: int, seed: int, noise: float = 0.3, truth=TRUTH) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns = {name: rng.uniform(low, high, n) for name, (_, _, low, high) in truth.items()}
    demand = 1.0 + sum(b1 * columns[name] + b2 * columns[name] ** 2
                       for name, (b1, b2, _, _) in truth.items())
    return pd.DataFrame({**columns, "log_demand": demand + rng.normal(0.0, noise, n)})


def test_recovers_interior_peaks_and_flags_only_the_inverse_u_attributes() -> None:
    model = fit_utility(synthetic_table(2000, seed=0), "log_demand", CONFIG)
    summary = model.summary()
    for name, (b1, b2, low, high) in TRUTH.items():
        if b2 < 0:
            assert abs(summary.loc[name, "peak"] - (-b1 / (2 * b2))) < 0.05 * (high - low)
            assert summary.loc[name, "inverse_u"]
        else:
            assert not summary.loc[name, "inverse_u"]
        assert summary.loc[name, "b1"] == pytest.approx(b1, abs=4 * summary.loc[name, "b1_se"])
    assert model.r2 > model.r2_linear + 0.05
    assert model.adj_r2 < model.r2


def test_standard_errors_shrink_like_one_over_root_n() -> None:
    small = fit_utility(synthetic_table(400, seed=1), "log_demand", CONFIG).summary()
    large = fit_utility(synthetic_table(1600, seed=2), "log_demand", CONFIG).summary()
    ratio = small["b2_se"] / large["b2_se"]
    assert ratio.between(1.5, 2.5).all(), ratio


def test_intervals_cover_the_truth_about_95_percent_and_peak_errors_match_the_delta_method() -> None:
    truth = {"brightness": TRUTH["brightness"], "colourfulness": TRUTH["colourfulness"]}
    config = UtilityConfig(attributes=tuple(truth))
    covered, peaks, peak_ses = [], [], []
    for seed in range(200):
        row = fit_utility(synthetic_table(60, seed, truth=truth), "log_demand",
                          config).summary().loc["brightness"]
        covered.append(abs(row["b2"] - truth["brightness"][1]) <= 1.96 * row["b2_se"])
        peaks.append(row["peak"])
        peak_ses.append(row["peak_se"])
    assert 0.90 <= np.mean(covered) <= 0.99
    assert 0.8 <= np.mean(peak_ses) / np.std(peaks) <= 1.25


def test_prediction_is_the_visual_part_and_does_not_depend_on_standardisation() -> None:
    table = synthetic_table(300, seed=3)
    standardised = fit_utility(table, "log_demand", CONFIG)
    raw = fit_utility(table, "log_demand", UtilityConfig(attributes=tuple(TRUTH), standardize=False))
    np.testing.assert_allclose(standardised.coefficients, raw.coefficients, rtol=1e-8, atol=1e-10)
    h = standardised.predict(table)
    fitted = standardised.predict(table, include_intercept=True)
    np.testing.assert_allclose(fitted - h, standardised.intercept)
    residual = table["log_demand"].to_numpy() - fitted
    assert abs(residual.mean()) < 1e-10  # OLS with an intercept: residuals sum to zero
    as_array = standardised.predict(table[list(TRUTH)].to_numpy())
    np.testing.assert_allclose(as_array, h)
    one_row = standardised.predict({"brightness": 0.4, "colourfulness": 1.2, "symmetry": 0.0})
    assert one_row.shape == (1,) and one_row[0] == pytest.approx(
        sum(standardised.coefficients[1:3] * [0.4, 0.16]) + sum(standardised.coefficients[3:5] * [1.2, 1.44]))


def test_ridge_shrinks_the_attribute_coefficients() -> None:
    table = synthetic_table(200, seed=4)
    plain = fit_utility(table, "log_demand", CONFIG)
    shrunk = fit_utility(table, "log_demand", UtilityConfig(attributes=tuple(TRUTH), ridge=50.0))
    assert np.linalg.norm(shrunk.coef_fit[1:]) < 0.9 * np.linalg.norm(plain.coef_fit[1:])
    assert shrunk.r2 < plain.r2


def test_save_and_load_give_identical_predictions(tmp_path: Path) -> None:
    table = synthetic_table(200, seed=5)
    model = fit_utility(table, "log_demand", CONFIG)
    model.save(tmp_path / "utility")
    loaded = DemandUtilityModel.load(tmp_path / "utility")
    np.testing.assert_array_equal(loaded.predict(table), model.predict(table))
    assert loaded.config == model.config and loaded.r2 == model.r2
    pd.testing.assert_frame_equal(loaded.summary(), model.summary())


def test_bad_tables_are_refused_with_the_reason() -> None:
    table = synthetic_table(100, seed=6)
    with pytest.raises(InputError, match="at least 30 rows"):
        fit_utility(table.head(20), "log_demand", CONFIG)
    with pytest.raises(InputError, match="'log_demand' is constant"):
        fit_utility(table.assign(log_demand=2.0), "log_demand", CONFIG)
    with pytest.raises(InputError, match="'symmetry' has 1 NaN"):
        fit_utility(table.assign(symmetry=table["symmetry"].where(table.index != 7)), "log_demand",
                    CONFIG)
    with pytest.raises(InputError, match="attribute 'brightness' takes 1 distinct"):
        fit_utility(table.assign(brightness=0.5), "log_demand", CONFIG)
    with pytest.raises(InputError, match="attribute 'symmetry' takes 2 distinct"):
        fit_utility(table.assign(symmetry=(table.index % 2).astype(float)), "log_demand", CONFIG)
    with pytest.raises(InputError, match="column 'sales' is missing"):
        fit_utility(table, "sales", CONFIG)
    with pytest.raises(InputError, match="collinear"):
        fit_utility(table.assign(copy=table["brightness"]), "log_demand",
                    UtilityConfig(attributes=("brightness", "copy")))


def test_bad_configs_are_refused() -> None:
    with pytest.raises(InputError, match="target"):
        UtilityConfig(attributes=("a",), target="sales")
    with pytest.raises(InputError, match="ridge"):
        UtilityConfig(attributes=("a",), ridge=-1.0)
    with pytest.raises(InputError, match="repeat"):
        UtilityConfig(attributes=("a", "a"))
    assert UtilityConfig(attributes=["a", "b"]).attributes == ("a", "b")


def test_weighted_fit_trusts_precise_rows_more():
    """Rows with many impressions (small variance) pin the curve; noisy light rows do not."""
    from adcraft.rewards.utility import UtilityConfig, fit_utility

    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, 600)
    weight = np.where(rng.random(600) < 0.2, 400.0, 4.0)
    y = -3.0 * (x - 0.4) ** 2 + rng.normal(0, 1, 600) / np.sqrt(weight)
    table = pd.DataFrame({"a": x, "y": y, "w": weight})
    config = UtilityConfig(attributes=("a",), target="logit_ctr")
    weighted = fit_utility(table, "y", config, weight_column="w").summary().loc["a"]
    plain = fit_utility(table, "y", config).summary().loc["a"]
    assert abs(weighted["peak"] - 0.4) < 0.02
    assert weighted["peak_se"] < plain["peak_se"]
