"""Off-policy estimators: the value of a target policy from impressions logged under another.

Row i is one logged impression: the logging policy pi_0 showed creative a_i in context x_i with
propensity ``p_i = pi_0(a_i|x_i)`` and observed reward ``r_i`` (a click, or any real number). The
target policy would have shown that same creative with probability ``pi(a_i|x_i)``
(``target_probabilities[i]``), so the importance weight is ``w_i = pi(a_i|x_i) / p_i``. Model-based
estimators also take ``reward_predictions[i] = q(x_i, a_i)``, a reward model's prediction for the
logged creative, and ``target_reward_predictions[i] = sum_a pi(a|x_i) q(x_i, a)``, its expected
reward under the target policy in that context.

Every estimator is a frozen dataclass whose configuration is checked on construction; its
``estimate`` is ``mean(numerator) / mean(denominator)`` of per-row terms (the denominator is 1
except for SNIPS), which lets :func:`estimate_policy_value` bootstrap any of them by resampling
rows. NumPy only, after Open Bandit Pipeline's ``obp.ope`` (Saito et al., 2021).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from adcraft.errors import InputError

__all__ = [
    "ESTIMATORS",
    "IPS",
    "SNIPS",
    "DirectMethod",
    "DoublyRobust",
    "OffPolicyEstimator",
    "OffPolicyInputError",
    "PolicyEstimate",
    "SwitchDR",
    "effective_sample_size",
    "estimate_policy_value",
    "estimate_with_draws",
]

# Bootstrap draws are processed in blocks of at most this many resampled row indices, which
# bounds memory (~16 MB of int32 indices plus one gathered float64 block) whatever n is.
_BOOTSTRAP_BLOCK_INDICES = 4_000_000


class OffPolicyInputError(InputError, ValueError):
    """Logged arrays or an estimator's settings break a rule (also a ``ValueError``)."""


@dataclass(frozen=True, eq=False)
class _LoggedImpressions:
    """The checked float64 arrays of one log; ``weights`` are ``pi(a_i|x_i) / p_i``."""

    rewards: np.ndarray
    logging_propensities: np.ndarray
    target_probabilities: np.ndarray
    reward_predictions: np.ndarray | None
    target_reward_predictions: np.ndarray | None

    @property
    def weights(self) -> np.ndarray:
        """``pi(a_i|x_i) / p_i``; refuses a log where one overflows float64 (a propensity near 1e-308)."""
        with np.errstate(over="ignore"):
            weights = self.target_probabilities / self.logging_propensities
        overflow = np.isinf(weights)
        if overflow.any():
            first = int(np.flatnonzero(overflow)[0])
            raise OffPolicyInputError(
                f"the importance weight target_probabilities / logging_propensities overflows at position "
                f"{first} ({self.target_probabilities[first]!r} / {self.logging_propensities[first]!r}): a "
                "propensity this small says the logging policy (almost) never shows the creative, so the "
                "log cannot be reweighed towards it"
            )
        return weights

    @property
    def relative_weights(self) -> np.ndarray:
        """``w_i / max_j w_j``, computed in log space so that it is finite even where ``w_i`` overflows.

        Every scale-free quantity (SNIPS, the effective sample size) reads these: multiplying all
        weights by one constant changes neither.
        """
        positive = self.target_probabilities > 0
        log_weights = np.full(self.n, -np.inf)
        log_weights[positive] = np.log(self.target_probabilities[positive]) - np.log(
            self.logging_propensities[positive]
        )
        if not positive.any():
            return np.zeros(self.n)
        return np.exp(log_weights - log_weights.max())

    @property
    def n(self) -> int:
        return len(self.rewards)


def _finite_vector(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a 1-d float64 array of finite numbers."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise OffPolicyInputError(f"{name} must be numeric: {error}") from None
    if array.ndim != 1:
        raise OffPolicyInputError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise OffPolicyInputError(f"{name} must be finite, found {array[first]!r} at position {first}")
    return array


def _logged_impressions(
    rewards: ArrayLike,
    logging_propensities: ArrayLike,
    target_probabilities: ArrayLike,
    reward_predictions: ArrayLike | None,
    target_reward_predictions: ArrayLike | None,
) -> _LoggedImpressions:
    """Check and convert the arrays every estimator takes; raises :class:`OffPolicyInputError`."""
    arrays = {
        "rewards": _finite_vector(rewards, "rewards"),
        "logging_propensities": _finite_vector(logging_propensities, "logging_propensities"),
        "target_probabilities": _finite_vector(target_probabilities, "target_probabilities"),
    }
    for name, values in (
        ("reward_predictions", reward_predictions),
        ("target_reward_predictions", target_reward_predictions),
    ):
        if values is not None:
            arrays[name] = _finite_vector(values, name)
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise OffPolicyInputError(f"the logged arrays must have the same length, got {described}")
    if lengths["rewards"] == 0:
        raise OffPolicyInputError("the log is empty: rewards has no rows")
    propensities = arrays["logging_propensities"]
    outside = (propensities <= 0.0) | (propensities > 1.0)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise OffPolicyInputError(
            f"logging_propensities must lie in (0, 1], found {propensities[first]!r} at position "
            f"{first} (a creative shown with probability 0 cannot have been logged)"
        )
    target = arrays["target_probabilities"]
    outside = (target < 0.0) | (target > 1.0)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise OffPolicyInputError(
            f"target_probabilities must lie in [0, 1], found {target[first]!r} at position {first}"
        )
    return _LoggedImpressions(
        rewards=arrays["rewards"],
        logging_propensities=propensities,
        target_probabilities=target,
        reward_predictions=arrays.get("reward_predictions"),
        target_reward_predictions=arrays.get("target_reward_predictions"),
    )


def effective_sample_size(weights: ArrayLike) -> float:
    """Kish's effective sample size ``(sum_i w_i)^2 / sum_i w_i^2`` (Kish, *Survey Sampling*, 1965).

    ``n`` for equal weights, near 1 when one weight dominates; 0 when every weight is 0 (the
    target policy never shows a logged creative).
    """
    w = _finite_vector(weights, "weights")
    if (w < 0).any():
        raise OffPolicyInputError("weights must be non-negative")
    largest = float(w.max(initial=0.0))
    if largest == 0.0:
        return 0.0
    relative = w / largest  # scale-free, so dividing by the largest weight keeps the squares finite
    return float(np.sum(relative) ** 2 / np.sum(relative * relative))


@dataclass(frozen=True)
class OffPolicyEstimator(ABC):
    """An estimate of ``V(pi) = E_x E_{a~pi(.|x)} [r(x, a)]`` from a log collected under pi_0.

    Subclasses give per-row numerator and (optional) denominator terms; the estimate is
    ``mean(numerator) / mean(denominator)``. ``needs`` names the prediction arrays the estimator
    reads, which are then required.
    """

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def _terms(self, log: _LoggedImpressions) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-row numerator terms and denominator terms (``None`` means all ones)."""

    @property
    def label(self) -> str:
        """The name with any setting that differs from its default, e.g. ``ips(clip=20.0)``."""
        changed = [
            f"{field.name}={getattr(self, field.name)!r}"
            for field in fields(self)
            if getattr(self, field.name) != field.default
        ]
        return f"{self.name}({', '.join(changed)})" if changed else self.name

    def _checked(
        self,
        rewards: ArrayLike,
        logging_propensities: ArrayLike,
        target_probabilities: ArrayLike,
        reward_predictions: ArrayLike | None,
        target_reward_predictions: ArrayLike | None,
    ) -> _LoggedImpressions:
        log = _logged_impressions(
            rewards, logging_propensities, target_probabilities, reward_predictions,
            target_reward_predictions,
        )
        missing = [name for name in self.needs if getattr(log, name) is None]
        if missing:
            raise OffPolicyInputError(
                f"{type(self).__name__} needs {' and '.join(missing)} from a reward model "
                f"(q(x_i, a_i) for the logged creative; sum_a pi(a|x_i) q(x_i, a) for the target)"
            )
        return log

    def _ratio_terms(self, log: _LoggedImpressions) -> tuple[np.ndarray, np.ndarray | None]:
        numerator, denominator = self._terms(log)
        if denominator is not None and not np.sum(denominator) > 0:
            raise OffPolicyInputError(
                f"{type(self).__name__} is undefined: target_probabilities are 0 on every logged "
                "creative, so no row carries weight"
            )
        return numerator, denominator

    def estimate(
        self,
        rewards: ArrayLike,
        logging_propensities: ArrayLike,
        target_probabilities: ArrayLike,
        reward_predictions: ArrayLike | None = None,
        target_reward_predictions: ArrayLike | None = None,
    ) -> float:
        """The estimated value of the target policy (see the class docstring for the formula)."""
        return float(np.mean(self.per_sample(
            rewards, logging_propensities, target_probabilities, reward_predictions,
            target_reward_predictions,
        )))

    def per_sample(
        self,
        rewards: ArrayLike,
        logging_propensities: ArrayLike,
        target_probabilities: ArrayLike,
        reward_predictions: ArrayLike | None = None,
        target_reward_predictions: ArrayLike | None = None,
    ) -> np.ndarray:
        """Per-row terms whose mean is :meth:`estimate` (for standard errors and bootstraps).

        For SNIPS the terms are ``w_i r_i / mean(w)``, which depend on the whole log.
        """
        log = self._checked(
            rewards, logging_propensities, target_probabilities, reward_predictions,
            target_reward_predictions,
        )
        numerator, denominator = self._ratio_terms(log)
        return numerator if denominator is None else numerator / np.mean(denominator)


@dataclass(frozen=True)
class IPS(OffPolicyEstimator):
    """Inverse propensity scoring: ``V_IPS = (1/n) sum_i w_i r_i``, ``w_i = pi(a_i|x_i) / p_i``.

    Horvitz & Thompson (1952); Precup, Sutton & Singh, "Eligibility traces for off-policy policy
    evaluation" (ICML 2000). Unbiased whenever ``p_i > 0`` wherever ``pi`` puts mass, with a
    variance that grows with the weights.

    ``clip`` (``c``) replaces ``w_i`` by ``min(w_i, c)`` (truncated importance sampling; Ionides,
    2008; Bottou et al., 2013). That trades variance for bias: the expectation moves by
    ``-E_pi0[(w - c)_+ r]``, so with non-negative rewards clipped IPS underestimates. ``None``
    (the default) does not clip.
    """

    name: ClassVar[str] = "ips"
    clip: float | None = None

    def __post_init__(self) -> None:
        if self.clip is not None and not self.clip > 0:  # also refuses NaN
            raise OffPolicyInputError(f"IPS clip must be > 0 (or None for no clipping), got {self.clip!r}")

    def _terms(self, log: _LoggedImpressions) -> tuple[np.ndarray, None]:
        w = log.weights if self.clip is None else np.minimum(log.weights, self.clip)
        return w * log.rewards, None


@dataclass(frozen=True)
class SNIPS(OffPolicyEstimator):
    """Self-normalised IPS: ``V_SNIPS = sum_i w_i r_i / sum_i w_i``.

    Swaminathan & Joachims, "The self-normalized estimator for counterfactual learning"
    (NeurIPS 2015). Biased by O(1/n) (with very few rows it drifts towards the logging policy's
    value) but consistent, always inside the range of the observed rewards and usually of much
    lower variance than IPS. Undefined when every ``w_i`` is 0.
    """

    name: ClassVar[str] = "snips"

    def _terms(self, log: _LoggedImpressions) -> tuple[np.ndarray, np.ndarray]:
        w = log.relative_weights  # the ratio is scale-free: w / max(w) gives it without overflow
        return w * log.rewards, w


@dataclass(frozen=True)
class DirectMethod(OffPolicyEstimator):
    """Direct method: ``V_DM = (1/n) sum_i sum_a pi(a|x_i) q(x_i, a)``, the reward model's
    expected reward under the target policy averaged over the logged contexts.

    Beygelzimer & Langford, "The offset tree for learning with partial labels" (KDD 2009). Low
    variance, but biased by exactly the reward model's error; ignores rewards and propensities.
    """

    name: ClassVar[str] = "dm"
    needs: ClassVar[tuple[str, ...]] = ("target_reward_predictions",)

    def _terms(self, log: _LoggedImpressions) -> tuple[np.ndarray, None]:
        assert log.target_reward_predictions is not None  # guaranteed by ``needs``
        return log.target_reward_predictions, None


@dataclass(frozen=True)
class DoublyRobust(OffPolicyEstimator):
    """Doubly robust: ``V_DR = (1/n) sum_i [ sum_a pi(a|x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)) ]``.

    Dudík, Langford & Li, "Doubly robust policy evaluation and learning" (ICML 2011). The direct
    method plus an importance-weighted correction of the model's residual on the logged creative:
    unbiased when the propensities are right, whatever the reward model, and of lower variance
    than IPS the better the model is.
    """

    name: ClassVar[str] = "dr"
    needs: ClassVar[tuple[str, ...]] = ("reward_predictions", "target_reward_predictions")

    def _terms(self, log: _LoggedImpressions) -> tuple[np.ndarray, None]:
        assert log.reward_predictions is not None and log.target_reward_predictions is not None
        residual = log.rewards - log.reward_predictions
        return log.target_reward_predictions + log.weights * residual, None


@dataclass(frozen=True)
class SwitchDR(OffPolicyEstimator):
    """Switch doubly robust: ``V = (1/n) sum_i [ sum_a pi(a|x_i) q(x_i, a) + 1[w_i <= tau] w_i (r_i - q(x_i, a_i)) ]``.

    Wang, Agarwal & Dudík, "Optimal and adaptive off-policy evaluation in contextual bandits"
    (ICML 2017), SWITCH-DR: creatives whose weight is at most ``tau`` get the doubly robust
    estimate, those above it the direct method only (their DM parts add up to the formula above,
    as in Open Bandit Pipeline's ``SwitchDoublyRobust``). ``tau = inf`` is :class:`DoublyRobust`;
    ``tau`` below every positive weight is :class:`DirectMethod`. Large weights are where IPS
    corrections explode, so a finite ``tau`` buys variance with the model's bias on those rows.
    The default ``tau = 10`` distrusts creatives shown ten times more often by the target than by
    the logging policy.
    """

    name: ClassVar[str] = "switch-dr"
    needs: ClassVar[tuple[str, ...]] = ("reward_predictions", "target_reward_predictions")
    tau: float = 10.0

    def __post_init__(self) -> None:
        if not self.tau > 0:  # also refuses NaN
            raise OffPolicyInputError(f"SwitchDR tau must be > 0, got {self.tau!r}")

    def _terms(self, log: _LoggedImpressions) -> tuple[np.ndarray, None]:
        assert log.reward_predictions is not None and log.target_reward_predictions is not None
        w = log.weights
        correction = np.where(w <= self.tau, w * (log.rewards - log.reward_predictions), 0.0)
        return log.target_reward_predictions + correction, None


ESTIMATORS: dict[str, type[OffPolicyEstimator]] = {
    cls.name: cls for cls in (IPS, SNIPS, DirectMethod, DoublyRobust, SwitchDR)
}
"""Estimator name (as :func:`estimate_policy_value` accepts it) to class, default settings."""


@dataclass(frozen=True)
class PolicyEstimate:
    """A policy value with its percentile-bootstrap ``1 - alpha`` interval and standard error,
    the Kish effective sample size of the importance weights and the number of logged rows."""

    value: float
    ci_low: float
    ci_high: float
    ess: float
    estimator: str
    n: int
    std_error: float


def resolve_estimator(estimator: str | OffPolicyEstimator) -> OffPolicyEstimator:
    if isinstance(estimator, OffPolicyEstimator):
        return estimator
    if isinstance(estimator, str) and estimator.strip().lower() in ESTIMATORS:
        return ESTIMATORS[estimator.strip().lower()]()
    raise OffPolicyInputError(
        f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)} "
        "(or pass an OffPolicyEstimator instance)"
    )


def _bootstrap_estimates(
    numerator: np.ndarray, denominator: np.ndarray | None, n_bootstrap: int, seed: int
) -> np.ndarray:
    """Re-estimate ``mean(numerator) / mean(denominator)`` on ``n_bootstrap`` resamples of the
    rows drawn with replacement (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993).

    Draws are vectorised as a block of index rows at a time. A resample whose denominator sums to
    0 (SNIPS, when it drew only zero-weight rows) has no estimate and is returned as NaN.
    """
    n = len(numerator)
    rng = np.random.default_rng(seed)
    block = max(1, _BOOTSTRAP_BLOCK_INDICES // n)
    index_type = np.int32 if n < 2**31 else np.int64
    estimates = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, block):
        stop = min(start + block, n_bootstrap)
        rows = rng.integers(0, n, size=(stop - start, n), dtype=index_type)
        totals = np.take(numerator, rows).sum(axis=1)
        if denominator is None:
            estimates[start:stop] = totals / n
        else:
            weights = np.take(denominator, rows).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                estimates[start:stop] = np.where(weights > 0, totals / weights, np.nan)
    return estimates


def estimate_policy_value(
    rewards: ArrayLike,
    logging_propensities: ArrayLike,
    target_probabilities: ArrayLike,
    estimator: str | OffPolicyEstimator = "snips",
    reward_predictions: ArrayLike | None = None,
    target_reward_predictions: ArrayLike | None = None,
    *,
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> PolicyEstimate:
    """Estimate a target policy's value from a log, with a percentile-bootstrap interval.

    ``estimator`` is one of "ips", "snips", "dm", "dr", "switch-dr" (case-insensitive; default
    settings: no clipping, ``tau = 10``) or a configured :class:`OffPolicyEstimator` such as
    ``IPS(clip=20)``. The interval is the ``alpha/2`` and ``1 - alpha/2`` quantiles of the
    estimator re-run on ``n_bootstrap`` resamples of the impressions (rows drawn with replacement,
    seeded by ``seed``; see :func:`estimate_with_draws`); ``std_error`` is the standard deviation
    of those re-estimates. ``ess`` is Kish's ``(sum w)^2 / sum w^2`` of the unclipped weights
    ``w_i = pi(a_i|x_i) / p_i``: how many on-policy impressions the log is worth (roughly).

    Raises :class:`OffPolicyInputError` (a ``ValueError``) for an unknown estimator, arrays of
    different lengths, an empty log, NaN or infinite values, propensities outside (0, 1], target
    probabilities outside [0, 1], missing reward-model predictions for DM/DR/Switch-DR, ``alpha``
    outside (0, 1), fewer than 2 bootstrap draws, importance weights that overflow float64, or an
    estimate that is not a finite number (weights so large that their sum overflows).
    """
    return estimate_with_draws(
        rewards, logging_propensities, target_probabilities, estimator, reward_predictions,
        target_reward_predictions, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed,
    )[0]


def estimate_with_draws(
    rewards: ArrayLike,
    logging_propensities: ArrayLike,
    target_probabilities: ArrayLike,
    estimator: str | OffPolicyEstimator = "snips",
    reward_predictions: ArrayLike | None = None,
    target_reward_predictions: ArrayLike | None = None,
    *,
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[PolicyEstimate, np.ndarray]:
    """:func:`estimate_policy_value` and the ``n_bootstrap`` re-estimates behind its interval (NaN where a
    resample has no estimate, e.g. SNIPS on only zero-weight rows).

    Which rows each resample draws depends only on ``seed`` and the number of rows, so two calls on
    the same log with the same seed resample the same rows: their draws are paired, and a ratio of
    two policies' values (a lift) can be bootstrapped draw by draw.
    """
    if not 0.0 < alpha < 1.0:
        raise OffPolicyInputError(f"alpha must lie in (0, 1), got {alpha!r}")
    label, log, value, draws = _estimate_with_draws(
        rewards, logging_propensities, target_probabilities, estimator, reward_predictions,
        target_reward_predictions, n_bootstrap, seed,
    )
    finite = draws[np.isfinite(draws)]
    low, high = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0]) if len(finite) else (math.nan,) * 2
    estimate = PolicyEstimate(
        value=value,
        ci_low=float(low),
        ci_high=float(high),
        ess=effective_sample_size(log.relative_weights),
        estimator=label,
        n=log.n,
        std_error=_spread(finite),
    )
    return estimate, draws


def _spread(draws: np.ndarray) -> float:
    """The standard deviation of the bootstrap draws (NaN for fewer than two, inf when it overflows)."""
    if len(draws) < 2:
        return math.nan
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.std(draws, ddof=1))


def _estimate_with_draws(
    rewards: ArrayLike,
    logging_propensities: ArrayLike,
    target_probabilities: ArrayLike,
    estimator: str | OffPolicyEstimator,
    reward_predictions: ArrayLike | None,
    target_reward_predictions: ArrayLike | None,
    n_bootstrap: int,
    seed: int,
) -> tuple[str, _LoggedImpressions, float, np.ndarray]:
    """The estimator's label, the checked log, the estimate and its bootstrap re-estimates."""
    chosen = resolve_estimator(estimator)
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 2:
        raise OffPolicyInputError(f"n_bootstrap must be an integer >= 2, got {n_bootstrap!r}")
    log = chosen._checked(
        rewards, logging_propensities, target_probabilities, reward_predictions,
        target_reward_predictions,
    )
    numerator, denominator = chosen._ratio_terms(log)
    with np.errstate(over="ignore", invalid="ignore"):
        value = float(np.mean(numerator) / (1.0 if denominator is None else np.mean(denominator)))
        draws = _bootstrap_estimates(numerator, denominator, int(n_bootstrap), seed)
    if not math.isfinite(value):
        with np.errstate(over="ignore"):
            largest = float(np.max(log.target_probabilities / log.logging_propensities))
        raise OffPolicyInputError(
            f"the {chosen.label} estimate is not a finite number: its terms are too large to add up (largest "
            f"importance weight {largest:.3g}); the logged propensities are implausibly small for the "
            "creatives the target policy shows"
        )
    return chosen.label, log, value, draws
