"""``bench/serve_counts.py``: the kept arm counts against counting the log, on small logs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import serve_counts  # noqa: E402


def test_both_ways_give_the_logs_counts_and_times_are_reported(tmp_path):
    result = serve_counts.measure(rows=300, arms=3, repeats=4, seed=1, workdir=tmp_path)
    assert result["log rows per product"] == 300 and result["reads"] == 4
    for name in ("kept median ms", "kept p99 ms", "counted median ms", "counted p99 ms"):
        assert result[name] > 0
    assert result["kept p99 ms"] >= result["kept median ms"]
    assert list(tmp_path.iterdir()) == []  # the database is removed


def test_the_kept_counts_equal_the_counts_of_the_log(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.sqlite'}")
    serve_counts.fill(engine, rows=500, arms=4, rng=np.random.default_rng(3))
    for product in serve_counts.PRODUCTS:
        kept = serve_counts.arm_counts(engine, product, serve_counts.RUN_ID)
        assert kept == serve_counts.counted(engine, product)
        assert len(kept) == 4 and sum(n for n, _ in kept.values()) == 500
        assert 0 < sum(c for _, c in kept.values()) < 60  # clicks drawn at 4 %
    engine.dispose()
