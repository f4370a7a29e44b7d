"""What the review page shows of an optimize run: per product, the creative shown now beside the proposals.

``RunView.load`` reads the run's tables once (``creatives.parquet``, ``products.parquet``, the optional
``elements.parquet``, the reward model under ``models/reward``), the run's identifier and render settings
(``run.json``) and the market they came from. The credit of
each element that a proposal changes (the multi-instance model's Shapley attributions, ``MILModel.attributions``)
is computed when a product is first asked for and kept, so opening a run of many products costs no model calls.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from adcraft.configuration import from_mapping, to_mapping
from adcraft.errors import InputError
from adcraft.market import Market, load_market
from adcraft.market.outputs import read_products, read_proposals
from adcraft.pipeline.optimize import load_run_reward
from adcraft.pipeline.run_record import run_id_of
from adcraft.render.backend import RenderConfig
from adcraft.rewards.mil import MILModel


@dataclass(frozen=True)
class ElementChange:
    """One slot where a proposal differs from the current creative, and the element's credit (logit units)."""

    slot: str
    element_id: str
    content: str
    credit: float


@dataclass(frozen=True)
class LiftEstimate:
    """Off-policy estimate of the relative CTR lift of showing proposal #1, with its bootstrap interval."""

    lift: float
    low: float
    high: float
    impressions: int


@dataclass(frozen=True)
class CurrentCreative:
    """The creative a product shows now: its best logged one (``market.click_log.best_logged_creatives``)."""

    creative_id: str
    elements: tuple[str, ...]
    logged_ctr: float
    predicted_ctr: float


@dataclass(frozen=True)
class Proposal:
    """One proposed creative. ``creative_id`` is its image's file stem, the id of the image route.

    ``predicted_lift`` is ``predicted_ctr / current.predicted_ctr - 1`` (None without a current creative);
    ``estimated_lift`` is set on rank 1 only, when the run could estimate it.
    """

    product_id: str
    creative_id: str
    rank: int
    elements: tuple[str, ...]
    image: str
    predicted_ctr: float
    predicted_lift: float | None
    estimated_lift: LiftEstimate | None
    changes: tuple[ElementChange, ...]


@dataclass(frozen=True)
class ProductReview:
    """Everything the review page shows of one product."""

    product_id: str
    title: str
    category: str
    current: CurrentCreative | None
    proposals: tuple[Proposal, ...]


@dataclass(frozen=True)
class _ProposalRow:
    creative_id: str
    rank: int
    elements: tuple[str, ...]
    image: str
    predicted_ctr: float


class RunView:
    """Read-only view of one optimize run for review; build it with :meth:`load`."""

    def __init__(self, market: Market, model: MILModel, proposals: dict[str, tuple[_ProposalRow, ...]],
                 current: dict[str, CurrentCreative], lifts: dict[str, LiftEstimate], run_id: str,
                 render: dict[str, Any], run_dir: Path | None = None) -> None:
        self.run_dir = run_dir  # the run's folder (its images, run.json), when the view was read from one
        self.market = market
        self.run_id = run_id  # names the run in a decisions database that several runs share
        self.render = render  # the run's render settings (RenderConfig as a mapping), kept with each decision
        self.model = model
        self.product_ids: tuple[str, ...] = tuple(market.products["product_id"])
        self._titles = market.products.set_index("product_id")[["title", "category"]]
        self._proposals = proposals
        self._current = current
        self._lifts = lifts
        self._reviews: dict[str, ProductReview] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, run_dir: Path, market_dir: Path) -> RunView:
        """Read the run at ``run_dir`` (output of ``adcraft optimize``) and the market it was made from.

        Raises ``InputError`` when a file the view needs is missing or the run does not match the market.
        """
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise InputError(f"{run_dir}: no such run folder (the OUT of `adcraft optimize`)")
        market, model = load_run_reward(run_dir, load_market(market_dir))
        return cls.of_run(run_dir, market, model)

    @classmethod
    def of_run(cls, run_dir: Path, market: Market, model: MILModel) -> RunView:
        """The view of the run at ``run_dir`` over an already loaded ``market`` and reward ``model`` (both
        knowing the run's generated elements, as :func:`load_run_reward` returns them)."""
        run_dir = Path(run_dir)
        products = read_products(run_dir)
        frame = read_proposals(run_dir)
        unknown = sorted(set(frame["product_id"]) - set(market.products["product_id"]))
        if unknown:
            raise InputError(f"{run_dir}: proposals for products the market does not have "
                             f"({unknown[:5]}); pass the market the run was made from")
        return cls(market, model, _proposal_rows(frame), _current_creatives(products), _lift_estimates(products),
                   run_id_of(run_dir), to_mapping(recorded_render_config(run_dir)), run_dir)

    @property
    def slots(self) -> tuple[str, ...]:
        return self.market.config.slots

    def __len__(self) -> int:
        return len(self.product_ids)

    def review(self, product_id: str) -> ProductReview:
        """One product's review; raises ``InputError`` for a product the run's market does not have."""
        with self._lock:
            if product_id not in self._reviews:
                self._reviews[product_id] = self._build(product_id)
            return self._reviews[product_id]

    def page(self, offset: int, limit: int) -> list[ProductReview]:
        """Products ``offset .. offset + limit - 1`` in the market's order."""
        if offset < 0 or limit < 1:
            raise InputError(f"offset must be >= 0 and limit >= 1, got offset={offset}, limit={limit}")
        return [self.review(pid) for pid in self.product_ids[offset:offset + limit]]

    def current(self, product_id: str) -> CurrentCreative | None:
        """The creative ``product_id`` shows now (its best logged one), None when it has none."""
        return self._current.get(product_id)

    def proposal(self, product_id: str, creative_id: str) -> Proposal:
        """A proposal of ``product_id`` by its image id; ``InputError`` when the run has no such proposal."""
        for proposal in self.review(product_id).proposals:
            if proposal.creative_id == creative_id:
                return proposal
        raise InputError(f"product {product_id!r} has no proposed creative {creative_id!r} in this run")

    def element_content(self, element_id: str) -> str:
        """What an element shows (its text, value or image path), or its id when it has none."""
        try:
            return self.market.element_content(element_id)
        except (KeyError, InputError):
            return element_id

    def _build(self, product_id: str) -> ProductReview:
        if product_id not in self._titles.index:
            raise InputError(f"no product {product_id!r} in this run's market")
        current = self._current.get(product_id)
        proposals = []
        for row in self._proposals.get(product_id, ()):
            lift = None
            if current is not None and current.predicted_ctr > 0:
                lift = row.predicted_ctr / current.predicted_ctr - 1.0
            proposals.append(Proposal(
                product_id=product_id, creative_id=row.creative_id, rank=row.rank, elements=row.elements,
                image=row.image, predicted_ctr=row.predicted_ctr, predicted_lift=lift,
                estimated_lift=self._lifts.get(product_id) if row.rank == 1 else None,
                changes=self._changes(product_id, row.elements, current.elements if current else None),
            ))
        title = self._titles.loc[product_id]
        return ProductReview(product_id, str(title["title"]), str(title["category"]), current, tuple(proposals))

    def _changes(self, product_id: str, combo: tuple[str, ...], current: tuple[str, ...] | None
                 ) -> tuple[ElementChange, ...]:
        """The slots where ``combo`` differs from ``current`` (all, without one), largest credit first."""
        return tuple(ElementChange(self.slots[k], element, self.element_content(element), credit)
                     for k, element, credit in self.model.changed_credit(product_id, list(combo), current))


def recorded_render_config(run_dir: Path) -> RenderConfig:
    """The render settings a run recorded (``run.json``'s ``config.render``), the defaults for a run that
    recorded none; ``InputError`` naming the file for settings that are not a ``RenderConfig``."""
    path = Path(run_dir) / "run.json"
    try:
        settings = json.loads(path.read_text(encoding="utf-8")).get("config", {}).get("render")
    except (OSError, ValueError, AttributeError):
        return RenderConfig()
    return from_mapping(RenderConfig, settings, where=f"{path}: config.render") if settings else RenderConfig()


def _proposal_rows(frame: pd.DataFrame) -> dict[str, tuple[_ProposalRow, ...]]:
    missing = [name for name in ("image", "predicted_ctr") if name not in frame.columns]
    if missing:
        raise InputError(f"creatives.parquet: missing column(s) {', '.join(missing)}")
    rows: dict[str, list[_ProposalRow]] = {}
    for pid, rank, elements, image, ctr in zip(frame["product_id"], frame["rank"], frame["elements"],
                                              frame["image"], frame["predicted_ctr"]):
        rows.setdefault(str(pid), []).append(
            _ProposalRow(Path(str(image)).stem, int(rank), tuple(str(e) for e in elements), str(image), float(ctr)))
    return {pid: tuple(sorted(found, key=lambda row: row.rank)) for pid, found in rows.items()}


def _current_creatives(products: pd.DataFrame) -> dict[str, CurrentCreative]:
    out = {}
    for row in products.itertuples(index=False):
        if isinstance(row.current_creative_id, str):
            out[str(row.product_id)] = CurrentCreative(
                row.current_creative_id, tuple(str(e) for e in row.current_elements),
                float(row.current_logged_ctr), float(row.current_predicted_ctr))
    return out


def _lift_estimates(products: pd.DataFrame) -> dict[str, LiftEstimate]:
    out = {}
    for row in products.itertuples(index=False):
        if math.isfinite(row.estimated_lift):
            out[str(row.product_id)] = LiftEstimate(float(row.estimated_lift), float(row.lift_low),
                                                    float(row.lift_high), int(row.lift_impressions))
    return out
