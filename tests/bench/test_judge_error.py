"""``bench/judge_error.py``: the backtest refitted on true CTRs, and one market scored end to end."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import judge_error  # noqa: E402
import worlds  # noqa: E402

from adcraft.evaluate.evidence import contrast_points  # noqa: E402


def backtest_points(ratio: np.ndarray, observed: np.ndarray, reference: np.ndarray, impressions: float = 400.0,
                    products: int = 10) -> pd.DataFrame:
    """Backtest points as ``evaluate.evidence`` builds them: held-out creatives with the judge's predicted ratio to
    their reference, what they and the reference showed, spread over ``products`` products."""
    n = np.full(len(ratio), impressions)
    reference_n = np.full(len(ratio), 4 * impressions)
    level = np.clip(reference * ratio, 1e-6, 1.0)
    columns = contrast_points(reference * ratio, observed, n, reference, reference, reference_n, level,
                              np.clip(reference, 1e-6, 1.0))
    return pd.DataFrame({"product_id": [f"p{i % products}" for i in range(len(ratio))], "observed": observed,
                         "reference_observed": reference, "impressions": n, **columns})


def test_a_judge_whose_contrast_is_the_truths_times_a_slope_has_that_slope_and_no_spread():
    rng = np.random.default_rng(0)
    ratio = rng.uniform(0.6, 1.6, 200)
    reference = rng.uniform(0.02, 0.06, 200)
    for slope in (1.0, 0.5):
        true = reference * (1.0 + slope * (ratio - 1.0))
        clean = judge_error.noise_free_contrast(backtest_points(ratio, true, reference), true, reference)
        assert clean.contrast.slope == pytest.approx(slope, abs=1e-9)
        assert clean.contrast.spread == pytest.approx(0.0, abs=1e-6)
        assert clean.between == pytest.approx(0.0, abs=1e-6) and clean.within == pytest.approx(0.0, abs=1e-6)
        assert np.isnan(clean.noise_share)  # nothing observed off the truth: no noise to compare the subtracted with


def test_a_known_error_per_creative_is_the_noise_free_spread_and_stays_within_products():
    rng = np.random.default_rng(1)
    # blocks of 40 creatives (creative i of product i % 20): in each block every product has two creatives of the same
    # predicted ratio, one 20% above the line and one 20% below, so the error is as large everywhere and averages out
    # within every product and at every ratio
    position = np.arange(400) % 40
    ratio = rng.uniform(0.6, 1.6, (10, 20))[np.arange(400) // 40, position % 20]
    reference = np.full(400, 0.04)
    error = np.where(position < 20, 0.2, -0.2)
    true = reference * ratio * (1.0 + error)
    clean = judge_error.noise_free_contrast(backtest_points(ratio, true, reference, products=20), true, reference)
    assert clean.contrast.slope == pytest.approx(1.0, abs=1e-9)
    assert clean.contrast.spread == pytest.approx(0.2, rel=1e-6)
    assert clean.within == pytest.approx(0.2, rel=1e-6) and clean.between == pytest.approx(0.0, abs=1e-9)
    # a product's own offset is between products, not within them
    offset = np.where(np.arange(400) % 20 < 10, 0.15, -0.15)  # products p0..p9 +15%, p10..p19 -15%
    shifted = reference * ratio * (1.0 + offset)
    moved = judge_error.noise_free_contrast(backtest_points(ratio, shifted, reference, products=20), shifted, reference)
    assert moved.between == pytest.approx(0.15, abs=0.02) and moved.within < 0.05


def test_the_noise_share_is_one_when_the_observed_contrasts_carry_the_subtracted_noise_in_expectation():
    rng = np.random.default_rng(2)
    ratio = rng.uniform(0.8, 1.3, 4000)
    reference = np.full(4000, 0.05)
    true = reference * ratio
    n = 400.0
    observed = rng.binomial(int(n), true) / n  # binomial noise about the truth, the reference known exactly
    points = backtest_points(ratio, observed, reference, impressions=n)
    points = points.assign(contrast_noise=true * (1.0 - true) / n)  # the creative's binomial variance alone
    clean = judge_error.noise_free_contrast(points, true, reference)
    assert clean.noise_share == pytest.approx(1.0, abs=0.06)
    assert clean.contrast.spread == pytest.approx(0.0, abs=1e-6)  # the truth replaced the noisy clicks


def test_one_small_market_is_scored_for_both_arms_and_tabled(tmp_path):
    args = SimpleNamespace(workdir=tmp_path / "work", products=6, impressions=6000, out_json=tmp_path / "json",
                           results=tmp_path / "results.md", worlds=["main_effects"], seeds=[5], label="")
    args.workdir.mkdir()
    result = judge_error.score_market("main_effects", 5, args)
    assert list(result["arms"]) == list(judge_error.ARMS)
    one, own = (result["arms"][arm] for arm in judge_error.ARMS)
    assert one["product l2"] is None and own["product l2"] in judge_error.ARMS["additive, own product strength"][
        "product_l2_grid"]
    for values in (one, own):
        assert 0.0 <= values["launched share"] <= 1.0 and 0.0 <= values["harm share after do no harm"] <= 1.0
        assert values["harm share after do no harm"] <= values["harm share, every proposal launched"] + 1e-12
        assert values["low"] <= values["estimate"] <= values["high"]
        assert values["noise-free spread"] >= 0.0 and values["subtracted / true noise"] > 0.0
    worlds.write_result(worlds.result_path(args.out_json, "main_effects", 5, 6, 6000), result)
    judge_error.write_table(args)
    text = args.results.read_text()
    assert judge_error.heading(args) in text and "6 products and 6000 impressions" in text
    assert "| all | additive, own product strength | 1 |" in text and "Paired" in text


def synthetic_result(world: str, seed: int, impressions: int, spread: float, launched: float) -> dict:
    """A market's result as ``score_market`` writes it, every metric 0 but the noise-free spread and launched share."""
    arm = {metric: 0.0 for metric in judge_error.METRICS}
    arm.update({"noise-free spread": spread, "launched share": launched})
    return {"world": world, "seed": seed, "configured products": 6, "configured impressions": impressions,
            "products": 6, "impressions": impressions, "seconds": 1.0, "machine": "test machine",
            "finished": f"2026-01-0{seed} 00:00 UTC", "arms": {name: dict(arm) for name in judge_error.ARMS}}


def test_the_traffic_table_compares_each_logged_size_over_the_same_markets(tmp_path):
    results = [synthetic_result(world, seed, size, spread=0.3 - size / 1e5 + seed / 100, launched=size / 1e5)
               for size in (6000, 24000) for world in ("main_effects", "visual") for seed in (1, 2)]
    for result in results[4:7]:  # three markets of the larger size show the set better, two of them truly better
        for arm in result["arms"].values():
            arm["low"] = 0.05
            arm["true lift, every proposal launched"] = 0.1 if result is not results[6] else -0.02
    overall, per_world = judge_error.traffic_table(results)
    assert list(overall["impressions"]) == [6000, 6000, 24000, 24000]
    assert list(overall["arm"]) == list(judge_error.ARMS) * 2 and set(overall["markets"]) == {4}
    # the mean over the four markets of a size: 0.3 - size / 1e5 + 0.015
    spreads = overall["noise-free spread"]
    assert spreads.iloc[0].startswith("0.255 [") and spreads.iloc[2].startswith("0.075 [")
    assert list(overall["set shown better"]) == ["0 of 4", "0 of 4", "3 of 4", "3 of 4"]
    assert list(overall["of them truly better"]) == [0, 0, 2, 2]
    assert list(overall["of them with the lower end above the true lift"]) == [0, 0, 1, 1]  # 0.05 > -0.02
    assert list(per_world["world"]) == ["main_effects", "visual"]
    assert per_world["launched share, 24000"].iloc[1] == "0.240 [0.240, 0.240]"
    # written from the JSON files of each size, one section naming every size
    args = SimpleNamespace(workdir=tmp_path / "work", products=6, impressions=30000, traffic=[6000, 24000],
                           out_json=tmp_path / "json", results=tmp_path / "results.md",
                           worlds=["main_effects", "visual"], seeds=[1, 2], label="")
    for result in results:
        worlds.write_result(worlds.result_path(args.out_json, result["world"], result["seed"], 6,
                                               result["configured impressions"]), result)
    judge_error.write_traffic(args)
    text = args.results.read_text()
    assert judge_error.traffic_heading(args) in text and "6000, 24000 impressions" in text
    assert "| 24000 | additive, own product strength | 4 |" in text and "8 markets" in text
