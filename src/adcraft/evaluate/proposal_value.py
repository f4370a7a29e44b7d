"""Offline value of a proposal set: its CTR estimated from the market's logs, beside the logging policy's.

A proposal set (the output layout's ``creatives.parquet``) becomes a target policy over whole creatives:
``top1`` shows each product's rank-1 combination, ``softmax`` shows rank k with probability
proportional to ``exp(-(k - 1) / temperature)``. Each logged impression of product p that showed
combination a gets ``target_probabilities[i] = pi(a | p)``: the target policy's probability of showing
exactly that combination (0 when the proposals never show it). The logged propensity ``pi_0`` is that of
one creative id, so when several of a product's logged creatives share one combination (a market with
few slots), ``pi(a | p)`` is split evenly among them: the target policy is then a distribution over the
same actions the log's propensities describe, and a proposal set equal to what was logged is estimated
at the logging policy's own CTR. The off-policy estimators of ``ope`` then weigh the logged clicks by
``pi / pi_0``; only impressions whose creative the proposals also show carry weight, so a proposal set
far from everything logged has a small effective sample size, which the output says.

A CTR is a probability: an estimate outside [0, 1] is refused (it says the weights are too large for
the log, not what the proposals would do), intervals are intersected with [0, 1], and an estimate that
rests on fewer than ``MIN_EFFECTIVE_CLICKS`` effective clicks is flagged as not reliable, its intervals
widened to at least the binomial uncertainty of its effective sample (``_widened``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd

from adcraft.errors import InputError
from adcraft.evaluate.ope import PolicyEstimate, effective_sample_size, estimate_with_draws, resolve_estimator
from adcraft.market import Market
from adcraft.market.click_log import impression_contexts

Predict = Callable[[Sequence[str], Sequence[Sequence[str]], Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class ProposalPolicy:
    """How a ranked proposal set is turned into a policy (see the module docstring)."""

    kind: Literal["top1", "softmax"] = "top1"
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("top1", "softmax"):
            raise InputError(f"policy must be top1 or softmax, got {self.kind!r}")
        if not self.temperature > 0:
            raise InputError(f"temperature must be positive, got {self.temperature}")

    def probabilities(self, proposals: pd.DataFrame) -> pd.DataFrame:
        """Per proposal row: product_id, combination key and the policy's probability of showing it."""
        frame = proposals[["product_id", "rank", "elements"]].copy()
        frame["key"] = [combination_key(e) for e in frame["elements"]]
        frame = frame.sort_values(["product_id", "rank"]).drop_duplicates(["product_id", "key"])
        if self.kind == "top1":
            weight = (frame["rank"] == frame.groupby("product_id")["rank"].transform("min")).astype(float)
        else:
            weight = np.exp(-(frame["rank"] - 1) / self.temperature)
        frame["probability"] = weight / weight.groupby(frame["product_id"]).transform("sum")
        return frame[frame["probability"] > 0].reset_index(drop=True)


MIN_EFFECTIVE_CLICKS = 10.0
"""An estimate whose effective sample holds fewer clicks than this (ESS x the logged CTR) is flagged as not
reliable: its interval then describes a handful of clicks, and one more or fewer moves it a lot."""

IMPLAUSIBLE_SUPPORT = 10.0
"""``mean(1 / p_i)`` estimates how many creatives the logging policy chose among (``E_pi0[1 / pi_0] =``
the size of its support); propensities implying this many times more creatives than the market has are
flagged as implausibly small."""


@dataclass(frozen=True)
class ProposalValue:
    """The estimated CTR of the proposals and of the logging policy, on the same logs, and their lift.

    ``lift_ci_low``/``lift_ci_high`` bound the relative lift by a paired bootstrap (both estimates re-run on
    the same resampled impressions); ``warnings`` say why the estimate should not be trusted, if it should
    not (``reliable`` is then False); ``support`` says how much of the log the estimate rests on.
    """

    proposals: PolicyEstimate
    logging: PolicyEstimate
    matched_impressions: int
    impressions: int
    policy: ProposalPolicy
    lift_ci_low: float = math.nan
    lift_ci_high: float = math.nan
    warnings: tuple[str, ...] = ()

    @property
    def lift(self) -> float:
        """Relative lift of the proposals' estimated CTR over the logging policy's (NaN without logged clicks)."""
        return self.proposals.value / self.logging.value - 1.0 if self.logging.value > 0 else math.nan

    @property
    def reliable(self) -> bool:
        return not self.warnings

    @property
    def support(self) -> str:
        """How much of the log the estimate rests on, in words."""
        clicks = self.proposals.ess * self.logging.value
        said = (
            f"{self.matched_impressions} of {self.impressions} logged impressions show a proposed creative; "
            f"the importance weights are worth {self.proposals.ess:.0f} on-policy impressions (Kish's effective "
            f"sample size), about {clicks:.1f} clicks at the logged CTR"
        )
        return said + ("; dm does not weigh them: it rests on the reward model alone"
                       if self.proposals.estimator == "dm" else "")

    def to_json(self) -> dict:
        out = {
            "proposals": asdict(self.proposals),
            "logging": asdict(self.logging),
            "lift": self.lift,
            "lift_ci_low": self.lift_ci_low,
            "lift_ci_high": self.lift_ci_high,
            "matched_impressions": self.matched_impressions,
            "impressions": self.impressions,
            "ess": self.proposals.ess,
            "support": self.support,
            "reliable": self.reliable,
            "warnings": list(self.warnings),
            "policy": asdict(self.policy),
        }
        if not math.isfinite(self.lift):
            out["lift_note"] = "the logged impressions have no click, so a lift relative to the logged CTR is undefined"
        return out


def combination_key(elements: Sequence[str]) -> str:
    return "\x1f".join(elements)


def logged_impressions(market: Market, propensities: bool = True) -> pd.DataFrame:
    """One row per logged impression: product, combination, context, creative, click and propensity.

    With ``propensities`` (what the off-policy estimators need) refuses logs without them. Without, the column
    reads NaN where the market has none, and a market logged only as ``creative_stats`` reads as one row per
    aggregated impression (``clicks`` of a row's ``impressions`` clicked, context ``""``, as ``click_log`` reads
    it), up to ``MAX_EXPANDED_IMPRESSIONS`` rows.
    """
    imp = market.impressions
    if imp is None or imp.empty:
        if propensities:
            raise InputError("off-policy estimation needs event-level impressions (impressions.parquet)")
        imp = _expanded_stats(market)
        propensity = np.full(len(imp), np.nan)
    elif "propensity" not in imp or imp["propensity"].isna().any():
        if propensities:
            raise InputError(
                "the impressions have no logged propensities: off-policy estimation needs, for every "
                "impression, the logging policy's probability of the creative it showed (column propensity)"
            )
        propensity = np.full(len(imp), np.nan)
    else:
        propensity = imp["propensity"].to_numpy(dtype=float)
    creatives = market.creatives.set_index("creative_id")
    out = pd.DataFrame(
        {
            "product_id": creatives.loc[imp["creative_id"], "product_id"].to_numpy(),
            "elements": creatives.loc[imp["creative_id"], "elements"].to_numpy(),
            "context": impression_contexts(imp).to_numpy(),
            "creative_id": imp["creative_id"].to_numpy(),
            "click": imp["click"].to_numpy(dtype=float),
            "propensity": propensity,
        }
    )
    keys = {c: combination_key(e) for c, e in zip(market.creatives["creative_id"], market.creatives["elements"])}
    out["key"] = out["creative_id"].map(keys)  # one key string per creative, not one per impression
    return out


MAX_EXPANDED_IMPRESSIONS = 20_000_000
"""The most aggregated impressions (``creative_stats``) read as one row each (a few GB of rows and predictions)."""


def _expanded_stats(market: Market) -> pd.DataFrame:
    """``creative_stats`` as impressions (``creative_id``, ``click``): per row, ``clicks`` clicked ones and
    ``impressions - clicks`` others. Refuses a market without logs, or with more than
    ``MAX_EXPANDED_IMPRESSIONS`` aggregated impressions."""
    stats = market.creative_stats
    if stats is None or stats.empty:
        raise InputError("the market has no logs: it needs impressions.parquet or creative_stats.parquet")
    counts = stats["impressions"].to_numpy(dtype=np.int64)
    total = int(counts.sum())
    if total > MAX_EXPANDED_IMPRESSIONS:
        raise InputError(f"creative_stats holds {total:,} impressions, more than the {MAX_EXPANDED_IMPRESSIONS:,} "
                         "that can be read as one row each; log impressions at event level instead")
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    clicked = np.arange(total) - starts < np.repeat(stats["clicks"].to_numpy(dtype=np.int64), counts)
    return pd.DataFrame({"creative_id": np.repeat(stats["creative_id"].to_numpy(), counts),
                         "click": clicked.astype(np.int8)})


@dataclass(frozen=True)
class PolicyArrays:
    """Per logged impression: click, logging propensity, target probability and (model-based) predictions."""

    log: pd.DataFrame
    target_probabilities: np.ndarray
    q_logged: np.ndarray | None
    q_target: np.ndarray | None


def policy_arrays(
    market: Market,
    proposals: pd.DataFrame,
    estimator: str,
    policy: ProposalPolicy,
    predict: Predict | None,
    log: pd.DataFrame | None = None,
) -> PolicyArrays:
    """The arrays the off-policy estimators read, for a proposal set on a market's logs. ``log``: the market's
    ``logged_impressions`` when the caller already has them (they are then not read again; read with
    ``propensities=False``, the predictions and target probabilities of logs that have none)."""
    log = logged_impressions(market) if log is None else log
    unknown = sorted(set(proposals["product_id"]) - set(market.products["product_id"]))
    if unknown:
        raise InputError(f"proposals name products the market does not have: {unknown[:5]}")
    target = policy.probabilities(proposals)
    lookup = dict(zip(zip(target["product_id"], target["key"]), target["probability"]))
    # creative ids logged per (product, combination): pi(a | p) is split evenly among them (module docstring)
    sharing = log.groupby(["product_id", "key"])["creative_id"].transform("nunique").to_numpy()
    target_probs = np.array([lookup.get((p, k), 0.0) for p, k in zip(log["product_id"], log["key"])]) / sharing
    if not target_probs.any() and estimator.lower().strip() in ("ips", "snips"):
        raise InputError(
            "no logged impression shows a proposed creative, so importance weighting has nothing to weigh; "
            "use a model-based estimator (dm, dr, switch-dr) with a reward model, or an A/B test"
        )
    q_logged = q_target = None
    if estimator.lower().strip() in ("dm", "dr", "switch-dr"):
        if predict is None:
            raise InputError(f"the {estimator} estimator needs a reward model (--model)")
        q_logged = predict(log["product_id"].tolist(), log["elements"].tolist(), log["context"].tolist())
        q_target = _expected_under_policy(log, target, predict)
    return PolicyArrays(log, target_probs, q_logged, q_target)


def estimate_proposals(
    market: Market,
    proposals: pd.DataFrame,
    estimator: str = "snips",
    policy: ProposalPolicy | None = None,
    predict: Predict | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    arrays: PolicyArrays | None = None,
    alpha: float = 0.05,
) -> ProposalValue:
    """Estimate the proposals' CTR and the logging policy's CTR from the market's logs.

    ``predict(product_ids, combos, contexts) -> CTR`` (a reward model) is needed by the model-based
    estimators (dm, dr, switch-dr): it gives q for the logged creative and, averaged over the target
    policy, for the proposals in the impression's context. ``arrays``: the ``policy_arrays`` of these
    proposals when the caller already has them (the reward model is then not asked again). Intervals are
    ``1 - alpha`` percentile-bootstrap intervals; the lift's is paired (see :class:`ProposalValue`).

    Raises :class:`InputError` when an estimate of a CTR falls outside [0, 1] (weights too large for the log)
    or the weights are degenerate (see :func:`adcraft.evaluate.ope.estimate_policy_value`).
    """
    policy = policy or ProposalPolicy()
    arrays = arrays or policy_arrays(market, proposals, estimator, policy, predict)
    clicks, propensities = arrays.log["click"].to_numpy(), arrays.log["propensity"].to_numpy()
    inputs = (clicks, propensities, arrays.target_probabilities, estimator, arrays.q_logged, arrays.q_target)
    value, draws = estimate_with_draws(*inputs, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)
    # same seed, same rows: each draw of the proposals' value is paired with the logging CTR's on the same resample
    logging, logged = estimate_with_draws(clicks, propensities, propensities, "ips", alpha=alpha,
                                          n_bootstrap=n_bootstrap, seed=seed)
    value, logging = _bounded(value), _bounded(logging)
    with np.errstate(divide="ignore", invalid="ignore"):
        lifts = np.clip(draws, 0.0, 1.0) / logged - 1.0
    lifts = lifts[np.isfinite(lifts)] if logging.value > 0 else np.empty(0)
    low, high = np.quantile(lifts, [alpha / 2, 1 - alpha / 2]) if len(lifts) else (math.nan, math.nan)
    matched = int((arrays.target_probabilities > 0).sum())
    warnings = _warnings(value, logging, arrays, market, estimator)
    if warnings and estimator.lower().strip() != "dm":
        # a bootstrap of a handful of weighted clicks can be as narrow as [0, 0]: no narrower than the
        # data's own binomial uncertainty
        value = _widened(value, alpha)
        if logging.value > 0:
            low = min(low, value.ci_low / logging.value - 1.0)
            high = max(high, value.ci_high / logging.value - 1.0)
    return ProposalValue(value, logging, matched, len(arrays.log), policy, float(low), float(high), warnings)


def _widened(estimate: PolicyEstimate, alpha: float) -> PolicyEstimate:
    """``estimate`` with its interval widened to cover the Wilson score interval of a proportion
    ``estimate.value`` observed on ``estimate.ess`` impressions (Kish's effective sample size standing in
    for n, as in Korn & Graubard, "Confidence intervals for proportions with small expected number of
    positive counts estimated from survey data", Survey Methodology 1998)."""
    n, p = estimate.ess, estimate.value
    if not n > 0:
        return replace(estimate, ci_low=0.0, ci_high=1.0)
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    return replace(estimate, ci_low=max(min(estimate.ci_low, centre - half), 0.0),
                   ci_high=min(max(estimate.ci_high, centre + half), 1.0))


def _bounded(estimate: PolicyEstimate) -> PolicyEstimate:
    """``estimate`` with its interval intersected with [0, 1]; refuses a CTR estimate outside [0, 1]."""
    if not 0.0 <= estimate.value <= 1.0:
        raise InputError(
            f"the {estimate.estimator} estimate of the CTR is {estimate.value:.4g}, outside [0, 1]: the importance "
            f"weights are too large for this log (effective sample size {estimate.ess:.3g} of {estimate.n} "
            "impressions) or the reward model's predictions too far off, so it says nothing about the proposals; "
            "check the logged propensities, or use snips (self-normalised) or another estimator"
        )
    return replace(estimate, ci_low=min(max(estimate.ci_low, 0.0), 1.0),
                               ci_high=min(max(estimate.ci_high, 0.0), 1.0))


def _warnings(value: PolicyEstimate, logging: PolicyEstimate, arrays: PolicyArrays, market: Market,
              estimator: str) -> tuple[str, ...]:
    """Why the estimate should not be trusted, if it should not (see the module docstring)."""
    out = []
    clicks = value.ess * logging.value
    if estimator.lower().strip() != "dm" and clicks < MIN_EFFECTIVE_CLICKS:
        out.append(
            f"the estimate rests on about {clicks:.1f} effective clicks (effective sample size {value.ess:.3g} of "
            f"{value.n} impressions; fewer than {MIN_EFFECTIVE_CLICKS:.0f}): its interval describes too few clicks "
            "to trust; confirm with an A/B test"
        )
    log = arrays.log
    with np.errstate(divide="ignore", over="ignore"):
        implied = float(np.mean(1.0 / log["propensity"].to_numpy()))  # E_pi0[1/pi_0] = size of pi_0's support
    pool = float(np.mean(market.creatives.groupby("product_id").size().reindex(log["product_id"]).fillna(1.0)))
    if implied > IMPLAUSIBLE_SUPPORT * pool:
        out.append(
            f"the logged propensities are implausibly small: they imply the logging policy chose among about "
            f"{implied:.3g} creatives per impression, but the market has {pool:.3g} per product on average"
        )
    return tuple(out)


def lift_by_product(
    market: Market,
    proposals: pd.DataFrame,
    predict: Predict,
    estimator: str = "dr",
    policy: ProposalPolicy | None = None,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    arrays: PolicyArrays | None = None,
) -> pd.DataFrame:
    """Each product's estimated CTR under the proposals, its logged CTR and the relative lift, with intervals.

    Within product p (impressions I_p), ``V_p = mean_{i in I_p} t_i`` with ``t_i`` the per-impression
    terms of the estimator (doubly robust by default: ``q_target_i + w_i (r_i - q_logged_i)``), and the
    lift is ``V_p / mean_{i in I_p} r_i - 1`` (the logging policy's on-policy CTR of p). The interval
    is the percentile bootstrap of that ratio over impressions of p resampled with replacement (paired,
    so the shared noise of r cancels). ``ess`` is the Kish effective sample size of the product's importance
    weights: near 0, the interval describes the logs' noise around the reward model's guess, not evidence
    about the proposal. Products without logged impressions get NaN. ``arrays`` as in :func:`estimate_proposals`.
    """
    chosen = resolve_estimator(estimator)
    policy = policy or ProposalPolicy()
    arrays = arrays or policy_arrays(market, proposals, estimator, policy, predict)
    clicks = arrays.log["click"].to_numpy(dtype=float)
    terms = chosen.per_sample(
        clicks, arrays.log["propensity"].to_numpy(), arrays.target_probabilities, arrays.q_logged, arrays.q_target
    )
    shown = arrays.target_probabilities > 0
    log_weights = np.full(len(shown), -np.inf)  # log space: a propensity near 1e-308 must not overflow
    log_weights[shown] = np.log(arrays.target_probabilities[shown]) - np.log(arrays.log["propensity"].to_numpy()[shown])
    rng = np.random.default_rng(seed)
    rows = []
    groups = arrays.log.groupby("product_id", sort=True).indices
    for pid in sorted(set(proposals["product_id"])):
        index = groups.get(pid)
        if index is None or len(index) == 0:
            rows.append((pid, 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan))
            continue
        t, r = terms[index], clicks[index]
        draws = rng.integers(0, len(index), size=(n_bootstrap, len(index)))
        with np.errstate(divide="ignore", invalid="ignore"):
            boot = t[draws].mean(axis=1) / r[draws].mean(axis=1) - 1.0
            lift = t.mean() / r.mean() - 1.0 if r.mean() > 0 else np.nan
        boot = boot[np.isfinite(boot)]
        low, high = (np.quantile(boot, [alpha / 2, 1 - alpha / 2]) if len(boot) else (np.nan, np.nan))
        rows.append((pid, len(index), float(r.mean()), float(t.mean()), float(lift), float(low), float(high),
                     _product_ess(log_weights[index])))
    return pd.DataFrame(rows, columns=["product_id", "impressions", "logged_ctr", "estimated_ctr", "lift", "lift_low",
                                       "lift_high", "ess"])


def _product_ess(log_weights: np.ndarray) -> float:
    """Kish's effective sample size of weights given by their logarithms (scale-free, so taken relative to the
    largest)."""
    if not np.isfinite(log_weights).any():
        return 0.0
    return effective_sample_size(np.exp(log_weights - log_weights.max()))


def _expected_under_policy(log: pd.DataFrame, target: pd.DataFrame, predict: Predict) -> np.ndarray:
    """sum_a pi(a | p) q(p, a, context) for every impression, computed once per (product, context)."""
    pairs = log[["product_id", "context"]].drop_duplicates()
    rows = pairs.merge(target, on="product_id", how="left")
    value = np.zeros(len(rows))
    has = rows["key"].notna().to_numpy()
    if has.any():
        chosen = rows[has]
        q = predict(chosen["product_id"].tolist(), chosen["elements"].tolist(), chosen["context"].tolist())
        value[has] = q * chosen["probability"].to_numpy()
    rows["expected"] = value
    expected = rows.groupby(["product_id", "context"], as_index=False)["expected"].sum()
    # A merge, not .loc with a list of (product, context) tuples: that list becomes a fixed-width unicode
    # array as wide as the longest context, per impression.
    return log[["product_id", "context"]].merge(expected, on=["product_id", "context"], how="left")[
        "expected"].to_numpy()
