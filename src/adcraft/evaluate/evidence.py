"""Offline evidence for a proposal set that never grades a proposal with the judge that chose it.

A reward model that picks each product's best combination and then values its own picks by DR
reports its own opinion: almost no logged impression showed a new combination, so DR collapses to
the model's prediction, and the model's largest predictions are the ones most likely too large
(the optimiser's curse; Smith & Winkler, "The optimizer's curse", Management Science 2006). This
module separates choosing from grading, measures the judge's error where the truth is known, and
states the result as a conservative lift with a launch plan.

**Cross-fitting (2 folds, by creative).** Each product's logged creatives are dealt at random into
two folds (every impression of a creative in the creative's fold; ``creative_folds``). By creative,
not by time: a fold must hold creatives the other fold's judge has never seen, or the backtest below
would grade the judge on combinations it was trained on, and a time split keeps the same creatives
on both sides. Judge A is fitted on fold A's logs only, judge B on fold B's. Judge A chooses a
proposal set, which is valued by DR on fold B's impressions with judge B as the model (and vice
versa), so the chooser never saw the grading data and the grader never saw the chooser's. Within
fold k a logged propensity becomes ``p_i / s_pk`` (``s_pk``: the share of product p's impressions
that fell in fold k): the logging policy's probability of the creative given that it picked one of
fold k's. The final proposals come from the judge fitted on all logs, whose value is estimated by the
two cross-fitted proposal sets': conservative, since a judge fitted on half the logs chooses no better
than one fitted on all of them. Cost: two extra fits of the judge on half the logs each and two
proposal searches (``Evidence.seconds`` records the time).

**Backtest.** Each fold's creatives are predicted by the judge fitted on the other fold: per creative,
the impression-weighted prediction ``q_c`` beside the observed CTR ``o_c`` on ``n_c`` impressions
(``backtest``). It gives the judge's calibration on creatives it never saw: the impression-weighted
least-squares line ``o = alpha + beta q`` (``calibration_line``; a slope below 1 shrinks the judge's high
predictions, where its picks lie, toward the mean), the line's relative error ``e`` on the creatives that
share the proposals' elements (``proposal_likeness``: an error the proposals share, such as a judge that
overrates one element, shows there), and the spread ``tau`` of the per-creative ratio ``o_c / f_c`` to the
line with the binomial noise of ``o_c`` taken out.

**Interval.** With per-impression terms ``a_i = w_i r_i``, ``b_i = q_target_i - w_i q_logged_i`` and
``c_i = 1 - w_i``, doubly robust estimation with the recalibrated model ``alpha + beta q`` is
``V = mean(a) + M``, ``M = alpha mean(c) + beta mean(b)``: the part the logs support (``a``) plus the part
that rests on the model (``M``), which is then corrected by the error near the proposals,
``V = mean(a) + M (1 + e)``. The lift is ``V / mean(r) - 1``; its ``level`` interval takes the quantiles of

    L_b = max(mean(a*) + M*_b (1 + e*_b) g_b, 0) / mean(r*) - 1,    g_b = exp(s z_b - s^2 / 2),
    s^2 = log(1 + tau^2 / P),

where ``*`` marks impressions resampled with replacement, ``M*_b`` uses the line ``(alpha*_b, beta*_b)``
and ``e*_b`` is the error near the proposals, both refitted on backtest creatives resampled with
replacement (the uncertainty of the judge's calibration, an error all proposals share), ``g_b`` a
log-normal factor of mean 1 and variance ``tau^2 / P`` (``error_factors``; ``z_b`` a standard normal
draw), and ``P`` Kish's effective number of products in the model part
(``_independent_products``: the rest of the judge's error on one creative is independent of its error
on another product's, so it averages out over P products). A product's own interval has ``P = 1``: one
creative's error in full. ``keep_current`` marks the products whose lower bound is not above 0.

The lower end is conservative twice over: judges fitted on half the logs choose worse and know fewer
elements than the final judge. No bound uses the final judge's opinion of its own picks: that figure is
biased upwards by the optimiser's curse, and is never evidence.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.evaluate.abtest import required_impressions
from adcraft.evaluate.ope import estimate_with_draws
from adcraft.evaluate.proposal_value import ProposalPolicy, logged_impressions, policy_arrays
from adcraft.market import Market
from adcraft.market.click_log import click_log

FOLDS = 2
SCHEME = "2-fold cross-fitting by creative"
BOOTSTRAP_BLOCK = 4_000_000  # resampled row indices held at once (bounds memory whatever the log's size)
SAMPLE_SIZE_REFERENCE = ("two-proportion z-test without continuity correction: Fleiss, Levin & Paik, "
                         "Statistical Methods for Rates and Proportions, 3rd ed., 2003, section 4.2")


class Judge(Protocol):
    """A reward model: the predicted CTR of each (product, combination[, context]) row."""

    def predict(self, product_ids: Sequence[str], combos: Sequence[Sequence[str]],
                contexts: Sequence[str] | None = None) -> np.ndarray: ...


FitJudge = Callable[[Market], Judge]
"""Fits a judge on a market (the cross-fitting calls it on each fold's part of the logs)."""

ChooseWith = Callable[[Judge], pd.DataFrame]
"""The proposals (``product_id``, ``rank``, ``elements``) a judge chooses."""

@dataclass(frozen=True)
class EvidenceConfig:
    """Settings of the cross-fitted evidence (module docstring) and of the launch plan."""

    enabled: bool = True  # off: the run reports only the single-judge off-policy estimate
    level: float = 0.9  # coverage of the lift intervals
    n_bootstrap: int = 500
    seed: int = 0  # folds, resamples and model-error draws
    alpha: float = 0.05  # launch plan: two-sided significance level of the confirming A/B test
    power: float = 0.8  # launch plan: probability of confirming the conservative lift

    def __post_init__(self) -> None:
        check_config(self)
        for name in ("level", "alpha", "power"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise InputError(f"evidence.{name} must lie strictly between 0 and 1, got {value}")


@dataclass(frozen=True)
class LiftInterval:
    """Relative lift of the proposals over the logging policy's CTR (0.12 = +12%) with its interval."""

    estimate: float
    low: float
    high: float
    level: float


@dataclass(frozen=True)
class Backtest:
    """The judges on the logged creatives they were not fitted on (module docstring).

    ``points`` has one row per creative: ``creative_id``, ``predicted``, ``observed``, ``impressions`` and
    ``likeness`` (``proposal_likeness``: how much the creative resembles the proposals).
    ``mean_abs_relative_error`` is ``sum n |q - o| / sum n o``; ``calibration_intercept`` and
    ``calibration_slope`` the impression-weighted least-squares line ``o = alpha + beta q`` (slope 1 and
    intercept 0: calibrated; slope below 1: the judge's high predictions are too high, its low ones too low).
    """

    points: pd.DataFrame
    mean_abs_relative_error: float
    calibration_slope: float
    calibration_intercept: float
    ratio: float  # clicks observed per click predicted
    ratio_spread: float  # tau: relative spread of o_c around the line beyond binomial noise
    local_error: float  # the line's relative error on creatives like the proposals (likeness-weighted)

    def to_json(self) -> dict:
        return {
            "creatives": len(self.points),
            "impressions": int(self.points["impressions"].sum()),
            "mean_abs_relative_error": self.mean_abs_relative_error,
            "calibration_slope": self.calibration_slope,
            "calibration_intercept": self.calibration_intercept,
            "observed_per_predicted": self.ratio,
            "ratio_spread": self.ratio_spread,
            "error_near_proposals": self.local_error,
        }


@dataclass(frozen=True)
class Interval:
    """A value with its interval (the level of the record that holds it)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class SupportedPart:
    """The final proposals' support in the logs (``supported_part``): the products whose proposal was logged,
    valued on their impressions by IPS, SNIPS and DR (None without such products), beside the products that
    rest on a judge alone (``extrapolated_*``, their direct-method CTR ``extrapolated_dm``)."""

    products: int
    impression_share: float
    matched_impressions: int
    level: float
    ips: Interval | None
    snips: Interval | None
    dr: Interval | None
    ess: float  # Kish's effective sample size of the importance weights on the supported impressions
    logging_ctr: float  # on the supported impressions
    extrapolated_products: int
    extrapolated_impression_share: float
    extrapolated_dm: float
    extrapolated_logging_ctr: float


@dataclass(frozen=True)
class LaunchPlan:
    """Impressions per arm of an A/B test that confirms the conservative lift (``required_impressions``)."""

    target_lift: float  # the lift the test is sized to detect: the lower bound when positive
    control_ctr: float
    treatment_ctr: float
    impressions_per_arm: int | None  # None: no positive lift to confirm
    control_share: float  # traffic split: equal arms need the fewest impressions in all
    days: float | None  # at the logs' traffic (impressions per day), both arms together
    alpha: float
    power: float
    reference: str = SAMPLE_SIZE_REFERENCE

    @property
    def summary(self) -> str:
        if self.impressions_per_arm is None:
            return "no positive lift to confirm: keep the current creatives or test for harm only"
        days = f", about {self.days:.1f} days at the logged traffic" if self.days is not None else ""
        return (f"{self.impressions_per_arm:,} impressions per arm ({self.control_share:.0%} of traffic to what runs "
                f"now){days} to confirm a lift of {self.target_lift:+.1%} at alpha {self.alpha:g}, power "
                f"{self.power:g}")


@dataclass(frozen=True)
class Evidence:
    """The cross-fitted lift of a proposal set, its backtest, its support in the logs and a launch plan.

    ``products`` has one row per proposed product: ``product_id``, ``impressions``, ``lift``, ``lift_low``,
    ``lift_high``, ``keep_current`` (True where the lower bound is <= 0 or unknown: do no harm).
    ``supported``: the final proposals' support in the logs (``supported_part``).
    """

    lift: LiftInterval  # of the proposal set after do-no-harm (kept products: what runs now, no lift)
    proposals_lift: LiftInterval  # of every product's rank-1 proposal, before do-no-harm
    uncalibrated_lift: float  # the cross-fitted DR lift before the backtest's calibration
    logging_ctr: float
    proposals_ctr: float
    backtest: Backtest
    supported: SupportedPart
    launch_plan: LaunchPlan
    products: pd.DataFrame
    seconds: float

    def to_json(self) -> dict:
        plan = dataclasses.asdict(self.launch_plan)
        return {
            "possible": True,
            "lift": dataclasses.asdict(self.lift),
            "proposals_lift": dataclasses.asdict(self.proposals_lift),
            "scheme": {
                "name": SCHEME,
                "folds": FOLDS,
                "chooser": "the judge fitted on the other fold",
                "grader": "doubly robust on the fold's impressions with the judge fitted on that fold",
                "conservative": "the final proposals come from the judge fitted on all logs; their value is "
                                "estimated by the proposals of judges fitted on half of them",
                "uncalibrated_lift": self.uncalibrated_lift,
                "proposals_ctr": self.proposals_ctr,
                "logging_ctr": self.logging_ctr,
                "seconds": round(self.seconds, 2),
            },
            "backtest": self.backtest.to_json(),
            "supported": dataclasses.asdict(self.supported),
            "launch_plan": {**plan, "summary": self.launch_plan.summary},
            "products_to_keep": int(self.products["keep_current"].sum()),
        }


def creative_folds(creatives: pd.DataFrame, seed: int = 0) -> dict[str, int]:
    """Each creative's fold: per product its creatives are shuffled and dealt to the folds in turn, from a
    random fold, so every product with two or more creatives has logs on both sides."""
    rng = np.random.default_rng(seed)
    out = {}
    for _, group in creatives.sort_values("creative_id").groupby("product_id", sort=True):
        ids = group["creative_id"].to_numpy()[rng.permutation(len(group))]
        start = int(rng.integers(FOLDS))
        out.update({str(c): (start + k) % FOLDS for k, c in enumerate(ids)})
    return out


def fold_market(market: Market, creative_ids: set[str]) -> Market:
    """``market`` with only the logs (creatives, impressions, creative_stats) of ``creative_ids``."""
    def only(table: pd.DataFrame | None) -> pd.DataFrame | None:
        if table is None:
            return None
        return table[table["creative_id"].isin(creative_ids)].reset_index(drop=True)

    return dataclasses.replace(market, creatives=only(market.creatives), impressions=only(market.impressions),
                               creative_stats=only(market.creative_stats))


def proposal_evidence(market: Market, proposals: pd.DataFrame, fit: FitJudge, choose: ChooseWith,
                      config: EvidenceConfig | None = None, policy: ProposalPolicy | None = None,
                      do_no_harm: bool = False) -> Evidence:
    """The cross-fitted evidence for ``proposals`` (the final set, chosen by a judge fitted on all logs).

    ``fit`` fits a judge on a market, ``choose`` returns the proposals a judge picks (as the final set was
    picked). With ``do_no_harm``, ``lift`` is the lift after do-no-harm: the products marked ``keep_current``
    launch nothing and keep what runs now (their logging policy), so their impressions enter the value as logged
    (``a = r``, ``b = c = 0``: no change, no lift, no model), while the other products are valued as their
    proposals; without it, ``lift`` equals ``proposals_lift``. So that choosing which products launch does not
    bias the lift of the set (the products whose estimate came out high would be the ones launched), the
    impressions are dealt at random into two halves: the per-product lifts and ``keep_current`` come from one
    half, ``lift`` from the other (``bench/evidence.py`` measures the coverage). Raises :class:`InputError` when
    the logs cannot support it: no propensities, or a fold whose logs a judge cannot be fitted on.
    """
    config = config or EvidenceConfig()
    policy = policy or ProposalPolicy()
    started = time.perf_counter()
    logged_impressions(market)  # refuses logs without propensities before any fit
    folds = creative_folds(market.creatives, config.seed)
    members = [{c for c, k in folds.items() if k == fold} for fold in range(FOLDS)]
    judges = []
    for fold in range(FOLDS):
        try:
            judges.append(fit(fold_market(market, members[fold])))
        except InputError as exc:
            raise InputError(f"cross-fitting needs a judge fitted on each half of the logs (split by creative), "
                             f"and half {fold + 1} cannot be fitted on: {exc}") from exc
    chosen = [choose(judge) for judge in judges]
    rows = pd.concat([_fold_rows(market, members[fold], chosen[1 - fold], judges[fold], policy)
                      for fold in range(FOLDS)], ignore_index=True)
    backtest = _backtest(market, folds, judges, proposals)
    rng = np.random.default_rng(config.seed)
    line = (backtest.calibration_intercept, backtest.calibration_slope, backtest.local_error)
    lines = _calibration_draws(backtest, config.n_bootstrap, rng)
    z = rng.standard_normal(config.n_bootstrap)
    spread = backtest.ratio_spread**2

    def set_lift(part: pd.DataFrame) -> tuple[LiftInterval, float]:
        """The set's lift on ``part`` of the rows, and its uncalibrated estimate."""
        estimate, low, high, uncalibrated = _lift_interval(
            part, line, lines, error_factors(z, spread / _independent_products(part)), config.level, rng)
        return LiftInterval(estimate, low, high, config.level), uncalibrated

    proposals_lift, uncalibrated = set_lift(rows)
    logging_ctr = float(rows["click"].mean())
    deciding = np.ones(len(rows), dtype=bool)  # the rows the per-product lifts and keep marks come from
    if do_no_harm:
        deciding = np.random.default_rng([config.seed, 1]).random(len(rows)) < 0.5
    products = _product_lifts(rows[deciding], proposals, line, lines, error_factors(z, spread), config.level, rng)
    lift = proposals_lift
    if do_no_harm:  # decided on one half of the impressions, graded on the other: kept products at no change
        graded = rows[~deciding]
        kept = graded["product_id"].isin(set(products.loc[products["keep_current"], "product_id"])).to_numpy()
        lift, uncalibrated = set_lift(graded.assign(a=np.where(kept, graded["click"], graded["a"]),
                                                    b=np.where(kept, 0.0, graded["b"]),
                                                    c=np.where(kept, 0.0, graded["c"])))
    supported = supported_part(market, proposals, judges, folds, policy, config)
    plan = launch_plan(logging_ctr, lift, market, config)
    return Evidence(lift, proposals_lift, uncalibrated, logging_ctr, logging_ctr * (1.0 + lift.estimate), backtest,
                    supported, plan, products, time.perf_counter() - started)


def _fold_rows(market: Market, creatives: set[str], proposals: pd.DataFrame, grader: Judge,
               policy: ProposalPolicy) -> pd.DataFrame:
    """Per impression of the fold: the DR parts ``a = w r`` and ``b = q_target - w q_logged`` of ``proposals``
    graded by ``grader``, with the propensity made conditional on the fold (module docstring)."""
    part = fold_market(market, creatives)
    arrays = policy_arrays(part, proposals, "dr", policy, grader.predict)
    log = arrays.log
    everything = market.creatives.set_index("creative_id")["product_id"].reindex(
        market.impressions["creative_id"]).value_counts()
    share = log.groupby("product_id")["product_id"].transform("size") / everything.reindex(log["product_id"]).to_numpy()
    propensity = np.minimum(log["propensity"].to_numpy() / share.to_numpy(), 1.0)
    weight = arrays.target_probabilities / propensity
    clicks = log["click"].to_numpy(dtype=float)
    return pd.DataFrame({
        "product_id": log["product_id"].to_numpy(),
        "click": clicks,
        "a": weight * clicks,
        "b": arrays.q_target - weight * arrays.q_logged,
        "c": 1.0 - weight,
    })


def _backtest(market: Market, folds: dict[str, int], judges: Sequence[Judge], proposals: pd.DataFrame) -> Backtest:
    """Each fold's logged creatives predicted by the judge fitted on the other fold, with their likeness to the
    proposals."""
    log = click_log(market)
    log = log.assign(fold=np.array([folds[str(c)] for c in log["creative_id"]], dtype=int))
    predicted = np.empty(len(log))
    for fold in range(FOLDS):
        mask = (log["fold"] == fold).to_numpy()
        if mask.any():
            part = log[mask]
            predicted[mask] = judges[1 - fold].predict(part["product_id"].tolist(), part["elements"].tolist(),
                                                       part["context"].tolist())
    log = log.assign(predicted_clicks=predicted * log["trials"].to_numpy())
    per = log.groupby("creative_id", sort=True).agg(predicted_clicks=("predicted_clicks", "sum"),
                                                    clicks=("clicks", "sum"), impressions=("trials", "sum"))
    points = pd.DataFrame({
        "creative_id": per.index.to_numpy(),
        "predicted": (per["predicted_clicks"] / per["impressions"]).to_numpy(),
        "observed": (per["clicks"] / per["impressions"]).to_numpy(),
        "impressions": per["impressions"].to_numpy(),
    })
    elements = market.creatives.set_index("creative_id")["elements"].reindex(points["creative_id"])
    points["likeness"] = proposal_likeness(pd.DataFrame({"elements": elements.to_numpy()}), proposals)
    return backtest_summary(points)


def backtest_summary(points: pd.DataFrame) -> Backtest:
    """The backtest's figures from per-creative ``predicted``, ``observed`` and ``impressions`` (class docstring).

    With ``f_c = alpha + beta q_c`` the line's CTR, ``tau^2 = sum n (o/f - 1)^2 / N - sum (1 - f) / f / N``,
    floored at 0: the impression-weighted variance of the per-creative ratio to the line less its binomial part
    (``Var(o_c / f_c) ~ (1 - f_c) / (n_c f_c)`` when f_c is right). Fewer than 3 creatives, or predictions all
    alike, give the line through the origin ``o = rho q``. ``local_error`` is ``sum n u (o/f - 1) / sum n u``
    with ``u`` the creatives' ``likeness`` (0 without that column).
    """
    q = np.clip(points["predicted"].to_numpy(dtype=float), 1e-9, 1.0)
    o = points["observed"].to_numpy(dtype=float)
    n = points["impressions"].to_numpy(dtype=float)
    total = n.sum()
    observed_clicks = float((n * o).sum())
    ratio = observed_clicks / float((n * q).sum())
    mare = float((n * np.abs(q - o)).sum() / observed_clicks) if observed_clicks > 0 else math.nan
    intercept, slope = calibration_line(q, o, n)
    fitted = np.clip(intercept + slope * q, 1e-6, 1.0)
    variance = float((n * (o / fitted - 1.0) ** 2).sum() / total - ((1.0 - fitted) / fitted).sum() / total)
    likeness = points["likeness"].to_numpy(dtype=float) if "likeness" in points else np.zeros(len(points))
    return Backtest(points, mare, slope, intercept, ratio, math.sqrt(max(variance, 0.0)),
                    _local_error(q, o, n, likeness, intercept, slope))


def _local_error(q: np.ndarray, o: np.ndarray, n: np.ndarray, likeness: np.ndarray, intercept: float,
                 slope: float) -> float:
    """The calibration line's relative error ``o/f - 1`` averaged with weights ``n * likeness`` (0 without any)."""
    weight = n * likeness
    if not weight.sum() > 0:
        return 0.0
    fitted = np.clip(intercept + slope * q, 1e-6, 1.0)
    return float((weight * (o / fitted - 1.0)).sum() / weight.sum())


def proposal_likeness(creatives: pd.DataFrame, proposals: pd.DataFrame) -> np.ndarray:
    """Per creative, how much it resembles the rank-1 proposals: the mean over slots of the share of proposals
    that use the creative's element in that slot (1: every proposal uses all its elements; 0: none uses any).
    A judge's error shared by the proposals shows on the logged creatives that share their elements."""
    top = proposals[proposals["rank"] == proposals.groupby("product_id")["rank"].transform("min")]
    shares = [pd.Series([e[k] for e in top["elements"]]).value_counts(normalize=True).to_dict()
              for k in range(len(top["elements"].iloc[0]))] if len(top) else []
    return np.array([np.mean([shares[k].get(e, 0.0) for k, e in enumerate(combo)]) if shares else 0.0
                     for combo in creatives["elements"]])


def calibration_line(predicted: np.ndarray, observed: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """``(alpha, beta)`` of the weighted least-squares line ``observed = alpha + beta predicted``; through the
    origin (``beta`` = observed per predicted) with fewer than 3 points or predictions all alike."""
    total = weights.sum()
    q_mean, o_mean = (weights * predicted).sum() / total, (weights * observed).sum() / total
    spread = float((weights * (predicted - q_mean) ** 2).sum())
    if len(predicted) < 3 or not spread > 1e-12 * total * max(q_mean, 1e-12) ** 2:
        return 0.0, float(o_mean / q_mean) if q_mean > 0 else 1.0
    slope = float((weights * (predicted - q_mean) * (observed - o_mean)).sum() / spread)
    return float(o_mean - slope * q_mean), slope


def _independent_products(rows: pd.DataFrame) -> float:
    """Kish's effective number of products in the model part of the value: ``(sum_p B_p)^2 / sum_p B_p^2`` with
    ``B_p`` the sum of the product's ``b`` terms (how many products' independent judge errors average out)."""
    parts = np.abs(rows.groupby("product_id")["b"].sum().to_numpy())
    return float(parts.sum() ** 2 / (parts**2).sum()) if (parts > 0).any() else 1.0


def _calibration_draws(backtest: Backtest, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``(alpha*_b, beta*_b, local*_b)`` rows: the calibration line and its error near the proposals on backtest
    creatives resampled with replacement."""
    points = backtest.points
    n = points["impressions"].to_numpy(dtype=float)
    q, o = points["predicted"].to_numpy(dtype=float), points["observed"].to_numpy(dtype=float)
    u = points["likeness"].to_numpy(dtype=float) if "likeness" in points else np.zeros(len(points))
    draws = []
    for k in rng.integers(0, len(points), size=(n_draws, len(points))):
        alpha, beta = calibration_line(q[k], o[k], n[k])
        draws.append((alpha, beta, _local_error(q[k], o[k], n[k], u[k], alpha, beta)))
    return np.array(draws)


def _resampled_means(columns: Sequence[np.ndarray], n_draws: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Means of each column over ``n_draws`` resamples of the rows (the same rows for every column)."""
    n = len(columns[0])
    block = max(1, BOOTSTRAP_BLOCK // max(n, 1))
    out = [np.empty(n_draws) for _ in columns]
    for start in range(0, n_draws, block):
        stop = min(start + block, n_draws)
        rows = rng.integers(0, n, size=(stop - start, n))
        for column, target in zip(columns, out):
            target[start:stop] = column[rows].mean(axis=1)
    return out


def error_factors(z: np.ndarray, variance: float) -> np.ndarray:
    """Log-normal factors of mean 1 and variance ``variance`` from standard normal draws ``z``:
    ``exp(s z - s^2 / 2)``, ``s^2 = log(1 + variance)`` (a CTR's error factor is never negative)."""
    s2 = math.log1p(max(variance, 0.0))
    return np.exp(math.sqrt(s2) * z - s2 / 2.0)


def _lift_interval(rows: pd.DataFrame, line: tuple[float, float, float], lines: np.ndarray, factors: np.ndarray,
                   level: float, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """(estimate, low, high, uncalibrated estimate) of ``V / mean(r) - 1`` on ``rows`` (module docstring)."""
    a, b, c, r = (rows[k].to_numpy(dtype=float) for k in ("a", "b", "c", "click"))
    if not r.sum() > 0:
        return (math.nan,) * 4
    model = line[0] * c.mean() + line[1] * b.mean()
    estimate = max(a.mean() + model * (1.0 + line[2]), 0.0) / r.mean() - 1.0
    uncalibrated = (a.mean() + b.mean()) / r.mean() - 1.0
    a_draws, b_draws, c_draws, r_draws = _resampled_means([a, b, c, r], len(lines), rng)
    model = lines[:, 0] * c_draws + lines[:, 1] * b_draws
    with np.errstate(divide="ignore", invalid="ignore"):
        lifts = np.maximum(a_draws + model * (1.0 + lines[:, 2]) * factors, 0.0) / r_draws - 1.0
    lifts = lifts[np.isfinite(lifts)]
    if not len(lifts):
        return float(estimate), math.nan, math.nan, float(uncalibrated)
    low, high = np.quantile(lifts, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(estimate), float(low), float(high), float(uncalibrated)


def _product_lifts(rows: pd.DataFrame, proposals: pd.DataFrame, line: tuple[float, float, float], lines: np.ndarray,
                   factors: np.ndarray, level: float, rng: np.random.Generator) -> pd.DataFrame:
    """Per proposed product, the lift and interval of ``_lift_interval`` on the product's impressions, and
    ``keep_current`` where the lower bound is not above 0."""
    groups = rows.groupby("product_id", sort=True).indices
    out = []
    for pid in sorted(set(proposals["product_id"])):
        index = groups.get(pid)
        if index is None or len(index) == 0:
            out.append((pid, 0, math.nan, math.nan, math.nan))
            continue
        out.append((pid, len(index), *_lift_interval(rows.iloc[index], line, lines, factors, level, rng)[:3]))
    frame = pd.DataFrame(out, columns=["product_id", "impressions", "lift", "lift_low", "lift_high"])
    frame["keep_current"] = ~(frame["lift_low"] > 0)
    return frame


def supported_part(market: Market, proposals: pd.DataFrame, judges: Sequence[Judge], folds: dict[str, int],
                   policy: ProposalPolicy, config: EvidenceConfig) -> SupportedPart:
    """How much of the final proposals' value the logs show directly, and how much rests on a judge alone.

    A product is supported when the logs hold impressions of a creative its proposals show. On the supported
    products' impressions the proposals are valued by IPS, SNIPS and DR with Kish's effective sample size; DR's
    model for a supported product is the judge not fitted on the proposed creative's clicks (one judge for all
    the product's impressions, so its correction stays unbiased). On the other products only a judge speaks
    (the direct method, each impression predicted by the judge not fitted on it): that part is extrapolation.
    """
    graded = [policy_arrays(market, proposals, "dr", policy, judge.predict) for judge in judges]
    log, shown = graded[0].log, graded[0].target_probabilities
    matched = log[shown > 0]
    first = matched.drop_duplicates("product_id")
    chosen = {str(p): 1 - folds[str(c)] for p, c in zip(first["product_id"], first["creative_id"])}
    judge = np.array([chosen.get(str(p), 1 - folds[str(c)])  # else out of fold
                      for p, c in zip(log["product_id"], log["creative_id"])], dtype=int)
    q_logged = np.choose(judge, [g.q_logged for g in graded])
    q_target = np.choose(judge, [g.q_target for g in graded])
    on = log["product_id"].isin(set(matched["product_id"])).to_numpy()
    clicks, propensity = log["click"].to_numpy(dtype=float), log["propensity"].to_numpy(dtype=float)
    values: dict[str, Interval] = {}
    ess, logging_ctr = 0.0, math.nan
    if on.any():
        for name in ("ips", "snips", "dr"):
            predictions = (q_logged[on], q_target[on]) if name == "dr" else (None, None)
            value, _ = estimate_with_draws(clicks[on], propensity[on], shown[on], name, *predictions,
                                           alpha=1.0 - config.level, n_bootstrap=config.n_bootstrap, seed=config.seed)
            values[name] = Interval(value.value, value.ci_low, value.ci_high)
            ess = value.ess
        logging_ctr = float(clicks[on].mean())
    off = ~on
    return SupportedPart(
        products=int(matched["product_id"].nunique()),
        impression_share=float(on.mean()),
        matched_impressions=len(matched),
        level=config.level,
        ips=values.get("ips"),
        snips=values.get("snips"),
        dr=values.get("dr"),
        ess=ess,
        logging_ctr=logging_ctr,
        extrapolated_products=int(log.loc[off, "product_id"].nunique()),
        extrapolated_impression_share=float(off.mean()),
        extrapolated_dm=float(q_target[off].mean()) if off.any() else math.nan,
        extrapolated_logging_ctr=float(clicks[off].mean()) if off.any() else math.nan,
    )


def launch_plan(logging_ctr: float, lift: LiftInterval, market: Market, config: EvidenceConfig) -> LaunchPlan:
    """The A/B test that confirms the lower bound of the lift: equal arms (what runs now vs the proposals),
    impressions per arm from ``required_impressions`` at ``config.alpha`` and ``config.power``, and its length at
    the logs' daily traffic."""
    target = lift.low if math.isfinite(lift.low) and lift.low > 0 else math.nan
    treatment = min(logging_ctr * (1.0 + target), 1.0) if math.isfinite(target) else math.nan
    per_arm = required_impressions(logging_ctr, treatment, config.alpha, config.power) if math.isfinite(target) \
        else None
    days = None
    stamps = market.impressions["ts"].to_numpy(dtype=np.int64) if market.impressions is not None else None
    if per_arm is not None and stamps is not None and len(stamps):
        span = max((stamps.max() - stamps.min()) / 86_400.0, 1.0)
        days = 2 * per_arm / (len(stamps) / span)
    return LaunchPlan(float(target), float(logging_ctr), float(treatment), per_arm, 0.5, days, config.alpha,
                      config.power)

