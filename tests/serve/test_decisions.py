"""DecisionStore: decisions on a run's proposals in an SQL database (SQLite here)."""

from __future__ import annotations

import copy
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from adcraft.errors import InputError
from adcraft.pipeline.reviews import sqlite_url
from adcraft.serve.decisions import EXPORT_COLUMNS, MAX_NOTE_CHARS, DecisionStore
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


def test_a_decision_names_its_run_and_keeps_the_render_settings(store: DecisionStore, view: RunView) -> None:
    proposal = _proposals(view)[0][0]
    saved = store.record(proposal.product_id, proposal.creative_id, "approve")
    assert saved.run_id == view.run_id and saved.run_id.startswith("run-")
    assert saved.render["backend"] == "compositor" and saved.render == view.render
    assert store.history()[0].render == view.render
    assert store.approved()["run_id"].tolist() == [view.run_id]


def test_runs_sharing_a_database_see_only_their_own_decisions(view: RunView, tmp_path: Path) -> None:
    other = copy.copy(view)
    other.run_id = "run-another0000000"
    url = sqlite_url(tmp_path / "shared.sqlite")
    mine, theirs = DecisionStore(url, view), DecisionStore(url, other)
    try:
        proposal = _proposals(view)[0][0]
        mine.record(proposal.product_id, proposal.creative_id, "approve")
        theirs.record(proposal.product_id, proposal.creative_id, "reject")
        assert [d.decision for d in mine.latest()] == ["approve"]
        assert [d.decision for d in theirs.latest()] == ["reject"]
        assert len(mine.history()) == 1 and theirs.approved().empty
    finally:
        mine.dispose()
        theirs.dispose()


OLD_SCHEMA = """CREATE TABLE review_decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, product_id VARCHAR(255) NOT NULL,
    creative_id VARCHAR(255) NOT NULL, decision VARCHAR(16) NOT NULL, note TEXT NOT NULL,
    decided_at DATETIME NOT NULL, rank INTEGER NOT NULL, elements JSON NOT NULL, predicted_ctr FLOAT NOT NULL,
    image VARCHAR(1024) NOT NULL)"""


def _old_database(path: Path, view: RunView) -> str:
    """A decisions database as the release before run ids wrote it, with one approval of ``view``'s first proposal."""
    proposal = _proposals(view)[0][0]
    with sqlite3.connect(path) as connection:
        connection.execute(OLD_SCHEMA)
        connection.execute("INSERT INTO review_decisions (product_id, creative_id, decision, note, decided_at, rank, "
                           "elements, predicted_ctr, image) VALUES (?, ?, 'approve', 'old', '2026-01-02 03:04:05', "
                           "?, ?, 0.1, ?)", (proposal.product_id, proposal.creative_id, proposal.rank,
                                             json.dumps(list(proposal.elements)), proposal.image))
    connection.close()
    return sqlite_url(path)


@pytest.mark.parametrize("adopt", [False, True])
def test_a_database_without_run_ids_is_migrated(view: RunView, tmp_path: Path, adopt: bool) -> None:
    url = _old_database(tmp_path / "old.sqlite", view)
    store = DecisionStore(url, view, adopt_unattributed=adopt)
    try:
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("review_decisions")}
        assert {"run_id", "render"} <= columns
        if adopt:  # the run that owns the database takes its old decisions
            [old] = store.latest()
            assert (old.note, old.run_id, old.render) == ("old", view.run_id, view.render)
            assert store.unattributed == 0
        else:  # another run's database: the old rows are kept, unread
            assert store.latest() == [] and store.unattributed == 1
        proposal = _proposals(view)[1][0]
        store.record(proposal.product_id, proposal.creative_id, "approve")  # the migrated table takes new rows
        assert len(store.history()) == (2 if adopt else 1)
    finally:
        store.dispose()
    reopened = DecisionStore(url, view)  # a second opening migrates nothing and loses nothing
    try:
        assert len(reopened.history()) == (2 if adopt else 1)
    finally:
        reopened.dispose()
