from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from adcraft.errors import InputError
from adcraft.pipeline.reviews import read_rejections
from adcraft.serve.decisions import _metadata, decisions_table

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def write_decisions(path, rows) -> str:
    """An SQLite file with the review page's own decisions table, holding ``rows``
    (product, elements, decision, minutes after NOW)."""
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    _metadata.create_all(engine)
    with engine.begin() as connection:
        for k, (product, elements, decision, minutes) in enumerate(rows):
            connection.execute(decisions_table.insert().values(
                product_id=product, creative_id=f"c{k}", decision=decision, note="", rank=1,
                decided_at=NOW + timedelta(minutes=minutes), elements=elements, predicted_ctr=0.02,
                image="creatives/x.png", run_id="run-a"))
    engine.dispose()
    return url


def test_the_latest_decision_on_a_combination_counts(tmp_path):
    url = write_decisions(tmp_path / "d.sqlite", [
        ("p1", ["t1", "b1"], "reject", 0),
        ("p1", ["t2", "b1"], "reject", 0),
        ("p1", ["t2", "b1"], "approve", 5),  # changed mind: no longer excluded
        ("p2", ["t1", "b1"], "approve", 0),
        ("p2", ["t1", "b1"], "reject", 9),
    ])
    assert read_rejections(url) == {"p1": {("t1", "b1")}, "p2": {("t1", "b1")}}
    assert read_rejections(str(tmp_path / "d.sqlite")) == read_rejections(url)  # a file path works too


def test_unusable_databases_are_refused_with_the_reason(tmp_path):
    with pytest.raises(InputError, match="no such database file"):
        read_rejections(str(tmp_path / "missing.sqlite"))
    empty = tmp_path / "empty.sqlite"
    sa.create_engine(f"sqlite:///{empty}").connect().close()
    with pytest.raises(InputError, match="no decisions table"):
        read_rejections(str(empty))
