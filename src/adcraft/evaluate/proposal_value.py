"""Offline value of a proposal set: its CTR estimated from the market's logs, beside the logging policy's.

A proposal set (the output layout's ``creatives.parquet``) becomes a target policy over whole creatives:
``top1`` shows each product's rank-1 combination, ``softmax`` shows rank k with probability
proportional to ``exp(-(k - 1) / temperature)``. Each logged impression of product p that showed
combination a gets ``target_probabilities[i] = pi(a | p)``: the target policy's probability of showing
exactly that combination (0 when the proposals never show it). The off-policy estimators of ``ope``
then weigh the logged clicks by ``pi / pi_0``; only impressions whose creative the proposals also show
carry weight, so a proposal set far from everything logged has a small effective sample size, which the
report says.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from adcraft.errors import InputError
from adcraft.evaluate.ope import PolicyEstimate, estimate_policy_value
from adcraft.market import Market
from adcraft.rewards.data import impression_contexts

Predict = Callable[[Sequence[str], Sequence[Sequence[str]], Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class ProposalPolicy:
    """How a ranked proposal set is turned into a policy (see the module docstring)."""

    kind: str = "top1"  # "top1" | "softmax"
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


@dataclass(frozen=True)
class ProposalValue:
    """The estimated CTR of the proposals and of the logging policy, on the same logs."""

    proposals: PolicyEstimate
    logging: PolicyEstimate
    matched_impressions: int
    impressions: int
    policy: ProposalPolicy

    @property
    def lift(self) -> float:
        """Relative lift of the proposals' estimated CTR over the logging policy's."""
        return self.proposals.value / self.logging.value - 1.0 if self.logging.value > 0 else float("nan")

    def to_json(self) -> dict:
        return {
            "proposals": asdict(self.proposals),
            "logging": asdict(self.logging),
            "lift": self.lift,
            "matched_impressions": self.matched_impressions,
            "impressions": self.impressions,
            "policy": asdict(self.policy),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, allow_nan=True)


def combination_key(elements: Sequence[str]) -> str:
    return "\x1f".join(elements)


def logged_impressions(market: Market) -> pd.DataFrame:
    """Impressions with product, combination, context and propensity; refuses logs without propensities."""
    imp = market.impressions
    if imp is None or imp.empty:
        raise InputError("off-policy estimation needs event-level impressions (impressions.parquet)")
    if "propensity" not in imp or imp["propensity"].isna().any():
        raise InputError(
            "the impressions have no logged propensities: off-policy estimation needs, for every "
            "impression, the logging policy's probability of the creative it showed (column propensity)"
        )
    creatives = market.creatives.set_index("creative_id")
    out = pd.DataFrame(
        {
            "product_id": creatives.loc[imp["creative_id"], "product_id"].to_numpy(),
            "elements": creatives.loc[imp["creative_id"], "elements"].to_numpy(),
            "context": impression_contexts(imp).to_numpy(),
            "click": imp["click"].to_numpy(dtype=float),
            "propensity": imp["propensity"].to_numpy(dtype=float),
        }
    )
    out["key"] = [combination_key(e) for e in out["elements"]]
    return out


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
) -> PolicyArrays:
    """The arrays the off-policy estimators read, for a proposal set on a market's logs."""
    log = logged_impressions(market)
    unknown = sorted(set(proposals["product_id"]) - set(market.products["product_id"]))
    if unknown:
        raise InputError(f"proposals name products the market does not have: {unknown[:5]}")
    target = policy.probabilities(proposals)
    lookup = dict(zip(zip(target["product_id"], target["key"]), target["probability"]))
    target_probs = np.array([lookup.get((p, k), 0.0) for p, k in zip(log["product_id"], log["key"])])
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
) -> ProposalValue:
    """Estimate the proposals' CTR and the logging policy's CTR from the market's logs.

    ``predict(product_ids, combos, contexts) -> CTR`` (a reward model) is needed by the model-based
    estimators (dm, dr, switch-dr): it gives q for the logged creative and, averaged over the target
    policy, for the proposals in the impression's context. ``arrays``: the ``policy_arrays`` of these
    proposals when the caller already has them (the reward model is then not asked again).
    """
    policy = policy or ProposalPolicy()
    arrays = arrays or policy_arrays(market, proposals, estimator, policy, predict)
    clicks, propensities = arrays.log["click"].to_numpy(), arrays.log["propensity"].to_numpy()
    value = estimate_policy_value(
        clicks, propensities, arrays.target_probabilities, estimator, arrays.q_logged, arrays.q_target,
        n_bootstrap=n_bootstrap, seed=seed,
    )
    logging = estimate_policy_value(clicks, propensities, propensities, "ips", n_bootstrap=n_bootstrap, seed=seed)
    return ProposalValue(value, logging, int((arrays.target_probabilities > 0).sum()), len(arrays.log), policy)


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
    so the shared noise of r cancels). Products without logged impressions get NaN. ``arrays`` as in
    :func:`estimate_proposals`.
    """
    from adcraft.evaluate.ope import resolve_estimator

    chosen = resolve_estimator(estimator)
    policy = policy or ProposalPolicy()
    arrays = arrays or policy_arrays(market, proposals, estimator, policy, predict)
    clicks = arrays.log["click"].to_numpy(dtype=float)
    terms = chosen.per_sample(
        clicks, arrays.log["propensity"].to_numpy(), arrays.target_probabilities, arrays.q_logged, arrays.q_target
    )
    rng = np.random.default_rng(seed)
    rows = []
    groups = arrays.log.groupby("product_id", sort=True).indices
    for pid in sorted(set(proposals["product_id"])):
        index = groups.get(pid)
        if index is None or len(index) == 0:
            rows.append((pid, 0, np.nan, np.nan, np.nan, np.nan, np.nan))
            continue
        t, r = terms[index], clicks[index]
        draws = rng.integers(0, len(index), size=(n_bootstrap, len(index)))
        with np.errstate(divide="ignore", invalid="ignore"):
            boot = t[draws].mean(axis=1) / r[draws].mean(axis=1) - 1.0
            lift = t.mean() / r.mean() - 1.0 if r.mean() > 0 else np.nan
        boot = boot[np.isfinite(boot)]
        low, high = (np.quantile(boot, [alpha / 2, 1 - alpha / 2]) if len(boot) else (np.nan, np.nan))
        rows.append((pid, len(index), float(r.mean()), float(t.mean()), float(lift), float(low), float(high)))
    return pd.DataFrame(
        rows, columns=["product_id", "impressions", "logged_ctr", "estimated_ctr", "lift", "lift_low", "lift_high"]
    )


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
