"""Render settings as decisions: where each proposal's product photo sits, chosen best-of-N by the demand utility.

A proposal is a combination of elements *and* the settings it is drawn with. The renderer's continuous
settings are the product photo's scale and its position in the template's product box
(:class:`~adcraft.render.compositor.Placement`). For each proposal this stage renders N candidate placements
and keeps the one whose image has the highest demand utility (UA-InfoNCE's best-of-N, arXiv 2605.28733):

    h(v) = Σ_k (b1_k x_k(v) + b2_k x_k(v)²)

over the visual attributes ``x_k`` of the rendered image (``features.attributes``), fitted on the market's
own logged creatives, their images and clicks (``rewards.utility.fit_utility``, target the logit of each
creative's smoothed CTR, product one-hot controls, weighted by impressions).

Whether h is used at all is decided on the market's own logs, never on a simulator: h is fitted on the
earlier ``1 - holdout`` of the impressions by time and must predict the later ones better than each product's
own CTR alone, by the held-out log-likelihood per impression averaged over the held-out creatives, its gain's
lower one-sided bound (``z`` standard errors over creatives) above 0. Otherwise every proposal keeps the default
placement (as large as fits, centred: what the logged creatives showed) and the note says why. Where h is used it
is refitted on the whole log, and a candidate whose attributes leave the range the logged images spanned is not
considered (no extrapolation past the data); the default placement is always a candidate, so a tie keeps it.

What the logs cannot show: they never varied the placement of one creative, so the held-out check tests
whether h orders logged images, not that moving the photo moves clicks. The cross-fitted evidence grades a
proposal's elements only; the placement's effect is in no reported lift.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.market import Market
from adcraft.market.click_log import SplitConfig, time_split
from adcraft.render.compositor import Placement
from adcraft.rewards.utility import DemandUtilityModel, UtilityConfig, fit_utility, one_hot_controls

PRIOR_CLICKS = 2.0  # pseudo-clicks of the smoothed CTR, as ``rewards.utility.utility_table``


def _default_utility() -> UtilityConfig:
    return UtilityConfig(target="logit_ctr", controls="product", ridge=1.0)


@dataclass(frozen=True)
class PlacementSearchConfig:
    """Settings of the render-settings search (module docstring).

    - ``enabled``: run the search (off: every proposal is drawn with the default placement). Off by default: on
      the benchmark worlds it did not raise the share of the oracle lift (``docs/results.md``, "Render settings
      as decisions").
    - ``scales``, ``positions``: the candidate grid, every scale at every ``(x, y)`` position; the default
      placement (scale 1, centred) is always added.
    - ``holdout``: the latest share of the log by time that decides whether h is used.
    - ``z``: how many standard errors the held-out gain must clear (1.645: a one-sided 95% bound).
    - ``utility``: the regression of h (its target must be ``logit_ctr``).
    """

    enabled: bool = False
    scales: tuple[float, ...] = (0.7, 0.85, 1.0)
    positions: tuple[tuple[float, float], ...] = ((0.5, 0.5), (0.5, 1.0))
    holdout: float = 0.2
    z: float = 1.645
    utility: UtilityConfig = field(default_factory=_default_utility)

    def __post_init__(self) -> None:
        check_config(self)
        if self.utility.target != "logit_ctr":
            raise InputError("placement.utility.target must be logit_ctr (h is fitted on the logged clicks)")
        if not 0.05 <= self.holdout <= 0.5:
            raise InputError(f"placement.holdout must be in [0.05, 0.5], got {self.holdout}")
        if not (math.isfinite(self.z) and self.z >= 0):
            raise InputError(f"placement.z must be a finite number >= 0, got {self.z}")
        if not self.scales or not self.positions:
            raise InputError("placement.scales and placement.positions must not be empty")
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        object.__setattr__(self, "positions", tuple((float(x), float(y)) for x, y in self.positions))
        self.candidates()  # every candidate must be a valid placement

    def candidates(self) -> tuple[Placement, ...]:
        """The default placement first, then every (scale, position) of the grid not equal to it."""
        grid = [Placement(scale, x, y) for scale in self.scales for x, y in self.positions]
        return (Placement(), *[p for p in dict.fromkeys(grid) if not p.is_default])


@dataclass(frozen=True)
class HeldOutCheck:
    """Whether h predicts the later impressions: the gain in log-likelihood per held-out impression over each
    product's own CTR, averaged over the held-out creatives, its standard error, and the counts behind it."""

    gain: float
    standard_error: float
    impressions: int
    creatives: int

    def passes(self, z: float) -> bool:
        return self.impressions > 0 and self.gain - z * self.standard_error > 0

    def summary(self) -> str:
        """The check in words, as the run's note gives it."""
        return (f"held-out gain {self.gain:+.5f} nats per impression, standard error {self.standard_error:.5f}, "
                f"{self.impressions} later impressions of {self.creatives} creatives")


@dataclass(frozen=True)
class PlacementChoice:
    """The outcome of the search: each proposal row's placement, whether h was used, and why."""

    placements: tuple[Placement, ...]
    used: bool
    reason: str
    check: HeldOutCheck | None = None
    moved: int = 0
    searched: int = 0

    def note(self) -> str:
        if not self.used:
            return ("Render settings: every proposal keeps the default placement (photo as large as fits, "
                    f"centred): {self.reason}")
        return ("Render settings: the demand utility h(v) of the logged images predicted later clicks "
                f"({self.reason}); {self.moved} of the {self.searched} proposals not kept were drawn with another "
                "placement of the photo, the one whose image h scores highest. The logs never moved a photo, so this "
                "rests on h's reading of the logged images, and the cross-fitted lift grades the elements only: test "
                "a placement before relying on it.")


AttributeFunction = Callable[[object], dict[str, float]]


def creative_counts(log: pd.DataFrame) -> pd.DataFrame:
    """Per logged creative of a click log (``market.click_log``): its product, impressions and clicks."""
    return log.groupby("creative_id").agg(product_id=("product_id", "first"), impressions=("trials", "sum"),
                                          clicks=("clicks", "sum"))


def utility_rows(counts: pd.DataFrame, attributes: pd.DataFrame, rate: float) -> pd.DataFrame:
    """The table h is fitted on: per creative with an image, its attributes, the logit of its CTR smoothed toward
    ``rate`` with ``PRIOR_CLICKS`` pseudo-clicks, and its impressions."""
    rows = counts.join(attributes, how="inner")
    smoothed = (rows["clicks"] + PRIOR_CLICKS) / (rows["impressions"] + PRIOR_CLICKS / rate)
    return rows.assign(logit_ctr=np.log(smoothed / (1 - smoothed)))


def fit_h(rows: pd.DataFrame, config: UtilityConfig) -> DemandUtilityModel:
    """h fitted on ``utility_rows`` with the configured controls (``rewards.utility.fit_utility``)."""
    controls = None
    if config.controls == "product":
        controls = one_hot_controls([rows["product_id"].astype(str).tolist()])
    elif config.controls == "product+elements":
        raise InputError("placement.utility.controls product+elements is not supported: use product or none")
    return fit_utility(rows.reset_index(drop=True), "logit_ctr", config, weight_column="impressions",
                       controls=controls)


def held_out_check(log: pd.DataFrame, attributes: pd.DataFrame, config: PlacementSearchConfig) -> HeldOutCheck:
    """h fitted on the earlier part of the click ``log`` against each product's CTR alone on the later part.

    The parts are ``market.click_log.time_split``'s (the latest ``holdout`` of the impressions; by creative at
    random for logs without dates). A held-out row of creative c of product p is predicted ``q0 = r_p`` (p's
    smoothed CTR in the earlier part) or ``q1 = σ(logit r_p + h(v_c) − h̄_p)``, h̄_p the impression-weighted mean of
    h over p's earlier creatives. A creative's gain is ``clicks (log q1 − log q0) + non-clicks (log(1−q1) −
    log(1−q0))`` over its held-out impressions, per impression; the check's gain is the mean over the held-out
    creatives, each counted once however much traffic the logging policy gave it (the question is whether h orders
    creatives, and a logging policy gives most of its traffic to a few), with the standard error of that mean.
    Rows of products the earlier part did not show, or of creatives without an image, are left out.
    ``InputError`` when h cannot be fitted on the earlier part."""
    early, late = time_split(log, SplitConfig(valid_fraction=config.holdout))
    rate = float(early["clicks"].sum() / early["trials"].sum())
    if not 0 < rate < 1:
        raise InputError("the earlier part of the log has no clicks (or only clicks)")
    counts = creative_counts(early)
    rows = utility_rows(counts, attributes, rate)
    model = fit_h(rows, config.utility)
    h = pd.Series(model.predict(attributes[list(config.utility.attributes)].to_numpy(dtype=float)),
                  index=attributes.index)
    weights = rows["impressions"]
    h_rows = h.reindex(rows.index)
    h_bar = (h_rows * weights).groupby(rows["product_id"]).sum() / weights.groupby(rows["product_id"]).sum()
    product = counts.groupby("product_id")[["clicks", "impressions"]].sum()
    product_rate = (product["clicks"] + PRIOR_CLICKS) / (product["impressions"] + PRIOR_CLICKS / rate)
    late = late[late["creative_id"].isin(h.index) & late["product_id"].isin(h_bar.index)]
    if late.empty or late["trials"].sum() == 0:
        return HeldOutCheck(0.0, math.inf, 0, 0)
    q0 = product_rate.reindex(late["product_id"]).to_numpy()
    shift = h.reindex(late["creative_id"]).to_numpy() - h_bar.reindex(late["product_id"]).to_numpy()
    q1 = 1.0 / (1.0 + np.exp(-(np.log(q0 / (1 - q0)) + shift)))
    clicks, trials = late["clicks"].to_numpy(), late["trials"].to_numpy()
    gain = clicks * (np.log(q1) - np.log(q0)) + (trials - clicks) * (np.log1p(-q1) - np.log1p(-q0))
    creative = late["creative_id"].to_numpy()
    per_creative = (pd.Series(gain).groupby(creative).sum() / pd.Series(trials).groupby(creative).sum()).to_numpy()
    if per_creative.size < 2:
        return HeldOutCheck(0.0, math.inf, int(trials.sum()), int(per_creative.size))
    standard_error = float(per_creative.std(ddof=1) / math.sqrt(per_creative.size))
    return HeldOutCheck(float(per_creative.mean()), standard_error, int(trials.sum()), int(per_creative.size))


def logged_attributes(market: Market, log: pd.DataFrame, measure: AttributeFunction,
                      progress: bool = False) -> pd.DataFrame:
    """The visual attributes of every logged creative that has an image, one row per creative id."""
    from rich.progress import track

    if market.creatives is None or "image" not in market.creatives:
        return pd.DataFrame()
    shown = set(log["creative_id"])
    images = market.creatives.dropna(subset=["image"])
    images = images[images["creative_id"].isin(shown)]
    rows = {}
    for cid, path in track(list(zip(images["creative_id"], images["image"])), description="logged images' attributes",
                           disable=not progress, transient=True):
        rows[cid] = measure(market.open_image(path))
    return pd.DataFrame.from_dict(rows, orient="index")


def choose_placements(market: Market, log: pd.DataFrame, proposals: pd.DataFrame, render: Callable,
                      config: PlacementSearchConfig, measure: AttributeFunction | None = None,
                      progress: bool = False) -> PlacementChoice:
    """Each row of ``proposals`` (``product_id``, ``elements``, ``kept``) gets a placement (module docstring).

    ``render(product_id, elements, placement)`` draws a candidate (a ``RenderedCreative``; ``optimize`` draws
    candidates with the compositor, whichever backend draws the chosen one); ``measure`` gives an image's
    attributes (default ``features.attributes.compute_attributes``). Kept rows (what runs now) keep the default
    placement. Never raises for data that cannot support h: the choice says why it was not used."""
    from rich.progress import track

    from adcraft.features.attributes import compute_attributes

    default = tuple(Placement() for _ in range(len(proposals)))
    if not config.enabled:
        return PlacementChoice(default, False, "the search is off (placement.enabled).")
    measure = measure or compute_attributes
    attributes = logged_attributes(market, log, measure, progress)
    names = list(config.utility.attributes)
    if attributes.empty:
        return PlacementChoice(default, False, "the market has no images of its logged creatives to learn from.")
    try:
        check = held_out_check(log, attributes[names], config)
    except InputError as error:
        return PlacementChoice(default, False, f"h could not be fitted on the earlier logs ({error}).")
    summary = check.summary()
    if not check.passes(config.z):
        return PlacementChoice(default, False, f"h did not predict the later clicks better than each product's own "
                                               f"CTR ({summary}).", check)
    rate = float(log["clicks"].sum() / log["trials"].sum())
    try:
        model = fit_h(utility_rows(creative_counts(log), attributes[names], rate), config.utility)
    except InputError as error:
        return PlacementChoice(default, False, f"h could not be fitted on the whole log ({error}).", check)
    low, high = model.observed_min, model.observed_max
    candidates = config.candidates()
    kept = proposals["kept"].to_numpy(dtype=bool) if "kept" in proposals else np.zeros(len(proposals), bool)
    chosen: list[Placement] = []
    rows = list(zip(proposals["product_id"], proposals["elements"], kept))
    for pid, combo, is_kept in track(rows, description="render settings (best-of-N)", disable=not progress,
                                     transient=True):
        if is_kept:
            chosen.append(Placement())
            continue
        scored = []
        for placement in candidates:
            values = measure(render(pid, list(combo), placement).image)
            x = np.array([values[a] for a in names], dtype=float)
            inside = placement.is_default or bool(np.all((x >= low) & (x <= high)))
            if inside:
                scored.append((float(model.predict(x[None, :])[0]), placement))
        best = max(scored, key=lambda item: item[0])  # the default comes first: a tie keeps it
        chosen.append(best[1])
    moved = sum(not p.is_default for p in chosen)
    return PlacementChoice(tuple(chosen), True, summary, check, moved, int((~kept).sum()))


def placement_columns(placements: Sequence[Placement]) -> dict[str, list[float]]:
    """``PLACEMENT_COLUMNS`` of a creatives table for ``placements``, one value per row."""
    from adcraft.render.compositor import PLACEMENT_COLUMNS

    return {column: [p.as_columns()[column] for p in placements] for column in PLACEMENT_COLUMNS}
