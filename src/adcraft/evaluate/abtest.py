"""Simulated A/B test of a proposal set against the logging policy, scored by a simulated market's truth.

Both arms serve ``impressions`` impressions of the market's traffic: each impression picks product p
with its traffic share s_p, a context x (device, segment) with probability P(x), then a creative a of p
from the arm's policy, and is clicked with the true probability ctr(p, a, x) of the simulator's click
model. The arms:

- control: the logging policy in force at the end of the log, ``pi_0(a | p) = (1 - e) [a == d_p] + e / K_p``
  (``d_p`` the house default after the switch, per device where the world's house defaults depend on it,
  ``e`` the exploration rate, ``K_p`` the product's past creatives);
- treatment: the proposal policy (``ProposalPolicy``: top1 or softmax over ranks) over the product's
  proposals; a product without proposals keeps the control policy.

A proposal is scored from its image (``OUT/<image>``) when that file exists, else from the combination
as the default compositor renders it. Clicks are drawn per (product, creative, context) cell: the cell
counts are multinomial in n and the clicks of a cell binomial in its count and true CTR, which is the
same distribution as n independent Bernoulli impressions at a cost that does not grow with n.

With n impressions per arm, click rates p_c, p_t and z = z_{1-alpha/2}:
(Fieller's interval for the ratio, Fieller 1954, *J. R. Stat. Soc. B* 16, contains r = 1 exactly when the
difference's interval contains 0, so the lift and the difference never disagree on significance, as the
delta method's symmetric interval could near the boundary; it is unbounded when p_c is not itself
distinguishable from 0.)

    difference   d = p_t - p_c,  CI  d +- z sqrt(p_c q_c / n + p_t q_t / n)
    p-value      2 (1 - Phi(|d| / sqrt(2 p q / n))),  p = (clicks_c + clicks_t) / 2n   (pooled z-test)
    lift         L = p_t / p_c - 1,  CI  {r - 1 : (p_t - r p_c)^2 <= z^2 (p_t q_t / n + r^2 p_c q_c / n)}   (Fieller)

and the impressions per arm a two-sided z-test at alpha needs to detect the true difference with
probability ``power`` (Fleiss, *Statistical Methods for Rates and Proportions*, 1981, eq. 3.14 without
continuity correction):

    n = (z_{1-alpha/2} sqrt(2 pbar qbar) + z_{power} sqrt(p1 q1 + p2 q2))^2 / (p2 - p1)^2,  pbar = (p1 + p2) / 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from numbers import Real
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from PIL import Image

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.evaluate.proposal_value import ProposalPolicy, combination_key
from adcraft.market import Market
from adcraft.market.images import open_image, resolve_inside
from adcraft.market.outputs import kept_products
from adcraft.render.from_market import MarketRenderer
from adcraft.simulator.click_model import contexts
from adcraft.simulator.truth import GroundTruth

Choice = tuple[Sequence[str], float | Sequence[float], Image.Image | Path | None]
"""One creative a policy may show for a product: (element ids, probability (one, or one per context of
``contexts()`` for a policy that depends on the context), image: a PIL image, a path to one, or None to
render the combination with the default compositor)."""

NO_DIFFERENCE = 1e-9  # true CTR differences below one click per 10^9 impressions count as none


@dataclass(frozen=True)
class ABTestConfig:
    """Size and randomness of a simulated A/B test; ``alpha`` and ``power`` set its intervals and sample size."""

    impressions: int = 100_000  # per arm
    seed: int = 0
    alpha: float = 0.05
    power: float = 0.8

    def __post_init__(self) -> None:
        check_config(self)
        if isinstance(self.impressions, bool) or not isinstance(self.impressions, (int, np.integer)):
            raise InputError(f"impressions must be a whole number, got {self.impressions!r}")
        if self.impressions < 1:
            raise InputError(f"impressions (per arm) must be at least 1, got {self.impressions}")
        _check_probability("alpha", self.alpha)
        _check_probability("power", self.power)


@dataclass(frozen=True)
class ABTestResult:
    """Observed and true outcome of one simulated A/B test (formulas in the module docstring)."""

    control_ctr: float
    treatment_ctr: float
    lift: float  # relative: treatment / control - 1
    lift_ci_low: float
    lift_ci_high: float
    absolute_diff: float
    diff_ci_low: float
    diff_ci_high: float
    p_value: float
    impressions_per_arm: int
    clicks_control: int
    clicks_treatment: int
    true_control_ctr: float
    true_treatment_ctr: float
    true_lift: float
    impressions_needed: int | None  # per arm, to detect the true difference; None when there is none
    treated_traffic_share: float  # traffic share of the products that have proposals
    alpha: float
    power: float

    def to_json(self) -> dict:
        """The fields, with a note on each relative lift that is undefined (written as null by ``write_json``)."""
        out = asdict(self)
        if not math.isfinite(self.lift):
            out["lift_note"] = "the control arm got no click, so a lift relative to its CTR is undefined"
        if not math.isfinite(self.true_lift):
            out["true_lift_note"] = "the control policy's true CTR is 0, so a true relative lift is undefined"
        return out


def required_impressions(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Impressions per arm for a two-sided two-proportion z-test at ``alpha`` to detect p1 vs p2 with ``power``.

    ``n = (z_{1-alpha/2} sqrt(2 pbar qbar) + z_power sqrt(p1 q1 + p2 q2))^2 / (p2 - p1)^2`` rounded up,
    ``pbar = (p1 + p2) / 2`` (Fleiss 1981, no continuity correction). None when p1 and p2 do not differ.
    """
    _check_probability("alpha", alpha)
    _check_probability("power", power)
    for name, value in (("p1", p1), ("p2", p2)):
        if not 0.0 <= value <= 1.0:
            raise InputError(f"{name} must be a click rate in [0, 1], got {value}")
    difference = abs(p2 - p1)
    if difference < NO_DIFFERENCE:
        return None
    normal = NormalDist()
    pbar = (p1 + p2) / 2
    spread = (normal.inv_cdf(1 - alpha / 2) * math.sqrt(2 * pbar * (1 - pbar))
              + normal.inv_cdf(power) * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2)))
    return math.ceil(spread**2 / difference**2)


def true_policy_ctr(truth: GroundTruth, market: Market, per_product: Mapping[str, Sequence[Choice]]) -> float:
    """True CTR of a policy: ``sum_p s_p sum_a pi(a|p) sum_x P(x) ctr(p, a, x) / sum_p s_p``.

    ``per_product`` maps each product to the creatives the policy shows (element ids, probability,
    image, a path to one, or None to render the combination); the traffic shares are renormalised over
    the products it names.
    """
    return _ArmTable.build(truth, MarketRenderer(market), market, per_product).true_ctr()


def logging_policy_choices(market: Market, truth: GroundTruth) -> dict[str, list[Choice]]:
    """The control arm: per product, its past creatives with the end-of-log logging policy's probabilities."""
    if market.creatives is None or market.creatives.empty:
        raise InputError("the A/B test's control arm needs the market's past creatives (creatives.parquet)")
    policy = truth.simulation.get("logging_policy", {})
    if "exploration" not in policy or "default_after" not in policy:
        raise InputError("the truth's simulation.json has no logging policy (exploration, default_after)")
    exploration = float(policy["exploration"])
    defaults = policy["default_after"]
    by_device = policy.get("default_after_by_device")  # house defaults that depend on the device
    traffic = [c for c, _ in contexts()]
    choices: dict[str, list[Choice]] = {}
    for product_id, pool in market.creatives.groupby("product_id", sort=True):
        if product_id not in defaults:
            raise InputError(f"the truth has no house default creative for product '{product_id}'")
        k = len(pool)
        rows: list[Choice] = []
        for creative_id, elements, image in zip(pool["creative_id"], pool["elements"], pool["image"]):
            if by_device:
                probability: float | list[float] = [
                    (1 - exploration) * (creative_id == by_device[c["device"]][product_id]) + exploration / k
                    for c in traffic
                ]
            else:
                probability = (1 - exploration) * (creative_id == defaults[product_id]) + exploration / k
            rows.append((list(elements), probability, market.resolve(image) if isinstance(image, str) else None))
        choices[str(product_id)] = rows
    return choices


def proposal_policy_choices(
    proposals: pd.DataFrame, proposals_dir: Path | None, policy: ProposalPolicy
) -> dict[str, list[Choice]]:
    """The treatment arm's products with proposals: the policy's combinations, each with its image if on disk."""
    missing = [name for name in ("product_id", "rank", "elements") if name not in proposals.columns]
    if missing:
        raise InputError(f"proposals: missing column(s) {', '.join(missing)}")
    if proposals.empty:
        raise InputError("proposals: no rows; the A/B test needs at least one proposed creative")
    images: dict[tuple[str, str], Path] = {}
    if proposals_dir is not None and "image" in proposals.columns:
        ordered = proposals.sort_values(["product_id", "rank"], kind="stable")
        for product_id, elements, image in zip(ordered["product_id"], ordered["elements"], ordered["image"]):
            if isinstance(image, str) and image:
                path = resolve_inside(Path(proposals_dir), image)
                if path.is_file():
                    images.setdefault((product_id, combination_key(elements)), path)
    target = policy.probabilities(proposals)
    choices: dict[str, list[Choice]] = {}
    for product_id, key, elements, probability in zip(
        target["product_id"], target["key"], target["elements"], target["probability"]
    ):
        choices.setdefault(str(product_id), []).append(
            (list(elements), float(probability), images.get((product_id, key)))
        )
    return choices


def run_ab_test(
    market: Market,
    truth: GroundTruth,
    proposals: pd.DataFrame,
    proposals_dir: Path | None = None,
    policy: ProposalPolicy | None = None,
    config: ABTestConfig | None = None,
) -> ABTestResult:
    """Serve the logging policy (control) and the proposals (treatment) to simulated traffic and compare them.

    A product whose rank 1 is marked ``kept`` (``optimize``'s do no harm: nothing is launched for it) keeps the
    logging policy in the treatment arm too."""
    policy = policy or ProposalPolicy()
    config = config or ABTestConfig()
    kept = kept_products(proposals) if {"rank", "product_id"} <= set(proposals.columns) else set()
    launched = proposals[~proposals["product_id"].isin(kept)] if kept else proposals
    every_product_kept = len(proposals) > 0 and len(launched) == 0
    proposed = {} if every_product_kept else proposal_policy_choices(launched, proposals_dir, policy)
    unknown = sorted(set(proposed) - set(market.products["product_id"]))
    if unknown:
        raise InputError(f"proposals name products the market does not have: {unknown[:5]}")
    control_choices = logging_policy_choices(market, truth)
    treatment_choices = {**control_choices, **proposed}

    renderer, scored = MarketRenderer(market), {}
    control = _ArmTable.build(truth, renderer, market, control_choices, scored)
    treatment = _ArmTable.build(truth, renderer, market, treatment_choices, scored)
    rng = np.random.default_rng(config.seed)
    n = config.impressions
    clicks_c, clicks_t = control.sample_clicks(n, rng), treatment.sample_clicks(n, rng)

    true_c, true_t = control.true_ctr(), treatment.true_ctr()
    shares = _traffic_shares(truth, list(treatment_choices))
    return ABTestResult(
        **_compare(clicks_c, clicks_t, n, config.alpha),
        impressions_per_arm=n,
        clicks_control=clicks_c,
        clicks_treatment=clicks_t,
        true_control_ctr=true_c,
        true_treatment_ctr=true_t,
        true_lift=true_t / true_c - 1 if true_c > 0 else math.nan,
        impressions_needed=required_impressions(true_c, true_t, config.alpha, config.power),
        treated_traffic_share=float(sum(shares[p] for p in proposed) / sum(shares.values())),
        alpha=config.alpha,
        power=config.power,
    )


@dataclass(frozen=True)
class _ArmTable:
    """Every (product, creative) an arm can show: its probability per impression and true CTR per context."""

    probability: np.ndarray  # (rows, contexts): s_p pi(a | p, x), each context's column summing to 1
    ctr: np.ndarray  # (rows, contexts): ctr(p, a, x)
    context_probability: np.ndarray  # (contexts,): P(x)

    @classmethod
    def build(
        cls,
        truth: GroundTruth,
        renderer: MarketRenderer,
        market: Market,
        per_product: Mapping[str, Sequence[Choice]],
        scored: dict[tuple, list[float]] | None = None,
    ) -> _ArmTable:
        """The arm's table; ``scored`` keeps CTRs by (product, combination, image file) across arms."""
        scored = {} if scored is None else scored
        if not per_product:
            raise InputError("a policy needs at least one product to show creatives for")
        shares = _traffic_shares(truth, list(per_product))
        traffic = list(contexts())
        total_share = sum(shares.values())
        probability, ctr = [], []
        for product_id, choices in per_product.items():
            per_context = [np.broadcast_to(np.asarray(p, dtype=float), (len(traffic),)) for _, p, _ in choices]
            mass = np.sum(per_context, axis=0)
            if not np.allclose(mass, 1.0, rtol=0.0, atol=1e-6) or any((p < 0).any() for p in per_context):
                shown = float(mass[0]) if np.ptp(mass) == 0 else mass.tolist()
                raise InputError(
                    f"the policy's probabilities for product '{product_id}' must be >= 0 and sum to 1, got {shown}"
                )
            for (elements, _, image), p in zip(choices, per_context):
                probability.append(shares[product_id] / total_share * p)
                if isinstance(image, Image.Image):
                    ctr.append(_true_ctr_by_context(truth, renderer, market, product_id, elements, image))
                    continue
                key = (product_id, combination_key(elements), image)
                if key not in scored:
                    scored[key] = _true_ctr_by_context(truth, renderer, market, product_id, elements, image)
                ctr.append(scored[key])
        probability = np.asarray(probability)
        return cls(probability / probability.sum(axis=0), np.asarray(ctr), np.array([p for _, p in traffic]))

    def true_ctr(self) -> float:
        """``sum_rows sum_x probability * P(x) * ctr``: the arm's expected click rate."""
        return float(np.sum(self.probability * self.ctr * self.context_probability))

    def sample_clicks(self, n: int, rng: np.random.Generator) -> int:
        """Clicks of n impressions: multinomial cell counts, then binomial clicks per cell."""
        cells = (self.probability * self.context_probability).ravel()
        counts = rng.multinomial(n, cells / cells.sum())
        return int(rng.binomial(counts, self.ctr.ravel()).sum())


def _true_ctr_by_context(
    truth: GroundTruth,
    renderer: MarketRenderer,
    market: Market,
    product_id: str,
    elements: Sequence[str],
    image: Image.Image | Path | None,
) -> list[float]:
    """``truth.ctr_of_image`` in each context of ``contexts()``, measuring the image once."""
    if isinstance(image, Path):
        image = open_image(image, market.limits)
    elif image is None:
        image = renderer.render(product_id, list(elements)).image
    return truth.ctr_by_context_of_image(product_id, list(elements), image)


def _traffic_shares(truth: GroundTruth, product_ids: list[str]) -> dict[str, float]:
    shares = dict(zip(truth.products["product_id"], truth.products["traffic_share"].astype(float)))
    unknown = [p for p in product_ids if p not in shares]
    if unknown:
        raise InputError(f"the truth has no traffic share for product(s) {unknown[:5]}: is it this market's truth?")
    return {p: shares[p] for p in product_ids}


def fieller_lift_interval(p_t: float, p_c: float, var_t: float, var_c: float, z: float) -> tuple[float, float]:
    """Interval of the relative lift ``p_t / p_c - 1`` by Fieller's theorem (module docstring): the ratios r with
    ``(p_t - r p_c)^2 <= z^2 (var_t + r^2 var_c)``, i.e. ``a r^2 - 2 b r + c <= 0``.

    With ``a > 0`` that set is an interval. With ``a <= 0`` (the control rate is not distinguishable from 0)
    it is unbounded: the whole line when it holds r = 1, else two rays, of which the one holding the
    estimate ``p_t / p_c`` is returned (ratios below 0 are cut at a lift of -1). NaN when ``p_c`` is 0.
    """
    if p_c <= 0:
        return math.nan, math.nan
    a = p_c**2 - z**2 * var_c
    b = p_t * p_c
    c = p_t**2 - z**2 * var_t
    if a > 0:
        root = math.sqrt(max(b**2 - a * c, 0.0))
        return (b - root) / a - 1, (b + root) / a - 1
    if a - 2 * b + c <= 0:  # r = 1 satisfies the inequality: no lift is excluded
        return -1.0, math.inf
    if a == 0:  # -2 b r + c <= 0 with b > 0 (else r = 1 would hold): r >= c / 2b
        return c / (2 * b) - 1, math.inf
    root = math.sqrt(max(b**2 - a * c, 0.0))
    low_root, high_root = sorted(((b + root) / a, (b - root) / a))
    if p_t / p_c >= high_root:
        return high_root - 1, math.inf
    return -1.0, max(low_root - 1, -1.0)


def _compare(clicks_c: int, clicks_t: int, n: int, alpha: float) -> dict[str, float]:
    """Observed rates, their difference and relative lift with CIs, and the pooled z-test's p-value."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p_c, p_t = clicks_c / n, clicks_t / n
    var_c, var_t = p_c * (1 - p_c) / n, p_t * (1 - p_t) / n
    diff = p_t - p_c
    se_diff = math.sqrt(var_c + var_t)
    pooled = (clicks_c + clicks_t) / (2 * n)
    se_null = math.sqrt(2 * pooled * (1 - pooled) / n)
    p_value = 2 * (1 - NormalDist().cdf(abs(diff) / se_null)) if se_null > 0 else 1.0
    lift = p_t / p_c - 1 if p_c > 0 else math.nan
    lift_low, lift_high = fieller_lift_interval(p_t, p_c, var_t, var_c, z)
    return {
        "control_ctr": p_c,
        "treatment_ctr": p_t,
        "lift": lift,
        "lift_ci_low": lift_low,
        "lift_ci_high": lift_high,
        "absolute_diff": diff,
        "diff_ci_low": diff - z * se_diff,
        "diff_ci_high": diff + z * se_diff,
        "p_value": p_value,
    }


def _check_probability(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 < value < 1.0:
        raise InputError(f"{name} must be strictly between 0 and 1, got {value!r}")
