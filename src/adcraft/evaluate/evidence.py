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
two cross-fitted proposal sets': meant to be conservative, since a judge fitted on half the logs chooses
no better than one fitted on all of them (on the benchmark worlds about as well: the half-data picks'
true lift averaged 0.220 against the final proposals' 0.221, ``bench/evidence.py --graders``). Cost: two
extra fits of the judge on half the logs each and two proposal searches (``Evidence.seconds`` records the
time).

**Backtest.** Each fold's creatives are predicted by the judge fitted on the other fold: per creative,
the impression-weighted prediction ``q_c`` beside the observed CTR ``o_c`` on ``n_c`` impressions
(``backtest``). It gives the judge's calibration on creatives it never saw: the impression-weighted
least-squares line ``o = alpha + beta q`` (``calibration_line``), the line's relative error ``e`` on the
creatives that share the proposals' elements (``proposal_likeness``), the spread ``tau`` of ``o_c / f_c``
around the line beyond binomial noise (the report's predicted-vs-observed plot), and what a lift rests on:
**the contrast**. A lift compares a proposal with what the same product runs now, so the judge's error on a
product's level, which dominates the line, does not matter; its error on the ratio does. Each held-out
creative's predicted ratio ``pi_c = q_c / Q`` to its product's logs in the fold the judge was fitted on
(mean prediction ``Q``, observed CTR ``O``) is set against what it showed (``contrast_points``): ``gamma``,
the share of the predicted contrast that held-out creatives like the proposals showed, ``e_w`` the error left
near the proposals, and ``tau_w`` the spread of one creative's error beyond binomial noise (``contrast_fit``).

**Lift.** A product's predicted ratio ``pi_p`` is the grading judge's mean prediction for the proposal over
its mean prediction for the logged creatives on the product's impressions (``_product_ratios``), so the
product's lift is ``l_p = (1 + gamma (min(pi_p, pi+) - 1)) (1 + e_w) - 1`` (``pi+``: the upper ``level`` quantile
of the held-out creatives' predicted ratios, ``_verified_ratio``: no credit for a contrast larger than any the
backtest saw land) and the set's
``sum_p C_p (1 + l_p) / sum_p C_p - 1`` (``C_p``: the product's logged clicks; ``_set_lift``). Its ``level``
interval takes quantiles over draws that refit ``(gamma, e_w, tau_w)`` on the backtest's creatives resampled
with replacement (the uncertainty of the calibration, an error all proposals share), resample the clicks, and
give each product's proposal its own log-normal error factor of variance ``tau_w^2`` (``error_factors``), which
averages out over many products. The supported part (``supported_part``) reports IPS, SNIPS and DR with the
judge fitted on the other fold where the logs did show the proposals; ``uncalibrated_lift`` is the
cross-fitted DR lift before any calibration, for comparison.

**Two views of the set's contrast (``EvidenceConfig.chooser_view``).** The grader's ratio, recalibrated, is
shrunk toward what creatives nobody chose show: ``gamma`` is the slope of the observed contrast on the predicted
one among logged creatives, while the picks were chosen, by a judge whose errors are not the grader's, for
contrasts above the logged creatives'. Given the grader's prediction, a pick's true contrast is therefore larger
than a logged creative's, and the grader's view understates the set (it missed the true lift by understating it in
most of the runs where it missed, ``bench/evidence.py --graders``). The chooser's own ratio, recalibrated by the
same line fitted on creatives the chooser never saw, is not biased by the choice, which depended on that
prediction alone: a calibration of the truth on the very estimate an alternative was chosen by is the remedy for
the optimiser's curse (Smith & Winkler 2006: value the chosen alternative at its posterior mean given
its estimate). It rests instead on the line carrying to the picks' predicted contrasts, beyond most logged
creatives' (credited up to ``pi+`` like the grader's), and its figure varies more. The chooser's raw opinion
is never the evidence: only its contrast, rescaled by clicks it never saw. With ``chooser_view`` the set's
estimate is the mean of the two views and its interval the union of theirs, each view with the same draws
(``_set_lift``): it holds the lift whichever view's assumption holds. A product's bounds and keep marks stay the
grader's: one product's few clicks cannot check a chooser's view of its own pick. Off by default: on fresh benchmark
seeds it held the true lift of every proposal launched in 25 of 35 runs against the grader's 20, but its estimate was
no closer to the truth (median relative error 0.751 against 0.749), which the rule fixed before that measurement
required (docs/results.md, "Evidence with the chooser's calibrated view beside the grader's").

**Disattenuated slope (``EvidenceConfig.set_slope``).** ``gamma`` is the slope of what held-out creatives
showed on what one judge predicted, and that prediction carries the judge's own estimation error: a judge fitted on
half the logs predicts contrasts partly from the noise of the clicks it saw. A slope on a predictor with error is
diluted toward 0 by the share of the predictor's spread that is error (regression dilution; Spearman 1904). For one
product's decision the diluted slope is the right one: given one noisy prediction, the best guess of that creative's
contrast is shrunk toward none. For the set's lift it is not: the grader's errors on the picks do not depend on the
choice (the chooser never saw the grader's half), so they average out over the products, and shrinking every
product's contrast by the dilution understates their sum. The reliability ``R`` (``contrast_fit``) measures the
dilution without the truth: the share of one judge's predicted contrasts on the held-out creatives that the judge
fitted on the other half, whose errors come from disjoint data, reproduces. With ``set_slope: disattenuated`` the
set's lift (``proposals_lift`` and the lift after do no harm) uses ``gamma / R``, ``R`` at least
``RELIABILITY_FLOOR`` (never more than twice the measured slope), and ``e_w`` about that slope, in the estimate and
in every draw; a product's bounds and keep marks keep ``gamma``. What it assumes: errors the two judges share (the
same model's blind spots) count as reproducible, so where they dominate ``R`` is too high and the correction too
small; nothing of the truth. Not the default: on fresh benchmark seeds it held the true lift of every proposal
launched in 4 of 12 runs against 2 at the default market size (median relative error 0.477 against 0.614), but at 30
products, where the set's estimate was not biased, it only added spread (23 of 35 against 21, median relative error
0.754 against 0.588), which the rule fixed before that measurement refused: ``R`` on creatives of a few clicks each is
too noisy to tell the two cases apart (docs/results.md, "Evidence with the set's contrast slope disattenuated").
``set_slope: both`` keeps the measured slope's estimate and takes the union of the two slopes' intervals on the
same draws: its lower end is never above the measured slope's, its upper end allows for the dilution. On fresh
benchmark seeds, by a rule written before the run, it held the true lift of every proposal launched in 9 of 12 runs
against 4 at the default market size and in 28 of 35 against 22 at 30 products, none lost, the estimate and lower
bound unchanged, the interval 1.45 and 1.34 times as wide (docs/results.md, "Evidence with the interval of both
contrast slopes"). It is not the default all the same: it widens the interval of a judge whose errors are noise (``R``
below 1) and not that of a judge wrong in a way both halves share (a bias toward one element: ``R`` about 1), so a
judge wrong in a known way would no longer get the wider interval (``tests/evaluate/test_evidence.py``, the biased
judge); ``R`` cannot tell an error the halves share from the truth.
``backtest.contrast_reliability`` reports ``R`` as measured, whatever the setting.

**Likeness (``EvidenceConfig.likeness_from``).** ``gamma`` and ``e_w`` weigh each held-out creative by its likeness
to the proposals. The final proposals were chosen by the judge fitted on all logs, the held-out creatives' clicks
included: an element that some held-out creatives' lucky clicks made look good is likelier to be in the proposals,
so the creatives weighed most near the proposals are, more often than chance, the lucky ones, and ``e_w`` comes out
too high (selection and measurement on the same data: Kriegeskorte et al., "Circular analysis in systems
neuroscience", Nature Neuroscience 2009). With ``likeness_from: unseen_picks`` a creative of half k is weighed by its
likeness to the picks of the judge fitted on half 1 - k, which never saw its clicks: where nothing matters, ``e_w``
is then 0 on average, while from the final proposals it is positive (``tests/evaluate/test_evidence.py``, the flat
markets). Those picks are the grader's own, not the picks it grades (chosen with the held-out creatives' clicks, as the
final proposals are), which nothing leak-free can replace. Not the default: on fresh benchmark seeds, by a rule
written before the run, it held the true lift of every proposal launched in 21 of 47 runs against 27, its estimate
further from the truth (median relative error 0.749 against 0.619 at 30 products): removing the leak lowers every
estimate where the set's was already below the truth, since the leak offset part of the slope's dilution
("Disattenuated slope"; docs/results.md, "Evidence with the likeness weights from picks of the judge that never saw
the creatives").

**Per product (do no harm).** One product's few hundred impressions cannot show a proposal to be better by
its own clicks: a product's interval is the same ratio with one new creative's error in full, of spread
``max(tau_w+, delta)``. ``tau_w+`` is the upper bound of ``tau_w`` over the resamples (``contrast_spread_bound``:
a spread measured as 0 on a few noisy creatives does not make a product's interval narrow). ``delta`` is there
because the backtest sees only combinations the logs showed, while a proposal is one they did not: how far
two judges fitted on disjoint halves disagree about the same proposals' ratios (``_disagreement``) shows the
error of carrying a contrast that far, which no logged creative shows. The set's draws use
``max(tau_w*_b, delta)`` too. ``keep_current`` marks the products whose lower bound is not above 0.
``best_product_low`` is the lower bound of a product credited the largest verified ratio, which a proposal the
judge rates higher does not pass (``best_product_bound``). So that choosing which products launch does not bias
the set's lift, the keep marks come from one random half of the impressions and the lift after do no harm from
the other.

**A test of every proposal (``Evidence.proposals_plan``).** A product is launched only on its own interval, which
carries one new creative's judge error in full; the set's interval averages those errors over the products. Where no
product's proposal is shown better on its own, the set of every proposal often is (``proposals_lift``'s lower end
above 0). On 42 benchmark markets at 30 products, logged with 30000, 120000 and 480000 impressions, the judge's real
error on one new creative fell only from 0.236 to 0.220 of its CTR with sixteen times the logs and do no harm
launched in one market, while the set's lower end was above 0 in 22 and its true lift above 0 in all 22. On markets
not seen when this test was added (21 fresh at 30 products, 12 at 120 products) the lower end was above 0 in 11 and
12, all truly better; in 4 of the 45 the lower end lay above the true lift (docs/results.md, "The judge's error as
the logs grow"). What can confirm such a set is a live test, not more offline evidence: ``proposals_plan`` is the
A/B test of every rank-1 proposal against what runs now, sized (``launch_plan``) to confirm ``proposals_lift``'s
lower end. It launches nothing; do no harm's choice stands until a test confirms the set.

**Without propensities.** Nothing above but the DR parts, ``uncalibrated_lift`` and the supported part's IPS,
SNIPS and DR weighs by the logging policy's propensities: the lift and the keep marks rest on the judges'
predictions, the impressions' clicks and the backtest. Logs without propensities, or only aggregated
``creative_stats`` (read as one row per impression, ``logged_impressions``), therefore get the same evidence,
with those parts left out (NaN, None).

The lower end is meant to be conservative: judges fitted on half the logs choose no better and know fewer
elements than the final judge, and a grader's predicted contrast is shrunk (on the benchmark worlds the
graders' DR lift before calibration saw about a third of their picks' true gain, and the calibrated
estimate two thirds). No bound uses the final judge's opinion of its own picks: that figure is biased
upwards by the optimiser's curse, and is never evidence.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import numpy as np
import pandas as pd

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.evaluate.abtest import required_impressions
from adcraft.evaluate.ope import estimate_with_draws
from adcraft.evaluate.proposal_value import ProposalPolicy, logged_impressions, policy_arrays
from adcraft.market import Market
from adcraft.market.click_log import click_log
from adcraft.market.logs import missing_logs

FOLDS = 2
SCHEME = "2-fold cross-fitting by creative"
RELIABILITY_FLOOR = 0.5  # a disattenuated contrast slope is at most twice the measured one (``contrast_fit``)
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
    chooser_view: bool = False  # the set's lift also by the choosing judge's own calibrated contrast (module docstring)
    # the set's lift by the measured contrast slope, by it corrected for the judge's own noise, or with the interval
    # of both (module docstring, "Disattenuated slope")
    set_slope: Literal["measured", "disattenuated", "both"] = "measured"
    # which picks the backtest's likeness weights come from: the final proposals, or, for each half's creatives, the
    # picks of the judge that never saw them (module docstring, "Likeness")
    likeness_from: Literal["proposals", "unseen_picks"] = "proposals"
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
    ``likeness`` (``proposal_likeness``: how much the creative resembles the proposals, or with
    ``likeness_from: unseen_picks`` the picks of the judge that never saw it).
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
    contrast_slope: float = 1.0  # gamma: share of a predicted contrast to a product's logs that held-out creatives show
    contrast_spread: float = math.nan  # tau_w: relative spread of a creative's contrast error beyond binomial noise
    contrast_spread_bound: float = math.nan  # its upper bound at the evidence's level (bootstrap of the creatives)
    contrast_local_error: float = 0.0  # e_w: the contrast's relative error on creatives like the proposals
    contrast_reliability: float = 1.0  # R: share of the predicted contrast's spread the other half's judge agrees on
    disagreement: float = 0.0  # one judge's relative error on a proposal's ratio, from two judges' disagreement
    verified_ratio: float = math.inf  # the largest predicted ratio credited: the held-out creatives' upper quantile
    proposal_spread: float = math.nan  # max(tau_w+, disagreement): one proposal's error in a product's interval
    best_product_low: float = math.nan  # a product's lower bound at the largest ratio credited (best_product_bound)

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
            "contrast_slope": self.contrast_slope,
            "contrast_spread": None if math.isnan(self.contrast_spread) else self.contrast_spread,
            "contrast_spread_bound": None if math.isnan(self.contrast_spread_bound) else self.contrast_spread_bound,
            "contrast_error_near_proposals": self.contrast_local_error,
            "contrast_reliability": self.contrast_reliability,
            "judges_disagreement": self.disagreement,
            "verified_ratio": None if math.isinf(self.verified_ratio) else self.verified_ratio,
            "proposal_spread": None if math.isnan(self.proposal_spread) else self.proposal_spread,
            "best_product_low": None if math.isnan(self.best_product_low) else self.best_product_low,
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
    rest on a judge alone (``extrapolated_*``, their direct-method CTR ``extrapolated_dm``). ``weighted`` is False
    where the logs have no propensities: the estimators that weigh by them are then None."""

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
    weighted: bool = True  # False: the logs have no propensities, so no IPS, SNIPS or DR (and ess NaN)


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

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "summary": self.summary}

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
    """The cross-fitted lift of a proposal set, its backtest, its support in the logs, a launch plan, and the test
    that would confirm every proposal (``proposals_plan``: module docstring, "A test of every proposal").

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
    proposals_uncalibrated_lift: float = math.nan  # ``uncalibrated_lift`` of every rank-1 proposal, before do-no-harm
    proposals_plan: LaunchPlan | None = None  # the A/B test of every rank-1 proposal, sized on ``proposals_lift``

    def to_json(self) -> dict:
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
            "launch_plan": self.launch_plan.to_json(),
            "proposals_launch_plan": None if self.proposals_plan is None else self.proposals_plan.to_json(),
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
    launch nothing and keep what runs now (their logging policy: no change, no lift, no model), while the other
    products are valued as their proposals (module docstring, "Lift"); without it, ``lift`` equals
    ``proposals_lift``. So that choosing which products launch does not
    bias the lift of the set (the products whose estimate came out high would be the ones launched), the
    impressions are dealt at random into two halves: the per-product lifts and ``keep_current`` come from one
    half, ``lift`` from the other (``bench/evidence.py`` measures the coverage). Logs without propensities (or
    only ``creative_stats``) give all of it but the parts that weigh by propensities: ``uncalibrated_lift`` is
    NaN and the supported part has no IPS, SNIPS or DR (``supported_part``). Raises :class:`InputError` when the
    logs cannot support it: no logs, or a fold whose logs a judge cannot be fitted on.
    """
    config = config or EvidenceConfig()
    policy = policy or ProposalPolicy()
    started = time.perf_counter()
    missing = missing_logs(market.creatives, market.impressions, market.creative_stats)
    if missing is not None:  # refused before any fit
        raise InputError(missing)
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
    log = logged_impressions(market, propensities=False)  # read (for creative_stats: expanded) once for all parts
    rows = pd.concat([_fold_rows(market, log, members[fold], chosen[1 - fold], judges[fold], judges[1 - fold],
                                 policy).assign(fold=fold) for fold in range(FOLDS)], ignore_index=True)
    # whose picks each fold's held-out creatives are likened to (module docstring, "Likeness")
    unseen = config.likeness_from == "unseen_picks"
    alike = [chosen[1 - fold] if unseen else proposals for fold in range(FOLDS)]
    backtest = _backtest(market, folds, judges, alike)
    rng = np.random.default_rng(config.seed)
    disattenuate = config.set_slope != "measured"
    draws = _calibration_draws(backtest, config.n_bootstrap, rng, disattenuated=disattenuate)
    fallback = backtest.contrast_spread if math.isfinite(backtest.contrast_spread) else backtest.ratio_spread
    variances = np.where(np.isfinite(draws[:, 4]), draws[:, 4] ** 2, fallback**2)  # tau_w^2 of each resample
    raw = draws[np.isfinite(draws[:, 5]), 5]
    bound = max(float(np.quantile(raw, config.level)), 0.0) if len(raw) else fallback**2
    backtest = dataclasses.replace(backtest, contrast_spread_bound=math.sqrt(bound))
    disagreement = _disagreement(rows)
    backtest = dataclasses.replace(backtest, disagreement=disagreement)
    bound = max(bound, disagreement**2)  # a proposal's error: never below what the judges' disagreement shows
    backtest = dataclasses.replace(backtest, proposal_spread=math.sqrt(bound))
    variances = np.maximum(variances, disagreement**2)
    z = rng.standard_normal(config.n_bootstrap)
    gamma = (backtest.contrast_slope, backtest.contrast_local_error)
    gammas = draws[:, [3, 6]]  # (gamma*_b, e_w*_b)
    slopes = [(gamma, gammas)]  # the set's lift: the measured slope, disattenuated, or both (module docstring)
    if disattenuate and "contrast_x" in backtest.points:
        corrected = contrast_fit(backtest.points, _likeness(backtest.points), disattenuated=True)
        disattenuated = ((corrected.slope, corrected.local_error), draws[:, [8, 9]])
        slopes = [disattenuated] if config.set_slope == "disattenuated" else [*slopes, disattenuated]
    verified = _verified_ratio(backtest.points, config.level)
    factors = error_factors(z, bound)  # one proposal's error, in every product's interval
    backtest = dataclasses.replace(backtest, verified_ratio=verified,
                                   best_product_low=best_product_bound(verified, gammas, factors, config.level))

    def ratios_of(part: pd.DataFrame) -> pd.DataFrame:
        """``_product_ratios`` with no credit beyond the contrasts the backtest verified."""
        ratios = _product_ratios(part)
        return ratios.assign(pi=ratios["pi"].clip(upper=verified))

    def views_of(part: pd.DataFrame) -> list[pd.DataFrame]:
        """The grader's ratios of ``part``, and with ``config.chooser_view`` the chooser's (module docstring)."""
        return [ratios_of(part)] + ([ratios_of(chooser_rows(part))] if config.chooser_view else [])

    ratios = ratios_of(rows)
    proposals_lift = _set_lift(views_of(rows), set(ratios.index), slopes, variances, config.level, rng)
    uncalibrated = proposals_uncalibrated = float((rows["a"].mean() + rows["b"].mean()) / rows["click"].mean() - 1.0)
    logging_ctr = float(rows["click"].mean())
    lift = proposals_lift
    products = _product_lifts(ratios, proposals, gamma, gammas, factors, config.level)
    if do_no_harm:  # decided on one half of the impressions, graded on the other: kept products at no change
        deciding = np.random.default_rng([config.seed, 1]).random(len(rows)) < 0.5
        products = _product_lifts(ratios_of(rows[deciding]), proposals, gamma, gammas, factors, config.level)
        graded = rows[~deciding]
        launched = set(products.loc[~products["keep_current"], "product_id"])
        lift = _set_lift(views_of(graded), launched, slopes, variances, config.level, rng)
        moved = graded["product_id"].isin(launched).to_numpy()
        uncalibrated = float((np.where(moved, graded["a"] + graded["b"], graded["click"])).mean()
                             / graded["click"].mean() - 1.0)
    if not _has_propensities(log):  # no propensities, no DR parts (``_fold_rows``)
        uncalibrated = proposals_uncalibrated = math.nan
    supported = supported_part(market, proposals, judges, folds, policy, config, log)
    plan = launch_plan(logging_ctr, lift, market, config)
    every = launch_plan(logging_ctr, proposals_lift, market, config)  # module docstring, "A test of every proposal"
    return Evidence(lift, proposals_lift, uncalibrated, logging_ctr, logging_ctr * (1.0 + lift.estimate), backtest,
                    supported, plan, products, time.perf_counter() - started, proposals_uncalibrated, every)


def _has_propensities(log: pd.DataFrame) -> bool:
    """Whether ``logged_impressions`` read propensities for every impression (the DR parts and the supported
    part's estimators need them)."""
    return bool(np.isfinite(log["propensity"].to_numpy(dtype=float)).all())


def _fold_rows(market: Market, log: pd.DataFrame, creatives: set[str], proposals: pd.DataFrame, grader: Judge,
               chooser: Judge, policy: ProposalPolicy) -> pd.DataFrame:
    """Per impression of the fold: the DR parts ``a = w r`` and ``b = q_target - w q_logged`` of ``proposals``
    graded by ``grader``, with the propensity made conditional on the fold (module docstring; NaN where the logs
    have no propensities, or only ``creative_stats``, which ``logged_impressions`` reads as one row per
    impression), and the predictions of both judges for the proposal and the logged creative (``q_target``,
    ``q_logged``: the grader's; ``chooser_target``, ``chooser_logged``: the judge that chose the proposals).
    ``log``: the whole market's ``logged_impressions``, of which the fold's creatives' rows are taken."""
    part = fold_market(market, creatives)
    own = log[log["creative_id"].isin(creatives).to_numpy()].reset_index(drop=True)
    arrays = policy_arrays(part, proposals, "dr", policy, grader.predict, log=own)
    chosen = policy_arrays(part, proposals, "dr", policy, chooser.predict, log=own)
    weight = np.full(len(own), np.nan)  # no propensities: no DR parts (the lift rests on q_target / q_logged)
    if _has_propensities(log):
        everything = log["product_id"].value_counts()  # each product's impressions in both folds
        share = own.groupby("product_id")["product_id"].transform("size") / everything.reindex(
            own["product_id"]).to_numpy()
        propensity = np.minimum(own["propensity"].to_numpy() / share.to_numpy(), 1.0)
        weight = arrays.target_probabilities / propensity
    clicks = own["click"].to_numpy(dtype=float)
    return pd.DataFrame({
        "product_id": own["product_id"].to_numpy(),
        "click": clicks,
        "a": weight * clicks,
        "b": arrays.q_target - weight * arrays.q_logged,
        "c": 1.0 - weight,
        "q_target": arrays.q_target,
        "q_logged": arrays.q_logged,
        "chooser_target": chosen.q_target,
        "chooser_logged": chosen.q_logged,
    })


def _backtest(market: Market, folds: dict[str, int], judges: Sequence[Judge],
              alike: Sequence[pd.DataFrame]) -> Backtest:
    """Each fold's logged creatives predicted by the judge fitted on the other fold, with their likeness to the
    proposals ``alike[k]`` for fold k's creatives (the final proposals, or the picks of the judge that never saw them)
    and their product's reference in that judge's own fold (``contrast_errors``)."""
    log = click_log(market)
    log = log.assign(fold=np.array([folds[str(c)] for c in log["creative_id"]], dtype=int))
    predicted, fitted = np.empty(len(log)), np.empty(len(log))
    for fold in range(FOLDS):
        mask = (log["fold"] == fold).to_numpy()
        if mask.any():
            part = log[mask]
            args = (part["product_id"].tolist(), part["elements"].tolist(), part["context"].tolist())
            predicted[mask] = judges[1 - fold].predict(*args)
            fitted[mask] = judges[fold].predict(*args)
    trials = log["trials"].to_numpy()
    log = log.assign(predicted_clicks=predicted * trials, fitted_clicks=fitted * trials)
    per = log.groupby("creative_id", sort=True).agg(predicted_clicks=("predicted_clicks", "sum"),
                                                    fitted_clicks=("fitted_clicks", "sum"),
                                                    clicks=("clicks", "sum"), impressions=("trials", "sum"),
                                                    product_id=("product_id", "first"), fold=("fold", "first"))
    # the reference of a creative of fold k: its product's logs in fold 1 - k, as the judge fitted there sees them
    # (and, for the reliability, as the judge fitted on fold k, which never saw them, predicts them)
    own = log.groupby(["product_id", "fold"]).agg(fitted_clicks=("fitted_clicks", "sum"), clicks=("clicks", "sum"),
                                                  predicted_clicks=("predicted_clicks", "sum"),
                                                  impressions=("trials", "sum"))
    reference = own.reindex(pd.MultiIndex.from_arrays([per["product_id"], 1 - per["fold"]]))
    points = pd.DataFrame({
        "creative_id": per.index.to_numpy(),
        "product_id": per["product_id"].to_numpy(),
        "predicted": (per["predicted_clicks"] / per["impressions"]).to_numpy(),
        "observed": (per["clicks"] / per["impressions"]).to_numpy(),
        "impressions": per["impressions"].to_numpy(),
        "reference_predicted": (reference["fitted_clicks"] / reference["impressions"]).to_numpy(),
        "reference_observed": (reference["clicks"] / reference["impressions"]).to_numpy(),
        "reference_impressions": reference["impressions"].fillna(0.0).to_numpy(),
        "inside_predicted": (per["fitted_clicks"] / per["impressions"]).to_numpy(),
        "inside_reference_predicted": (reference["predicted_clicks"] / reference["impressions"]).to_numpy(),
    })
    elements = pd.DataFrame({"elements": market.creatives.set_index("creative_id")["elements"]
                             .reindex(points["creative_id"]).to_numpy()})
    likeness = np.zeros(len(points))
    for fold in range(FOLDS):
        mask = (per["fold"] == fold).to_numpy()
        if mask.any():
            likeness[mask] = proposal_likeness(elements[mask], alike[fold])
    return backtest_summary(points.assign(likeness=likeness))


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
    likeness = _likeness(points)
    contrast = Contrast(1.0, math.nan, math.nan, 0.0, 1.0)
    if "reference_predicted" in points:
        reference = points["reference_predicted"].to_numpy(dtype=float)
        inside = (points["inside_predicted"].to_numpy(float), points["inside_reference_predicted"].to_numpy(float)) \
            if "inside_predicted" in points else (None, None)
        contrast_columns = contrast_points(q, o, n, reference, points["reference_observed"].to_numpy(float),
                                           points["reference_impressions"].to_numpy(float), fitted,
                                           np.clip(intercept + slope * reference, 1e-6, 1.0), *inside)
        points = points.assign(**contrast_columns)
        contrast = contrast_fit(points, likeness)
    return Backtest(points, mare, slope, intercept, ratio, math.sqrt(max(variance, 0.0)),
                    _local_error(q, o, n, likeness, intercept, slope), contrast.slope, contrast.spread,
                    contrast_local_error=contrast.local_error, contrast_reliability=contrast.reliability)


class Contrast(NamedTuple):
    """The judge's within-product contrast on held-out creatives (``contrast_fit``)."""

    slope: float  # gamma
    spread: float  # tau_w (NaN: nothing to measure it on)
    variance: float  # tau_w^2 before the floor at 0 (a resample's figure may fall below it)
    local_error: float  # e_w: the residual's share near the proposals (0 without likeness)
    reliability: float = 1.0  # R: the share of the predicted contrast's spread that two judges agree on (unclipped)


def contrast_points(predicted: np.ndarray, observed: np.ndarray, impressions: np.ndarray,
                    reference_predicted: np.ndarray, reference_observed: np.ndarray, reference_impressions: np.ndarray,
                    level: np.ndarray, reference_level: np.ndarray, inside: np.ndarray | None = None,
                    inside_reference: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per held-out creative, the columns ``contrast_fit`` reads.

    The reference of a creative that a judge never saw is the same product's logs that the judge was fitted on:
    its mean prediction there ``Q``, their observed CTR ``O`` on ``N`` impressions. ``pi_c = q_c / Q``
    (``predicted_ratio``) is the judge's predicted ratio of a new creative to what the product's logs show: the
    ratio a per-product lift rests on (``_product_lifts``: a proposal the grader never saw against the logs it
    was fitted on), whatever the judge's error on the product's level. In CTR units, so that a reference with
    few clicks does not blow a ratio up, the predicted deviation is ``x_c = O (pi_c - 1)`` (``contrast_x``) and
    the observed one ``y_c = o_c - O`` (``contrast_y``). With ``f_c`` and ``F`` the calibration line's CTRs, the
    binomial variance of ``o_c - O phi`` for a multiplier ``phi`` near ``pi_c`` is
    ``f_c (1 - f_c) / n_c + pi_c^2 F (1 - F) / N`` (``contrast_noise``; the two sets of impressions are
    disjoint). ``contrast_weight`` is ``n_c``, and 0 where the reference has no impression or no prediction.
    With ``inside`` and ``inside_reference`` (the other judge's predictions of the creative, which it was fitted
    on, and of the same reference, which it was not), ``contrast_x_inside`` is that judge's ``O (pi'_c - 1)``: a
    second prediction of the same contrast whose errors are not the first judge's (``contrast_fit``'s reliability).
    """
    usable = (reference_impressions > 0) & (reference_predicted > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(usable, predicted / reference_predicted, 1.0)
        base = np.where(usable, reference_observed, 0.0)
        noise = np.where(usable, level * (1.0 - level) / impressions
                         + ratio**2 * reference_level * (1.0 - reference_level) / reference_impressions, 0.0)
    columns = {"predicted_ratio": ratio, "contrast_base": base, "contrast_x": base * (ratio - 1.0),
               "contrast_y": np.where(usable, observed - base, 0.0), "contrast_noise": noise,
               "contrast_weight": np.where(usable, impressions, 0.0)}
    if inside is not None and inside_reference is not None:
        known = usable & (inside_reference > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            columns["contrast_x_inside"] = np.where(known, base * (inside / inside_reference - 1.0), 0.0)
    return columns


def contrast_fit(points: pd.DataFrame, likeness: np.ndarray, rows: np.ndarray | None = None,
                 disattenuated: bool = False) -> Contrast:
    """``(gamma, tau_w, tau_w^2 before its floor, e_w, R)`` of the held-out creatives' contrasts
    (``contrast_points``), on ``rows`` (all by default; a resample in the calibration draws).

    ``gamma = sum n u x y / sum n u x^2`` is the slope of the observed deviation on the predicted one on the
    creatives like the proposals (``u``: their ``likeness``; every creative alike without any): 1, they show all
    of the judge's predicted contrast; 0, none of it; negative, the judge has it backwards; 1 without any
    predicted contrast. Near the proposals, because a judge's error on the contrast is seldom the same
    everywhere: one that overrates an element overrates every creative that uses it, and the proposals use it.
    With the residual
    ``r_c = y_c - gamma x_c = o_c - O (1 + gamma (pi_c - 1))``, the relative spread beyond binomial noise is
    ``tau_w^2 = (sum n r^2 - sum n noise) / sum n (O (1 + gamma (pi - 1)))^2`` over all held-out creatives,
    floored at 0, and the error left near the proposals ``e_w = sum n u r / sum n u O (1 + gamma (pi - 1))``.
    Sums of CTRs, not means of ratios: a reference with few clicks weighs little instead of dominating.

    ``R = sum n u x' x / sum n u x^2`` (``x'``: ``contrast_x_inside``, the other judge's predicted deviation of the
    same creative; 1 without it) is the reliability of the judge's
    predicted contrast: the share of its spread that a judge fitted on the other half of the logs reproduces
    (their errors come from disjoint data, so they do not covary; the other judge's fit to the creative's own
    clicks does not covary with this judge's prediction either). ``gamma`` is ``R`` times the slope of the
    observed contrast on the reproducible part of the prediction (regression dilution: Spearman, "The proof and
    measurement of association between two things", 1904; Fuller, *Measurement Error Models*, 1987, 1.1).
    ``disattenuated``: ``gamma / R`` instead of ``gamma``, with ``R`` clipped to ``[RELIABILITY_FLOOR, 1]`` (and
    ``tau_w``, ``e_w`` about that slope): the share of the contrast a judge predicts the same whatever half of the
    logs it saw that creatives show. ``R`` is reported as measured (it may fall outside ``[0, 1]`` by chance).
    """
    take = slice(None) if rows is None else rows
    ratio = points["predicted_ratio"].to_numpy(dtype=float)[take]
    w = points["contrast_weight"].to_numpy(dtype=float)[take]
    x, y = points["contrast_x"].to_numpy(dtype=float)[take], points["contrast_y"].to_numpy(dtype=float)[take]
    if not w.sum() > 0:
        return Contrast(1.0, math.nan, math.nan, 0.0, 1.0)
    near = w * likeness[take]
    fit = near if near.sum() > 0 else w
    spread = float((fit * x**2).sum())
    gamma = float((fit * x * y).sum() / spread) if spread > 1e-18 else 1.0
    reliability = 1.0
    if "contrast_x_inside" in points and spread > 1e-18:
        inside = points["contrast_x_inside"].to_numpy(dtype=float)[take]
        reliability = float((fit * inside * x).sum() / spread)
    if disattenuated:
        gamma /= float(np.clip(reliability, RELIABILITY_FLOOR, 1.0))
    expected = points["contrast_base"].to_numpy(dtype=float)[take] * np.maximum(1.0 + gamma * (ratio - 1.0), 0.0)
    scale = float((w * expected**2).sum())
    noise = float((w * points["contrast_noise"].to_numpy(dtype=float)[take]).sum())
    residual = float((w * (y - gamma * x) ** 2).sum())
    variance = (residual - noise) / scale if scale > 0 else math.nan
    local = float((near * (y - gamma * x)).sum() / (near * expected).sum()) if (near * expected).sum() > 0 else 0.0
    return Contrast(gamma, math.sqrt(max(variance, 0.0)) if scale > 0 else math.nan, variance, local, reliability)


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


def _likeness(points: pd.DataFrame) -> np.ndarray:
    """The backtest creatives' ``likeness`` to the proposals (0 without that column)."""
    return points["likeness"].to_numpy(dtype=float) if "likeness" in points else np.zeros(len(points))


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


def _calibration_draws(backtest: Backtest, n_draws: int, rng: np.random.Generator,
                       disattenuated: bool = False) -> np.ndarray:
    """Rows ``(alpha*_b, beta*_b, local*_b)`` of the calibration line and its error near the proposals, then
    ``(gamma*_b, tau*_b, tau*_b^2 before its floor, e_w*_b, R*_b)`` of the contrasts (``contrast_fit``) and, with
    ``disattenuated``, ``(gamma*_b / R*_b, e_w*_b about it)`` (NaN without), on backtest creatives resampled with
    replacement."""
    points = backtest.points
    n = points["impressions"].to_numpy(dtype=float)
    q, o = points["predicted"].to_numpy(dtype=float), points["observed"].to_numpy(dtype=float)
    u = _likeness(points)
    fits = "contrast_x" in points
    draws = []
    for k in rng.integers(0, len(points), size=(n_draws, len(points))):
        alpha, beta = calibration_line(q[k], o[k], n[k])
        contrast = contrast_fit(points, u, k) if fits else Contrast(1.0, math.nan, math.nan, 0.0, 1.0)
        corrected = contrast_fit(points, u, k, disattenuated=True) if fits and disattenuated else None
        draws.append((alpha, beta, _local_error(q[k], o[k], n[k], u[k], alpha, beta), *contrast,
                      *((corrected.slope, corrected.local_error) if corrected else (math.nan, math.nan))))
    return np.array(draws).reshape(n_draws, 10)


def error_factors(z: np.ndarray, variance: float | np.ndarray) -> np.ndarray:
    """Log-normal factors of mean 1 and variance ``variance`` (one for all draws, or one per draw) from standard
    normal draws ``z``: ``exp(s z - s^2 / 2)``, ``s^2 = log(1 + variance)`` (a CTR's error factor is never
    negative)."""
    s2 = np.log1p(np.maximum(variance, 0.0))
    return np.exp(np.sqrt(s2) * z - s2 / 2.0)


def _verified_ratio(points: pd.DataFrame, level: float) -> float:
    """The ``level`` quantile, by impressions, of the held-out creatives' predicted ratios ``pi_c``
    (``contrast_points``): the contrasts the backtest has seen land. A proposal's predicted ratio is credited up
    to it and no further, since how the judge's contrast carries beyond the creatives the logs showed is
    measured by nothing (infinite without contrast points)."""
    if "contrast_weight" not in points or not (points["contrast_weight"] > 0).any():
        return math.inf
    seen = points[points["contrast_weight"] > 0].sort_values("predicted_ratio")
    cumulative = seen["contrast_weight"].cumsum().to_numpy() / seen["contrast_weight"].sum()
    return float(seen["predicted_ratio"].to_numpy()[np.searchsorted(cumulative, level)])


def best_product_bound(verified: float, gammas: np.ndarray, factors: np.ndarray, level: float) -> float:
    """The lower bound (``_product_lifts``) of a product whose proposal is credited the largest verified ratio
    ``verified``: a proposal the judge rates higher gains no more credit, so where this is at or below 0 (and the
    calibration draws ``gammas`` do not have the judge backwards) do no harm keeps every product, whichever
    combinations the judge picks; only a backtest that verifies larger contrasts with less error (more logged
    creatives and impressions) or a live test can change that. NaN when no ratio was verified."""
    if not math.isfinite(verified):
        return math.nan
    return float(np.quantile(_recalibrated(verified, gammas) * factors - 1.0, (1.0 - level) / 2.0))


def _disagreement(rows: pd.DataFrame) -> float:
    """How far one judge's predicted ratio for a proposal may lie from the truth, by what two judges fitted on
    disjoint halves of the logs say of the same proposals: with ``d_p = log(pi_chooser / pi_grader)`` per
    product (``_product_ratios`` of each judge), ``sqrt(exp(var(d) / 2) - 1)``, the relative spread of one
    judge's error if the two err independently and alike. ``var`` is taken about the mean: the chooser's
    predictions are biased upwards by its own choice (the optimiser's curse), an offset that is not the
    grader's error. 0 with fewer than 3 products."""
    grader = _product_ratios(rows)["pi"]
    chooser = _product_ratios(chooser_rows(rows))["pi"]
    both = (grader > 0) & (chooser > 0)
    if both.sum() < 3:
        return 0.0
    gap = np.log(chooser[both].to_numpy(dtype=float) / grader[both].to_numpy(dtype=float))
    return math.sqrt(math.expm1(float(np.var(gap, ddof=1)) / 2.0))


def chooser_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (``_fold_rows``) with the judge that chose the proposals as the one whose predictions
    ``_product_ratios`` reads."""
    return rows.assign(q_target=rows["chooser_target"], q_logged=rows["chooser_logged"])


def _product_ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """Per product of ``rows``: ``impressions``, ``clicks`` and ``pi``, the grader's predicted ratio of the proposal
    to the logged creatives (``mean(q_target) / mean(q_logged)`` in each fold, one grader each, averaged over the
    folds by impressions, so that the graders' different errors on the product's level cancel); ``pi`` is NaN
    where the grader predicts no click for the logged creatives."""
    per_fold = rows.groupby(["product_id", "fold"], sort=True).agg(
        impressions=("q_target", "size"), clicks=("click", "sum"), target=("q_target", "mean"),
        logged=("q_logged", "mean"))
    weighted = (per_fold["target"] / per_fold["logged"]).where(per_fold["logged"] > 0) * per_fold["impressions"]
    known = per_fold["impressions"].where(per_fold["logged"] > 0)
    out = per_fold.groupby(level=0)[["impressions", "clicks"]].sum()
    out["pi"] = weighted.groupby(level=0).sum(min_count=1) / known.groupby(level=0).sum(min_count=1)
    return out


def _product_lifts(ratios: pd.DataFrame, proposals: pd.DataFrame, gamma: tuple[float, float], gammas: np.ndarray,
                   factors: np.ndarray, level: float) -> pd.DataFrame:
    """Per proposed product, its lift by the grading judge's predicted contrast, recalibrated, with its interval,
    and ``keep_current`` where the lower bound is not above 0.

    With ``pi`` the product's predicted ratio (``_product_ratios``), the lift is
    ``(1 + gamma (pi - 1)) (1 + e_w) - 1`` (``gamma``: the backtest's ``(gamma, e_w)``); its interval takes the
    quantiles of the same with ``(gamma*_b, e_w*_b)`` of each resample of the backtest's creatives (``gammas``),
    times ``g_b``, a log-normal factor of
    variance ``tau_w^2`` at its upper bound (``factors``: the judge's error on one new creative's contrast in
    full, as large as the backtest allows). A ratio of two predictions of one judge for one product: the
    judge's error on the product's level and the binomial noise of the product's few clicks leave it; the error
    on the contrast, which decides harm, stays.
    """
    out = []
    for pid in sorted(set(proposals["product_id"])):
        count = int(ratios["impressions"].get(pid, 0))
        pi = float(ratios["pi"].get(pid, math.nan))
        if not math.isfinite(pi):
            out.append((pid, count, math.nan, math.nan, math.nan))
            continue
        spread = _recalibrated(pi, gammas) * factors - 1.0
        low, high = np.quantile(spread, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
        out.append((pid, count, float(_recalibrated(pi, np.array([gamma]))[0]) - 1.0, float(low), float(high)))
    frame = pd.DataFrame(out, columns=["product_id", "impressions", "lift", "lift_low", "lift_high"])
    frame["keep_current"] = ~(frame["lift_low"] > 0)
    return frame


def _recalibrated(pi: np.ndarray | float, calibrations: np.ndarray) -> np.ndarray:
    """``max(1 + gamma (pi - 1), 0) (1 + e_w)`` for each row ``(gamma, e_w)`` of ``calibrations``: one row per
    calibration, one column per ``pi`` (a scalar ``pi`` gives one value per row)."""
    gamma, local = calibrations[:, :1], calibrations[:, 1:2]
    values = np.maximum(1.0 + gamma * (np.atleast_1d(pi)[None, :] - 1.0), 0.0) * (1.0 + local)
    return values[:, 0] if np.ndim(pi) == 0 else values


def _set_lift(views: Sequence[pd.DataFrame], launched: set[str],
              slopes: Sequence[tuple[tuple[float, float], np.ndarray]], variances: np.ndarray, level: float,
              rng: np.random.Generator) -> LiftInterval:
    """The lift of a set that launches the proposals of ``launched`` and keeps what runs now elsewhere.

    With ``C_p`` the product's logged clicks (its traffic times its logging CTR) and
    ``l_p = (1 + gamma (pi_p - 1)) (1 + e_w) - 1`` for a launched product (0 for a kept one), the lift is
    ``sum_p C_p (1 + l_p) / sum_p C_p - 1``. Its interval takes the quantiles over draws ``b`` of the same with
    ``C*_pb ~ Binomial(n_p, C_p / n_p)`` (the logs' noise), ``gamma*_b``, ``e_w*_b`` and ``tau*_b`` of one
    resample of the backtest's creatives (an error all products share) and, per launched product, its own
    log-normal factor ``g_pb`` of variance ``tau*_b^2`` (one creative's error, independent between products, so
    that it averages out over many).

    ``views``: ``_product_ratios`` frames of the same rows, each with its own ``pi`` (the grader's, and the
    chooser's: module docstring, "Two views of the set's contrast"). With more than one, every view takes the
    same draws, the estimate is the views' mean and the interval the union of theirs (it holds the lift whichever
    view's assumption holds).

    ``slopes``: one or more ``(gamma, e_w)`` with their draws ``gammas`` (the measured slope, and the disattenuated
    one: module docstring). With more than one, each takes the same draws too, the estimate is the first slope's and
    the interval the union over slopes and views.
    """
    views = [view[view["clicks"] > 0] for view in views]
    ratios = views[0]
    if ratios.empty:
        return LiftInterval(math.nan, math.nan, math.nan, level)
    clicks, impressions = ratios["clicks"].to_numpy(dtype=float), ratios["impressions"].to_numpy(dtype=float)
    n = len(slopes[0][1])
    resampled = rng.binomial(impressions.astype(np.int64), clicks / impressions, size=(n, len(ratios))).astype(float)
    factors = error_factors(rng.standard_normal((n, len(ratios))), variances[:, None])
    gamma = slopes[0][0]  # the estimate: the first slope's
    estimates, lows, highs = [], [], []
    for view in views:
        pi = view["pi"].reindex(ratios.index).to_numpy(dtype=float)
        moved = (ratios.index.isin(list(launched)) & np.isfinite(pi)).astype(float)
        pi = np.nan_to_num(pi, nan=1.0)
        estimates.append(float((clicks * (1.0 + moved * (_recalibrated(pi, np.array([gamma]))[0] - 1.0))).sum()
                               / clicks.sum() - 1.0))
        for _, gammas in slopes:
            own = _recalibrated(pi, gammas) * factors - 1.0
            with np.errstate(divide="ignore", invalid="ignore"):
                lifts = (resampled * (1.0 + moved * own)).sum(axis=1) / resampled.sum(axis=1) - 1.0
            lifts = lifts[np.isfinite(lifts)]
            low, high = (np.quantile(lifts, [(1.0 - level) / 2.0, (1.0 + level) / 2.0]) if len(lifts)
                         else (math.nan,) * 2)
            lows.append(float(low))
            highs.append(float(high))
    return LiftInterval(float(np.mean(estimates)), float(np.min(lows)), float(np.max(highs)), level)  # NaN stays NaN


def supported_part(market: Market, proposals: pd.DataFrame, judges: Sequence[Judge], folds: dict[str, int],
                   policy: ProposalPolicy, config: EvidenceConfig, log: pd.DataFrame | None = None) -> SupportedPart:
    """How much of the final proposals' value the logs show directly, and how much rests on a judge alone.

    A product is supported when the logs hold impressions of a creative its proposals show. On the supported
    products' impressions the proposals are valued by IPS, SNIPS and DR with Kish's effective sample size; DR's
    model for a supported product is the judge not fitted on the proposed creative's clicks (one judge for all
    the product's impressions, so its correction stays unbiased). On the other products only a judge speaks
    (the direct method, each impression predicted by the judge not fitted on it): that part is extrapolation.
    Without propensities (``logged_impressions``) the shares are given and the estimators are None. ``log``: the
    market's ``logged_impressions`` when the caller has read them already.
    """
    log = logged_impressions(market, propensities=False) if log is None else log  # one read for both judges
    graded = [policy_arrays(market, proposals, "dr", policy, judge.predict, log=log) for judge in judges]
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
    with_propensities = _has_propensities(log)
    ess, logging_ctr = (0.0 if with_propensities else math.nan), math.nan
    if on.any() and with_propensities:
        for name in ("ips", "snips", "dr"):
            predictions = (q_logged[on], q_target[on]) if name == "dr" else (None, None)
            value, _ = estimate_with_draws(clicks[on], propensity[on], shown[on], name, *predictions,
                                           alpha=1.0 - config.level, n_bootstrap=config.n_bootstrap, seed=config.seed)
            values[name] = Interval(value.value, value.ci_low, value.ci_high)
            ess = value.ess
    if on.any():
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
        weighted=with_propensities,
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

