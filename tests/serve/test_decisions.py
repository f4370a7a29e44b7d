"""DecisionStore: decisions on a run's proposals in an SQL database (SQLite here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adcraft.errors import InputError
from adcraft.serve.decisions import EXPORT_COLUMNS, MAX_NOTE_CHARS, DecisionStore, sqlite_url
from adcraft.serve.run_view import RunView


@pytest.fixture(scope="module")
def view(served_run: tuple[Path, Path]) -> RunView:
    return RunView.load(*served_run)


@pytest.fixture
def store(view: RunView, tmp_path: Path):
    store = DecisionStore(sqlite_url(tmp_path / "decisions.sqlite"), view)
    yield store
    store.dispose()


def _proposals(view: RunView):
    first, second = view.product_ids[:2]
    return view.review(first).proposals, view.review(second).proposals


def test_a_decision_round_trips_with_the_creative_as_it_was(store: DecisionStore, view: RunView) -> None:
    proposal = _proposals(view)[0][0]
    before = datetime.now(UTC)
    saved = store.record(proposal.product_id, proposal.creative_id, "approve", "bold <b>title</b> works")
    assert saved.decided_at.tzinfo is not None and saved.decided_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= saved.decided_at <= datetime.now(UTC)
    [read] = store.history()
    assert read == saved
    assert (read.rank, read.elements, read.image) == (proposal.rank, proposal.elements, proposal.image)
    assert read.predicted_ctr == pytest.approx(proposal.predicted_ctr)
    assert read.note == "bold <b>title</b> works"
    export = store.approved()
    assert list(export.columns) == list(EXPORT_COLUMNS)
    assert export[["product_id", "creative_id"]].values.tolist() == [[proposal.product_id, proposal.creative_id]]
    assert list(export.loc[0, "elements"]) == list(proposal.elements)


def test_the_latest_decision_of_a_creative_wins(store: DecisionStore, view: RunView) -> None:
    mine, theirs = _proposals(view)
    store.record(mine[0].product_id, mine[0].creative_id, "approve", "first look")
    store.record(mine[0].product_id, mine[0].creative_id, "reject", "on second thought")
    store.record(theirs[0].product_id, theirs[0].creative_id, "approve")
    latest = store.latest()
    assert [(d.creative_id, d.decision) for d in latest] == [(mine[0].creative_id, "reject"),
                                                             (theirs[0].creative_id, "approve")]
    assert [d.note for d in store.history(creative_id=mine[0].creative_id)] == ["on second thought", "first look"]
    assert [d.creative_id for d in store.latest(product_id=theirs[0].product_id)] == [theirs[0].creative_id]
    assert store.approved()["creative_id"].tolist() == [theirs[0].creative_id]


@pytest.mark.parametrize("change, message", [
    ({"decision": "maybe"}, "decision must be one of"),
    ({"decision": "APPROVE"}, "decision must be one of"),
    ({"note": "x" * (MAX_NOTE_CHARS + 1)}, "at most 2000"),
    ({"note": None}, "note must be text"),
    ({"product_id": "no-such-product"}, "no product"),
    ({"creative_id": "no-such-creative"}, "no proposed creative"),
    ({"creative_id": "OTHER"}, "no proposed creative"),
])
def test_bad_input_is_refused_and_stores_nothing(store: DecisionStore, view: RunView, change, message) -> None:
    mine, theirs = _proposals(view)
    store.record(mine[1].product_id, mine[1].creative_id, "reject", "kept")
    arguments = {"product_id": mine[0].product_id, "creative_id": mine[0].creative_id, "decision": "approve",
                 "note": ""}
    arguments.update(change)
    if arguments["creative_id"] == "OTHER":  # a real creative, of another product
        arguments["creative_id"] = theirs[0].creative_id
    before = store.history()
    with pytest.raises(InputError, match=message):
        store.record(**arguments)
    assert store.history() == before and len(before) == 1


def test_decisions_persist_in_a_new_store_on_the_same_file(view: RunView, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "kept.sqlite")
    proposal = _proposals(view)[0][0]
    first = DecisionStore(url, view)
    saved = first.record(proposal.product_id, proposal.creative_id, "approve", "ship it")
    first.dispose()
    second = DecisionStore(url, view)
    try:
        assert second.latest() == [saved]
        assert second.approved()["note"].tolist() == ["ship it"]
    finally:
        second.dispose()


def test_an_empty_export_has_the_columns(store: DecisionStore) -> None:
    export = store.approved()
    assert export.empty and list(export.columns) == list(EXPORT_COLUMNS)


@pytest.mark.parametrize("url", ["not a url", "nosuchdialect://x/y", "sqlite:////no/such/folder/at/all/d.sqlite"])
def test_an_unusable_database_url_is_an_input_error(view: RunView, url: str) -> None:
    with pytest.raises(InputError, match="database"):
        DecisionStore(url, view)
