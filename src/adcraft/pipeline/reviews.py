"""What reviewers decided on earlier runs, read back so that the next run learns from it.

The review page (``adcraft serve``) stores each decision with the product, the creative's elements, the run
and the time. ``optimize --decisions`` reads such a database (any SQLAlchemy URL, or an SQLite file path)
in two ways:

- ``read_rejections``: per product, the combinations whose latest decision is a rejection; they are never
  proposed again. A combination approved after it was rejected (or in a later run) is not excluded.
- ``approvals``: per product, the combinations whose latest decision is an approval; they join the product's
  candidates in the proposal search (``ComboGenerator.propose(include=...)``) when the market still allows
  them, and are ranked like every other candidate. A creative served after approval then has logs that the
  next run's evidence can read, when the run proposes it again.
- ``fit_reviewer_preference``: a learned reviewer, ``P(approve | product, elements)``, an L2 logistic
  regression on the elements (one weight per element, shared across products) with a product intercept for
  products with enough decisions (the additive logistic model of ``rewards.additive``, fitted on decisions
  instead of clicks), on every decision of the database, the latest per (run, product, combination). In the
  proposal search the reward of a combination becomes

      R'(p, c) = R(p, c) * P(approve | p, c) ** strength              (``ReviewerConfig.strength``)

  so with strength 1 a proposal is ranked by the reward it brings when a reviewer may reject it (a rejected
  proposal is never shown), and combinations with the elements reviewers keep rejecting fall down the
  ranking, also for products and combinations no reviewer has seen. A combination reviewers approved last
  (``approvals``) has P(approve) = 1: its decision is known, not predicted. The predicted CTR of a proposal
  stays the judge's. An approved and a rejected combination of the same product form a preference pair; the run's
  notes say how many decisions and pairs the preference was fitted on.

- ``background_pairs``: where an approved and a rejected creative of the same product differ in their
  background, the approved background's prompt over the rejected one's. With the background step on
  (``backgrounds.enabled``), these pairs join every DPO/PCPO round of the prompt model that writes new
  backgrounds (``generate.preference``), beside the pairs its judge ranks.

- ``preference_pairs``: every approved-over-rejected pair of the same product. With the background step on,
  they join the training pairs of the pairwise reward model (CAIG, ``rewards.pairwise.reviewed_pairs``) that
  judges new backgrounds, beside the pairs of logged creatives' CTRs, in its pair term only (they have no
  CTR). The default run of ``optimize`` trains no pairwise model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlalchemy as sa

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.market import Market
from adcraft.rewards.additive import AdditiveJudge

if TYPE_CHECKING:
    from adcraft.generate.preference import ReviewedPrompt

DECISIONS_TABLE = "review_decisions"  # the table the review page writes (serve.decisions) and this module reads
OTHER_PRODUCTS = ""  # the shared intercept of products with too few decisions for their own
MIN_APPROVAL = 1e-6  # floor of P(approve) in the steered reward, so that rewards never tie at 0


@dataclass(frozen=True)
class ReviewerConfig:
    """How reviewers' earlier decisions (``optimize --decisions``) steer the proposals (module docstring).

    strength: the exponent s of ``R * P(approve) ** s`` in the proposal search, in [0, 20]; 0 leaves the
        learned preference out (rejected combinations are still never proposed again).
    l2: L2 strength of the logistic regression of the decisions on the elements and product intercepts (> 0).
    min_decisions: fewer decisions than this (or decisions all of one kind) fit no preference.
    product_intercept_decisions: a product with at least this many decisions gets its own intercept; the
        others share one.
    """

    strength: float = 1.0
    l2: float = 1.0
    min_decisions: int = 10
    product_intercept_decisions: int = 10

    def __post_init__(self) -> None:
        check_config(self)
        if not 0.0 <= self.strength <= 20.0:
            raise InputError(f"reviewers.strength must lie in [0, 20], got {self.strength}")
        if not (math.isfinite(self.l2) and self.l2 > 0):
            raise InputError(f"reviewers.l2 must be a positive number, got {self.l2}")
        for name in ("min_decisions", "product_intercept_decisions"):
            if not 1 <= getattr(self, name) <= 1_000_000_000:
                raise InputError(f"reviewers.{name} must lie in [1, 1000000000], got {getattr(self, name)}")


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an SQLite database file at ``path``."""
    return f"sqlite:///{Path(path).resolve()}"


def database_url(location: str, option: str = "--decisions") -> str:
    """``location`` as a SQLAlchemy URL: a URL as given, an existing file path as an SQLite URL; ``InputError``
    naming ``option`` for a path that is not a file."""
    if "://" in location:
        return location
    if not Path(location).is_file():
        raise InputError(f"{option} {location}: no such database file (give the path of the SQLite file or a "
                         "SQLAlchemy URL)")
    return sqlite_url(Path(location))


def read_decisions(location: str) -> pd.DataFrame:
    """Every stored decision, one row each: ``product_id``, ``elements`` (a tuple in slot order), ``decision``,
    ``run_id`` (None when unknown) and ``order`` (sorts the decisions of a creative by time). ``InputError``
    when the database cannot be opened or holds no decisions table."""
    url = database_url(location)
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise InputError(f"--decisions: cannot open {location!r}: {exc}") from None
    try:
        with engine.connect() as connection:
            table = sa.Table(DECISIONS_TABLE, sa.MetaData(), autoload_with=connection)
            needed = {"product_id", "elements", "decision", "decided_at"}
            missing = needed - set(table.c.keys())
            if missing:
                raise InputError(f"--decisions {location}: the decisions table lacks {sorted(missing)}")
            optional = [table.c[name] if name in table.c else sa.null() for name in ("id", "run_id")]
            rows = connection.execute(sa.select(table.c.product_id, table.c.elements, table.c.decision,
                                                table.c.decided_at, *optional)).all()
    except sa.exc.NoSuchTableError:
        raise InputError(f"--decisions {location}: no decisions table (is it the review page's database?)") from None
    except sa.exc.SQLAlchemyError as exc:
        raise InputError(f"--decisions {location}: cannot read the decisions ({type(exc).__name__})") from None
    finally:
        engine.dispose()
    return pd.DataFrame({
        "product_id": pd.Series([str(r[0]) for r in rows], dtype=object),
        "elements": pd.Series([tuple(str(e) for e in (r[1] or [])) for r in rows], dtype=object),
        "decision": pd.Series([str(r[2]) for r in rows], dtype=object),
        "run_id": pd.Series([r[5] for r in rows], dtype=object),
        "order": pd.Series([(str(r[3]), r[4] or 0) for r in rows], dtype=object),
    })


def latest_decisions(decisions: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The latest decision per ``keys`` (columns of ``read_decisions``), decisions without elements left out."""
    found = decisions[[len(e) > 0 for e in decisions["elements"]]]
    if found.empty:
        return found.reset_index(drop=True)
    ordered = found.iloc[sorted(range(len(found)), key=lambda i: found["order"].iloc[i])]
    key_frame = ordered[list(keys)].astype(str)
    return ordered[~key_frame.duplicated(keep="last")].reset_index(drop=True)


def read_rejections(location: str) -> dict[str, set[tuple[str, ...]]]:
    """Per product, the element combinations reviewers rejected last (module docstring). ``InputError`` when
    the database cannot be opened or holds no decisions table."""
    return rejections(read_decisions(location))


def rejections(decisions: pd.DataFrame) -> dict[str, set[tuple[str, ...]]]:
    """Per product, the combinations whose latest decision (in any run) is a rejection, of
    ``read_decisions``'s rows."""
    latest = latest_decisions(decisions, ["product_id", "elements"])
    out: dict[str, set[tuple[str, ...]]] = {}
    for product, combo, decision in zip(latest["product_id"], latest["elements"], latest["decision"]):
        if decision == "reject":
            out.setdefault(product, set()).add(combo)
    return out


def approvals(decisions: pd.DataFrame) -> dict[str, set[tuple[str, ...]]]:
    """Per product, the combinations whose latest decision (in any run) is an approval, of ``read_decisions``'s
    rows; a combination rejected after it was approved is not among them."""
    latest = latest_decisions(decisions, ["product_id", "elements"])
    out: dict[str, set[tuple[str, ...]]] = {}
    for product, combo, decision in zip(latest["product_id"], latest["elements"], latest["decision"]):
        if decision == "approve":
            out.setdefault(product, set()).add(combo)
    return out


def preference_pairs(decisions: pd.DataFrame) -> pd.DataFrame:
    """Approved-over-rejected pairs: per product, every approved combination with every rejected one
    (``approved``, ``rejected``), from decisions as ``latest_decisions`` leaves them."""
    rows = []
    for product, group in decisions.groupby("product_id", sort=True):
        approved = sorted(set(group.loc[group["decision"] == "approve", "elements"]))
        rejected = sorted(set(group.loc[group["decision"] == "reject", "elements"]))
        rows += [(product, a, r) for a in approved for r in rejected if a != r]
    return pd.DataFrame(rows, columns=["product_id", "approved", "rejected"])


def background_pairs(decisions: pd.DataFrame, market: Market) -> list[ReviewedPrompt]:
    """Reviewers' background prompt pairs (module docstring): for every approved-over-rejected pair of
    ``preference_pairs`` whose backgrounds differ and are both background elements of ``market`` with a
    prompt, the approved background's prompt over the rejected one's, each (product, prompts) once, sorted."""
    from adcraft.generate.preference import ReviewedPrompt  # torch: only when a run learns from reviews
    from adcraft.generate.prompt import BACKGROUND_SLOT

    if BACKGROUND_SLOT not in market.config.slots:
        return []
    slot = market.config.slots.index(BACKGROUND_SLOT)
    elements = market.elements[market.elements["slot"] == BACKGROUND_SLOT]
    prompts = {str(e): v for e, v in zip(elements["element_id"], elements["value"])
               if isinstance(v, str) and v.strip()}
    found: set[tuple[str, str, str]] = set()
    for product, approved, rejected in preference_pairs(latest_decisions(decisions, ["product_id", "elements"])) \
            .itertuples(index=False):
        if len(approved) <= slot or len(rejected) <= slot:
            continue
        good, bad = prompts.get(approved[slot]), prompts.get(rejected[slot])
        if good is not None and bad is not None and approved[slot] != rejected[slot]:
            found.add((str(product), good, bad))
    return [ReviewedPrompt(*row) for row in sorted(found)]


@dataclass(frozen=True, eq=False)
class ReviewerPreference:
    """A learned reviewer: ``P(approve | product, elements)`` (module docstring), fitted on ``decisions``
    decisions that form ``pairs`` approved-over-rejected pairs. ``own_intercept``: the products with their
    own intercept (the others share ``OTHER_PRODUCTS``'s)."""

    model: AdditiveJudge
    own_intercept: frozenset[str]
    decisions: int
    approved: int
    pairs: int
    strength: float

    def approval(self, product_ids: Sequence[str], combos: Sequence[Sequence[str]]) -> np.ndarray:
        """P(approve) of each (product, combination)."""
        keys = [p if p in self.own_intercept else OTHER_PRODUCTS for p in map(str, product_ids)]
        return self.model.predict(keys, [list(c) for c in combos])

    def steer(self, reward, approved: Mapping[str, set[tuple[str, ...]]] | None = None):
        """``reward`` (a judge's ``(product_ids, combos[, contexts])`` -> CTRs) times ``P(approve) ** strength``,
        with P(approve) = 1 for the combinations reviewers approved last (``approved``, per product, as
        ``approvals`` gives them): their decision is known."""
        known = approved or {}

        def steered(product_ids, combos, contexts=None) -> np.ndarray:
            values = reward(product_ids, combos) if contexts is None else reward(product_ids, combos,
                                                                                  contexts=contexts)
            approval = np.maximum(self.approval(product_ids, combos), MIN_APPROVAL)
            if known:  # the proposal search calls this on every candidate: no per-row check without approvals
                decided = [tuple(c) in known.get(str(p), ()) for p, c in zip(product_ids, combos)]
                approval = np.where(decided, 1.0, approval)
            return np.asarray(values, dtype=np.float64) * approval ** self.strength

        return steered

    def note(self) -> str:
        """The run's note on what the preference was fitted on."""
        return (f"Review decisions: a learned reviewer preference (P(approve | elements), L2 logistic regression) "
                f"was fitted on {self.decisions} decisions ({self.approved} approved) forming {self.pairs} "
                f"approved-over-rejected pairs; the proposal search ranks by predicted CTR x P(approve)^"
                f"{self.strength:g}.")


def fit_reviewer_preference(decisions: pd.DataFrame, config: ReviewerConfig) -> ReviewerPreference | str:
    """The learned reviewer on ``read_decisions``'s rows (the latest per run, product and combination), or
    the reason there is none (too few decisions, all of one kind, or ``strength`` 0)."""
    latest = latest_decisions(decisions, ["run_id", "product_id", "elements"])
    latest = latest[latest["decision"].isin(["approve", "reject"])]
    approved = int((latest["decision"] == "approve").sum())
    if config.strength == 0:
        return "reviewers.strength is 0"
    if len(latest) < config.min_decisions:
        return f"{len(latest)} decisions, fewer than reviewers.min_decisions = {config.min_decisions}"
    if approved in (0, len(latest)):
        return f"all {len(latest)} decisions are {'approvals' if approved else 'rejections'}"
    counts = latest["product_id"].value_counts()
    own = frozenset(str(p) for p, n in counts.items() if n >= config.product_intercept_decisions)
    rows = pd.DataFrame({
        "product_id": [p if p in own else OTHER_PRODUCTS for p in latest["product_id"]],
        "elements": [list(e) for e in latest["elements"]],
        "clicks": (latest["decision"] == "approve").astype(float).to_numpy(),
        "trials": np.ones(len(latest)),
    })
    model = AdditiveJudge.fit(rows, config.l2)
    pairs = len(preference_pairs(latest_decisions(decisions, ["product_id", "elements"])))
    return ReviewerPreference(model, own, len(latest), approved, pairs, config.strength)
