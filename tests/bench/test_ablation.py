"""``bench/ablation.py``: what it reads of each run, including whether the run's interval held the truth."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import ablation  # noqa: E402
from worlds import OPTIMIZE  # noqa: E402


def write_run(folder: Path, world: str, seed: int, true: float, low: float, high: float) -> None:
    figures = {"share of oracle lift": 0.1, "harm share": 0.0, "true lift": true, "kept products": 3,
               "reported lift": (low + high) / 2, "reported low": low, "reported high": high}
    (folder / f"{world}-{seed}.json").write_text(json.dumps({"world": world, "seed": seed,
                                                               "methods": {OPTIMIZE: figures}}))


def test_each_run_says_whether_its_interval_held_the_true_lift(tmp_path):
    write_run(tmp_path, "visual", 1, true=0.05, low=0.01, high=0.09)
    write_run(tmp_path, "visual", 2, true=0.05, low=0.08, high=0.20)
    runs = ablation.load(tmp_path)
    assert runs[("visual", 1)]["interval holds the true lift"] == 1.0
    assert runs[("visual", 2)]["interval holds the true lift"] == 0.0
    assert runs[("visual", 2)]["reported - true lift"] == pytest.approx(0.09)
