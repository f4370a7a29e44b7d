"""``bench/rewards_real.py``'s paired table: each model minus the per-element model, per seed."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import rewards_real  # noqa: E402


def test_models_are_paired_with_the_per_element_model_seed_by_seed():
    rows = []
    for seed, (mine, base) in enumerate([(0.3, 0.1), (0.4, 0.1), (0.5, 0.2)]):
        for model, value in (("ref: real CTR", 1.0), ("mil-sum", mine), ("mil-per-element", base)):
            rows.append({"seed": seed, "model": model, "ctr_spearman": value, "projected_effects_spearman": value,
                         "gain_vs_base_x1e4": 10 * value})
    table = rewards_real.paired_against(pd.DataFrame(rows))
    # differences 0.2, 0.3, 0.3: mean 0.2667, sd 0.0577, half-width t(0.975, 2) * 0.0577 / sqrt(3) = 0.1434
    assert table["model"].tolist() == ["mil-sum - mil-per-element"]  # reference rows are not models
    assert table.loc[0, "ctr_spearman"] == "+0.267 [+0.123, +0.410]"
    assert table.loc[0, "gain_vs_base_x1e4"] == "+2.667 [+1.232, +4.101]"
