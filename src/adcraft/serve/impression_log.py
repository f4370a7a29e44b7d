"""The served log: every creative ``/v1/serve`` showed, with its exact propensity, and the clicks on it.

The arms of a product are the creatives reviewers approved for it in this run (latest decision approve,
``DecisionStore.approved_for``) and the creative it shows now (its best logged one, the run's
``products.parquet``); an approved creative with the same elements as the current one is the same arm.
``ServingPolicy`` chooses among them from the served clicks of every run of the database that showed the
product with the arm's elements (``policy.carry_over``; off, this run's alone), under a prior centred on the
product's logged CTR (``product_priors``, with ``policy.prior_from_logs``).

The log is one table, ``served_impressions``, in the decisions database (same engine): one row per served
impression, written and committed before the answer leaves, so an impression a client was told about is
in the log after any restart. A click (``/v1/feedback``) sets the row's ``click`` to 1; a second click on
the same impression changes nothing. Each row names its run (``run_id``), so a database that several runs
share keeps their logs apart; ``adcraft logs export`` writes one run's rows as a market's impressions.

Beside the log, ``served_counts`` keeps each arm's impressions and clicks per run (product, run, combination),
updated in the transaction that writes the log's row or its click, so the counts a choice reads are a few rows
per arm however long the log grows, and always the log's own (``rebuild_counts`` recomputes them from the log
on a database from before the table).
"""

from __future__ import annotations

import importlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from adcraft.errors import InputError
from adcraft.market import Market
from adcraft.market.click_log import click_log
from adcraft.serve.decisions import RUN_ID_CHARS, DecisionStore, unusable_database
from adcraft.serve.policy import ServingPolicy, ServingPolicyConfig, product_prior
from adcraft.serve.state import NotFound

APPROVED, CURRENT = "approved", "current"
IMPRESSION_PREFIX = "srv-"
LOG_COLUMNS = ("impression_id", "run_id", "product_id", "creative_id", "source", "elements", "image",
               "propensity", "arms", "policy", "context", "ts", "click")

_metadata = sa.MetaData()
served_table = sa.Table(
    "served_impressions",
    _metadata,
    sa.Column("impression_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(RUN_ID_CHARS), nullable=False),
    sa.Column("product_id", sa.String(255), nullable=False),
    sa.Column("creative_id", sa.String(255), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("elements", sa.JSON, nullable=False),
    sa.Column("image", sa.String(1024), nullable=True),
    sa.Column("propensity", sa.Float, nullable=False),
    sa.Column("arms", sa.Integer, nullable=False),
    sa.Column("policy", sa.String(128), nullable=False),
    sa.Column("context", sa.Text, nullable=True),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("served_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("click", sa.SmallInteger, nullable=False),
    sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_served_impressions_arm", "run_id", "product_id", "creative_id"),
)
# Each arm's served impressions and clicks per run, kept with the log in the same transactions, so that choosing
# reads a few rows per arm however long the log grows; rebuilt from the log on a database from before it.
counts_table = sa.Table(
    "served_counts",
    _metadata,
    sa.Column("product_id", sa.String(255), primary_key=True),
    sa.Column("run_id", sa.String(RUN_ID_CHARS), primary_key=True),
    sa.Column("elements", sa.Text, primary_key=True),  # elements_key of the combination
    sa.Column("impressions", sa.BigInteger, nullable=False),
    sa.Column("clicks", sa.BigInteger, nullable=False),
)


def elements_key(elements: Sequence[str]) -> str:
    """A combination as the ``served_counts`` table keys it: its element ids, in slot order, as JSON text."""
    return json.dumps([str(e) for e in elements])


def counts_upsert(dialect: str, values: dict[str, Any]) -> sa.Insert | None:
    """One statement adding ``values``' impressions and clicks to their arm's row of ``served_counts``, made when
    missing (``INSERT ... ON CONFLICT DO UPDATE``), for SQLite and PostgreSQL; None for other databases."""
    if dialect not in ("sqlite", "postgresql"):
        return None
    insert = importlib.import_module(f"sqlalchemy.dialects.{dialect}").insert(counts_table).values(**values)
    return insert.on_conflict_do_update(
        index_elements=[counts_table.c.product_id, counts_table.c.run_id, counts_table.c.elements],
        set_={"impressions": counts_table.c.impressions + insert.excluded.impressions,
              "clicks": counts_table.c.clicks + insert.excluded.clicks})


def _add_counts(connection: sa.Connection, product_id: str, run_id: str, key: str, impressions: int,
                clicks: int) -> None:
    """Add to an arm's counts in ``served_counts`` (its row made when missing), inside the caller's transaction:
    one upsert on SQLite and PostgreSQL, an update else an insert on other databases."""
    values = {"product_id": product_id, "run_id": run_id, "elements": key, "impressions": impressions,
              "clicks": clicks}
    upsert = counts_upsert(connection.dialect.name, values)
    if upsert is not None:
        connection.execute(upsert)
        return
    updated = connection.execute(sa.update(counts_table).where(
        counts_table.c.product_id == product_id, counts_table.c.run_id == run_id, counts_table.c.elements == key,
    ).values(impressions=counts_table.c.impressions + impressions, clicks=counts_table.c.clicks + clicks))
    if not updated.rowcount:
        connection.execute(sa.insert(counts_table).values(**values))


def log_counts_query(*where: sa.ColumnElement[bool]) -> sa.Select:
    """(product_id, run_id, elements' JSON text, impressions, clicks) of the served log's rows matching ``where``,
    grouped by arm: the counts as the log itself gives them (what ``served_counts`` keeps without re-reading)."""
    elements = sa.cast(served_table.c.elements, sa.Text)
    return sa.select(served_table.c.product_id, served_table.c.run_id, elements, sa.func.count(),
                     sa.func.sum(served_table.c.click)).where(*where).group_by(
        served_table.c.product_id, served_table.c.run_id, elements)


def rebuild_counts(engine: sa.Engine) -> int:
    """Recompute ``served_counts`` from the log, in one transaction (idempotent: two servers opening a database
    from before the table at once leave the same counts); returns the arms counted."""
    with engine.begin() as connection:
        connection.execute(sa.delete(counts_table))
        totals: dict[tuple[str, str, str], tuple[int, int]] = {}
        for product_id, run_id, text, n, c in connection.execute(log_counts_query()):
            key = (product_id, run_id, elements_key(json.loads(text)))
            before = totals.get(key, (0, 0))
            totals[key] = (before[0] + int(n), before[1] + int(c or 0))
        if totals:
            connection.execute(sa.insert(counts_table), [
                {"product_id": p, "run_id": r, "elements": e, "impressions": n, "clicks": c}
                for (p, r, e), (n, c) in totals.items()])
    return len(totals)


@dataclass(frozen=True)
class Arm:
    """A creative the policy may show: ``source`` says whether reviewers approved it or it is the current one;
    ``image`` is its image path in the run folder (None when the run has none)."""

    creative_id: str
    source: str
    elements: tuple[str, ...]
    image: str | None


@dataclass(frozen=True)
class ArmState:
    """An arm with its served impressions and clicks before the choice, and the propensity it was given."""

    arm: Arm
    impressions: int
    clicks: int
    propensity: float


@dataclass(frozen=True)
class ServedImpression:
    """One answer of ``/v1/serve``: the impression, the arm shown, its propensity and every arm's."""

    impression_id: str
    run_id: str
    product_id: str
    arm: Arm
    propensity: float
    policy: str
    ts: int
    arms: tuple[ArmState, ...]


@dataclass(frozen=True)
class Click:
    """The impression a click was recorded on (``/v1/feedback``)."""

    impression_id: str
    run_id: str
    product_id: str
    creative_id: str
    clicked_at: datetime


class ImpressionLog:
    """Serve and log a run's creatives in the database of ``decisions`` (the run is ``decisions.run``).

    Raises ``InputError`` when the table cannot be created.
    """

    def __init__(self, decisions: DecisionStore, policy: ServingPolicy,
                 priors: Mapping[str, tuple[float, float]] | None = None) -> None:
        self.priors = dict(priors or {})  # product -> Beta prior of its arms (product_priors); else the config's
        self.decisions = decisions
        self.run = decisions.run
        self.engine = decisions.engine
        self.policy = policy
        self._products = frozenset(self.run.product_ids)
        try:
            counted = sa.inspect(self.engine).has_table(counts_table.name)
            _metadata.create_all(self.engine)
            if not counted:
                rebuild_counts(self.engine)
        except OperationalError as exc:
            raise unusable_database(decisions.database_url, exc) from exc

    def arms(self, product_id: str) -> list[Arm]:
        """The product's arms: the current creative first, then the approved ones by rank, each combination once.

        Raises ``NotFound`` for a product the run does not have.
        """
        if product_id not in self._products:
            raise NotFound(f"unknown product {product_id[:80]!r}: the market has no such product_id")
        out, seen = [], set()
        current = self.run.current(product_id)
        if current is not None:
            out.append(Arm(current.creative_id, CURRENT, current.elements, None))
            seen.add(current.elements)
        for decision in self.decisions.approved_for(product_id):
            if decision.elements not in seen:
                out.append(Arm(decision.creative_id, APPROVED, decision.elements, decision.image))
                seen.add(decision.elements)
        return out

    def serve(self, product_id: str, context: dict[str, Any] | None = None) -> ServedImpression:
        """Choose a creative for one impression of ``product_id``, log it (committed) and return it.

        Raises ``NotFound`` for an unknown product or one with nothing to show (no current creative and none
        approved).
        """
        arms = self.arms(product_id)
        if not arms:
            raise NotFound(f"product {product_id!r} has nothing to serve: it has no logged creative and no "
                           "approved one; approve a proposal on the review page first")
        counts = self._counts(product_id)
        shown = [counts.get(arm.elements, (0, 0)) for arm in arms]
        index, propensities = self.policy.choose([c for _, c in shown], [n for n, _ in shown],
                                                 self.priors.get(product_id))
        chosen, now = arms[index], datetime.now(UTC)
        impression = ServedImpression(
            impression_id=IMPRESSION_PREFIX + uuid.uuid4().hex, run_id=self.run.run_id, product_id=product_id,
            arm=chosen, propensity=float(propensities[index]), policy=self.policy.name, ts=int(time.time()),
            arms=tuple(ArmState(arm, n, c, float(p)) for arm, (n, c), p in zip(arms, shown, propensities)),
        )
        row = {
            "impression_id": impression.impression_id, "run_id": impression.run_id, "product_id": product_id,
            "creative_id": chosen.creative_id, "source": chosen.source, "elements": list(chosen.elements),
            "image": chosen.image, "propensity": impression.propensity, "arms": len(arms),
            "policy": impression.policy, "context": None if context is None else json.dumps(context, sort_keys=True),
            "ts": impression.ts, "served_at": now, "click": 0, "clicked_at": None,
        }
        with self.engine.begin() as connection:
            connection.execute(sa.insert(served_table).values(**row))
            _add_counts(connection, product_id, impression.run_id, elements_key(chosen.elements), 1, 0)
        return impression

    def click(self, impression_id: str) -> Click:
        """Record a click on a served impression (of any run of this database; a repeated click changes
        nothing) and return it; ``NotFound`` for an impression the log does not have."""
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            changed = connection.execute(sa.update(served_table).where(
                served_table.c.impression_id == impression_id, served_table.c.click == 0,
            ).values(click=1, clicked_at=now)).rowcount
            row = connection.execute(sa.select(
                served_table.c.run_id, served_table.c.product_id, served_table.c.creative_id,
                served_table.c.clicked_at, served_table.c.elements,
            ).where(served_table.c.impression_id == impression_id)).first()
            if changed and row is not None:
                _add_counts(connection, row.product_id, row.run_id, elements_key(row.elements), 0, 1)
        if row is None:
            raise NotFound(f"no served impression {impression_id[:80]!r}: /v1/serve answers with the impression_id "
                           "to send back")
        clicked_at = row.clicked_at if row.clicked_at.tzinfo else row.clicked_at.replace(tzinfo=UTC)
        return Click(impression_id, row.run_id, row.product_id, row.creative_id, clicked_at)

    def _counts(self, product_id: str) -> dict[tuple[str, ...], tuple[int, int]]:
        """elements -> (impressions, clicks) served for ``product_id`` by this run, or with ``carry_over`` by
        every run of the database (``arm_counts``)."""
        return arm_counts(self.engine, product_id, None if self.policy.config.carry_over else self.run.run_id)


def arm_counts(engine: sa.Engine, product_id: str, run_id: str | None) -> dict[tuple[str, ...], tuple[int, int]]:
    """elements -> (impressions, clicks) served for ``product_id`` by the run ``run_id`` (None: by every run of
    the database), read from ``served_counts``: a few rows per arm, however long the log."""
    where = [counts_table.c.product_id == product_id]
    if run_id is not None:
        where.append(counts_table.c.run_id == run_id)
    query = sa.select(counts_table.c.elements, sa.func.sum(counts_table.c.impressions),
                      sa.func.sum(counts_table.c.clicks)).where(*where).group_by(counts_table.c.elements)
    with engine.connect() as connection:
        return {tuple(json.loads(key)): (int(n), int(c)) for key, n, c in connection.execute(query)}


def product_priors(market: Market, config: ServingPolicyConfig) -> dict[str, tuple[float, float]]:
    """Per product of the market's logs (``click_log``: impressions or creative_stats), the Beta prior of its
    arms centred on its logged CTR (``policy.product_prior``); empty for a market without logs."""
    try:
        log = click_log(market)
    except InputError:  # no logs: the config's prior
        return {}
    totals = log.groupby("product_id")[["clicks", "trials"]].sum()
    return {str(p): product_prior(int(c), int(n), config) for p, c, n in
            zip(totals.index, totals["clicks"], totals["trials"])}


def served_rows(engine: sa.Engine, run_id: str) -> pd.DataFrame:
    """Every impression the run ``run_id`` served in the database of ``engine``, oldest first
    (columns ``LOG_COLUMNS``; ``elements`` lists of ids, ``context`` JSON text or None); none, and nothing
    written, for a database that has never served."""
    if not sa.inspect(engine).has_table(served_table.name):
        return pd.DataFrame({name: pd.Series(dtype=object) for name in LOG_COLUMNS})
    columns = [served_table.c[name] for name in LOG_COLUMNS]
    query = sa.select(*columns).where(served_table.c.run_id == run_id).order_by(
        served_table.c.served_at, served_table.c.impression_id)
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(query)]
    frame = pd.DataFrame(rows, columns=list(LOG_COLUMNS))
    frame["elements"] = [[str(e) for e in elements] for elements in frame["elements"]]
    return frame
