"""``bench/within_product.py``: which judge a run chose, and the per-world table of within-product scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import within_product  # noqa: E402


@pytest.mark.parametrize(("note", "chosen"), [
    ("The additive logistic model chooses and values the proposals: on the latest part ...", "additive"),
    ("The multi-instance model chooses and values the proposals: on the latest part ...", "multi-instance"),
    ("Do no harm: ...", ""),
])
def test_the_chosen_judge_is_read_from_the_runs_notes(tmp_path, note, chosen):
    (tmp_path / "run.json").write_text(json.dumps({"notes": ["Validation passed.", note]}))
    assert within_product.chosen_judge(tmp_path) == chosen


def test_the_table_has_a_row_per_world_and_one_over_all_markets():
    rows = pd.DataFrame({
        "world": ["a", "a", "b"], "seed": [1, 2, 1], "held-out clicks": [100.0, 120.0, 90.0],
        "chosen": ["additive", "multi-instance", "additive"],
        "multi-instance - constant": [0.01, 0.03, -0.02], "additive - constant": [0.0, 0.02, 0.01],
        "truth - constant": [0.02, 0.02, 0.02], "multi-instance - additive": [0.01, 0.01, -0.03],
    })
    table = within_product.table(rows).set_index("world")
    assert table.loc["all", "markets"] == 3 and table.loc["a", "markets"] == 2
    assert table.loc["all", "auto chose additive"] == 2 and table.loc["a", "auto chose additive"] == 1
    assert table.loc["b", "truth - constant"].startswith("+0.0200")  # one market: the value, no interval
    assert table.loc["a", "multi-instance - constant"].startswith("+0.0200 [")  # the mean, then its interval
