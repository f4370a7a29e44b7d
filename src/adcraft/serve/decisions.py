"""The reviewers' decisions on a run's proposals, kept in a SQL database (SQLAlchemy 2).

An embedded SQLite file by default (``sqlite_url``); any SQLAlchemy URL works, e.g.
``postgresql+psycopg://user@host/db`` with that driver installed. Each decision is one row, never updated:
the latest row of a creative is its state, the older ones its history. A row keeps the creative as it was
when decided (elements, predicted CTR, image, the run's render settings) and the run it belongs to
(``run_id``, from the run's run.json), so an export still says what was approved after the run folder is
replaced, and a database that several runs share keeps each run's decisions apart: a store reads and
writes only the rows of its own run.

A database written before decisions named their run is migrated when opened: the columns are added, and
its rows (whose run is unknown) are given to the run opening it only when that run owns the database
(``adopt_unattributed``: the server does so for a SQLite file inside the run folder, the default); otherwise
they stay unattributed, kept but read by no run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError, ProgrammingError

from adcraft.errors import InputError
from adcraft.pipeline.reviews import DECISIONS_TABLE
from adcraft.serve.run_view import RunView

DECISIONS = ("approve", "reject")
MAX_NOTE_CHARS = 2000
EXPORT_COLUMNS = ("product_id", "creative_id", "rank", "elements", "image", "predicted_ctr", "note", "decided_at",
                  "run_id")
RUN_ID_CHARS = 64
log = logging.getLogger(__name__)

_metadata = sa.MetaData()
decisions_table = sa.Table(
    DECISIONS_TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("product_id", sa.String(255), nullable=False),
    sa.Column("creative_id", sa.String(255), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("elements", sa.JSON, nullable=False),
    sa.Column("predicted_ctr", sa.Float, nullable=False),
    sa.Column("image", sa.String(1024), nullable=False),
    # Added after the first release: null in rows written before (see the module docstring).
    sa.Column("run_id", sa.String(RUN_ID_CHARS), nullable=True),
    sa.Column("render", sa.JSON, nullable=True),
    sa.Index("ix_review_decisions_creative", "product_id", "creative_id"),
)
run_index = sa.Index("ix_review_decisions_run", decisions_table.c.run_id, decisions_table.c.product_id)
ADDED_COLUMNS = ("run_id", "render")


def sqlite_file(database_url: str) -> Path | None:
    """The file of an SQLite URL (None for another database, an in-memory one or a malformed URL)."""
    try:
        url = sa.make_url(database_url)
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


def open_engine(database_url: str) -> sa.Engine:
    """An engine on ``database_url``; ``InputError`` when the URL is malformed or names a missing driver.

    SQLite waits up to 30 s for another writer's lock instead of failing at once, and a database file is kept
    in write-ahead-log mode with full synchronous commits: a commit is one sync of the log (not the several of
    the default rollback journal, which made a served impression cost ~20 ms), still on disk once it returns,
    and readers do not wait for writers.
    """
    try:
        sqlite = database_url.startswith("sqlite")
        engine = sa.create_engine(database_url, connect_args={"timeout": 30} if sqlite else {})
    except (ArgumentError, NoSuchModuleError, ModuleNotFoundError) as exc:
        raise InputError(f"database URL {_redacted(database_url)!r} is not usable: {exc}") from exc
    if sqlite and sqlite_file(database_url) is not None:
        sa.event.listen(engine, "connect", _write_ahead_log)
    return engine


def _write_ahead_log(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def unusable_database(database_url: str, exc: DBAPIError) -> InputError:
    """The error for a database that cannot be opened or written, naming it without its password."""
    return InputError(f"cannot open the decisions database {_redacted(database_url)!r}: {exc.orig}")


@dataclass(frozen=True)
class Decision:
    """One stored decision, with the creative as it was when decided. ``decided_at`` is in UTC."""

    id: int
    product_id: str
    creative_id: str
    decision: str
    note: str
    decided_at: datetime
    rank: int
    elements: tuple[str, ...]
    predicted_ctr: float
    image: str
    run_id: str
    render: dict[str, Any]

    def to_json(self) -> dict:
        return {
            "id": self.id, "product_id": self.product_id, "creative_id": self.creative_id,
            "decision": self.decision, "note": self.note, "decided_at": self.decided_at.isoformat(),
            "rank": self.rank, "elements": list(self.elements), "predicted_ctr": self.predicted_ctr,
            "image": self.image, "run_id": self.run_id, "render": self.render,
        }


class DecisionStore:
    """Decisions on the proposals of ``run``, in the database at ``database_url`` (its table is created if
    absent, an older one migrated: see the module docstring); it reads and writes only ``run.run_id``'s rows.

    Raises ``InputError`` when the URL is malformed, names a driver that is not installed or cannot be opened.
    """

    def __init__(self, database_url: str, run: RunView, adopt_unattributed: bool = False) -> None:
        self.run = run
        self.database_url = database_url
        self.engine = open_engine(database_url)
        try:
            _metadata.create_all(self.engine)
            _add_missing_columns(self.engine)
            run_index.create(self.engine, checkfirst=True)
            self.unattributed = self._unattributed(adopt_unattributed)
        except (OperationalError, ProgrammingError) as exc:
            self.engine.dispose()
            raise unusable_database(database_url, exc) from exc
        if self.unattributed:
            log.warning("%d decisions in %s were written before decisions named their run; they are kept and "
                        "not read (a database inside the run folder gives them to that run)", self.unattributed,
                        _redacted(database_url))

    def _unattributed(self, adopt: bool) -> int:
        """Rows without a run: given to this run when ``adopt``; returns how many are left without one."""
        unowned = decisions_table.c.run_id.is_(None)
        with self.engine.begin() as connection:
            if adopt:
                connection.execute(sa.update(decisions_table).where(unowned).values(
                    run_id=self.run.run_id, render=self.run.render))
                return 0
            return int(connection.execute(sa.select(sa.func.count()).where(unowned)).scalar_one())

    def record(self, product_id: str, creative_id: str, decision: str, note: str = "") -> Decision:
        """Store one decision on a proposal of the run, in one transaction, and return it.

        Raises ``InputError`` (and stores nothing) for a decision other than approve/reject, a note over
        ``MAX_NOTE_CHARS`` characters or a product/creative the run does not have.
        """
        if decision not in DECISIONS:
            raise InputError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        if not isinstance(note, str):
            raise InputError("note must be text")
        if len(note) > MAX_NOTE_CHARS:
            raise InputError(f"note is {len(note)} characters long; at most {MAX_NOTE_CHARS} are kept")
        proposal = self.run.proposal(product_id, creative_id)
        row = {
            "product_id": product_id, "creative_id": creative_id, "decision": decision, "note": note,
            "decided_at": datetime.now(UTC), "rank": proposal.rank, "elements": list(proposal.elements),
            "predicted_ctr": proposal.predicted_ctr, "image": proposal.image, "run_id": self.run.run_id,
            "render": self.run.render,
        }
        with self.engine.begin() as connection:
            new_id = connection.execute(sa.insert(decisions_table).values(**row)).inserted_primary_key[0]
        return _decision({"id": new_id, **row})

    def history(self, product_id: str | None = None, creative_id: str | None = None) -> list[Decision]:
        """Every decision (of one product, or one creative), newest first."""
        query = sa.select(decisions_table).where(self._own)
        if product_id is not None:
            query = query.where(decisions_table.c.product_id == product_id)
        if creative_id is not None:
            query = query.where(decisions_table.c.creative_id == creative_id)
        return self._fetch(query.order_by(decisions_table.c.id.desc()))

    def latest(self, product_id: str | None = None) -> list[Decision]:
        """The latest decision of each decided creative (of one product), by product then rank."""
        newest = sa.select(sa.func.max(decisions_table.c.id)).where(self._own).group_by(
            decisions_table.c.product_id, decisions_table.c.creative_id)
        if product_id is not None:
            newest = newest.where(decisions_table.c.product_id == product_id)
        query = sa.select(decisions_table).where(decisions_table.c.id.in_(newest)).order_by(
            decisions_table.c.product_id, decisions_table.c.rank, decisions_table.c.creative_id)
        return self._fetch(query)

    def approved(self) -> pd.DataFrame:
        """The export: creatives whose latest decision is approve, columns ``EXPORT_COLUMNS``."""
        rows = [d for d in self.latest() if d.decision == "approve"]
        frame = pd.DataFrame({
            "product_id": pd.Series([d.product_id for d in rows], dtype=object),
            "creative_id": pd.Series([d.creative_id for d in rows], dtype=object),
            "rank": pd.Series([d.rank for d in rows], dtype="int64"),
            "elements": pd.Series([list(d.elements) for d in rows], dtype=object),
            "image": pd.Series([d.image for d in rows], dtype=object),
            "predicted_ctr": pd.Series([d.predicted_ctr for d in rows], dtype="float64"),
            "note": pd.Series([d.note for d in rows], dtype=object),
            "decided_at": pd.Series(pd.to_datetime([d.decided_at for d in rows], utc=True)),
            "run_id": pd.Series([d.run_id for d in rows], dtype=object),
        })
        return frame[list(EXPORT_COLUMNS)]

    def approved_for(self, product_id: str) -> list[Decision]:
        """The creatives of ``product_id`` whose latest decision is approve, by rank."""
        return [d for d in self.latest(product_id) if d.decision == "approve"]

    @property
    def _own(self) -> sa.ColumnElement[bool]:
        return decisions_table.c.run_id == self.run.run_id

    def dispose(self) -> None:
        """Close the database connections."""
        self.engine.dispose()

    def _fetch(self, query: sa.Select) -> list[Decision]:
        with self.engine.connect() as connection:
            return [_decision(dict(row._mapping)) for row in connection.execute(query)]


def _decision(row: dict) -> Decision:
    decided_at = row["decided_at"]
    if decided_at.tzinfo is None:  # SQLite keeps no time zone; every stored time is UTC
        decided_at = decided_at.replace(tzinfo=UTC)
    return Decision(
        id=int(row["id"]), product_id=row["product_id"], creative_id=row["creative_id"], decision=row["decision"],
        note=row["note"], decided_at=decided_at.astimezone(UTC), rank=int(row["rank"]),
        elements=tuple(str(e) for e in row["elements"]), predicted_ctr=float(row["predicted_ctr"]),
        image=row["image"], run_id=row["run_id"], render=dict(row["render"] or {}),
    )


def _add_missing_columns(engine: sa.Engine) -> None:
    """Add to an existing decisions table the columns later releases added (``ADDED_COLUMNS``), as nullable
    columns; a server starting at the same moment may have added them first."""
    present = {column["name"] for column in sa.inspect(engine).get_columns(decisions_table.name)}
    for name in ADDED_COLUMNS:
        if name in present:
            continue
        column = decisions_table.c[name]
        kind = column.type.compile(dialect=engine.dialect)
        try:
            with engine.begin() as connection:
                connection.execute(sa.text(f"ALTER TABLE {decisions_table.name} ADD COLUMN {name} {kind}"))
        except (OperationalError, ProgrammingError):
            if name not in {c["name"] for c in sa.inspect(engine).get_columns(decisions_table.name)}:
                raise


def _redacted(url: str) -> str:
    """The URL without its password, fit for an error message."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<malformed URL>"
