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
            "context": imp["context"].fillna("").to_numpy() if "context" in imp else "",
            "click": imp["click"].to_numpy(dtype=float),
            "propensity": imp["propensity"].to_numpy(dtype=float),
        }
    )
    out["key"] = [combination_key(e) for e in out["elements"]]
    return out


def estimate_proposals(
    market: Market,
    proposals: pd.DataFrame,
    estimator: str = "snips",
    policy: ProposalPolicy | None = None,
    predict: Predict | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> ProposalValue:
    """Estimate the proposals' CTR and the logging policy's CTR from the market's logs.

    ``predict(product_ids, combos, contexts) -> CTR`` (a reward model) is needed by the model-based
    estimators (dm, dr, switch-dr): it gives q for the logged creative and, averaged over the target
    policy, for the proposals in the impression's context.
    """
    policy = policy or ProposalPolicy()
    log = logged_impressions(market)
    unknown = sorted(set(proposals["product_id"]) - set(market.products["product_id"]))
    if unknown:
        raise InputError(f"proposals name products the market does not have: {unknown[:5]}")
    target = policy.probabilities(proposals)
    lookup = dict(zip(zip(target["product_id"], target["key"]), target["probability"]))
    target_probs = np.array([lookup.get((p, k), 0.0) for p, k in zip(log["product_id"], log["key"])])
    if not target_probs.any() and estimator.lower().strip() != "dm":
        raise InputError(
            "no logged impression shows a proposed creative, so importance weighting has nothing to weigh; "
            "use the dm estimator with a reward model, or an A/B test"
        )
    q_logged = q_target = None
    if estimator.lower().strip() in ("dm", "dr", "switch-dr"):
        if predict is None:
            raise InputError(f"the {estimator} estimator needs a reward model (--model)")
        q_logged = predict(log["product_id"].tolist(), log["elements"].tolist(), log["context"].tolist())
        q_target = _expected_under_policy(log, target, predict)
    value = estimate_policy_value(
        log["click"].to_numpy(), log["propensity"].to_numpy(), target_probs, estimator, q_logged, q_target,
        n_bootstrap=n_bootstrap, seed=seed,
    )
    logging = estimate_policy_value(
        log["click"].to_numpy(), log["propensity"].to_numpy(), log["propensity"].to_numpy(), "ips",
        n_bootstrap=n_bootstrap, seed=seed,
    )
    return ProposalValue(value, logging, int((target_probs > 0).sum()), len(log), policy)


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
    expected = rows.groupby(["product_id", "context"])["expected"].sum()
    return expected.loc[list(zip(log["product_id"], log["context"]))].to_numpy()
