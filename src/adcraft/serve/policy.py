"""The serving policy: which of a product's creatives to show, with the exact probability of showing it.

Each arm (a creative of the product) has a Beta posterior on its click-through rate from the served log,
``Beta(prior_clicks + clicks, prior_misses + impressions - clicks)``, where with ``prior_from_logs`` the prior
``(prior_clicks, prior_misses)`` keeps its weight but is centred on the product's logged CTR (``product_prior``).
The policy shows arm ``a`` with
probability

    p_a = epsilon / K + (1 - epsilon) * q_a,

where ``q_a`` is the Thompson probability that arm ``a`` has the highest CTR (Russo et al., "A Tutorial on
Thompson Sampling", 2018, section 3), estimated by Monte Carlo from ``draws`` joint posterior samples, and
the uniform part keeps every propensity at least ``epsilon / K`` so that the log supports off-policy
estimates of any other policy on these arms.

Why the propensity is exact: classic Thompson sampling (draw once from each posterior, show the argmax) has
no closed-form probability of its choice. Here the arm is drawn from ``p`` itself, so ``p_a`` IS the
probability with which ``a`` was shown: the Monte Carlo error only makes ``q`` differ slightly from the
ideal Thompson probabilities, never the logged propensity from the true one. ``q`` is computed with a
generator seeded by ``seed`` and the arms' counts, so the same log state always gives the same ``p``
(reproducible, and any reader can recompute a logged propensity from the counts at the time and the product's
prior).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adcraft.configuration import check_config
from adcraft.errors import InputError

POLICY_NAME = "thompson-uniform-mix"


@dataclass(frozen=True)
class ServingPolicyConfig:
    """How ``/v1/serve`` chooses: ``epsilon`` the uniform share (each of K arms is shown with probability at
    least ``epsilon / K``); ``draws`` the Monte Carlo samples of the Thompson probabilities; the Beta prior
    (``prior_clicks``, ``prior_misses``: uniform by default); ``seed`` the seed of the Monte Carlo samples and
    of the draws of the arms; ``prior_from_logs``: the prior of a product's arms keeps its weight
    (``prior_clicks + prior_misses``) but is centred on the product's logged CTR (``product_prior``), so an untried
    arm is expected to do as the product does, not to click half the time; ``carry_over``: an arm's counts are
    the impressions and clicks of every run of the database that served the product with the same elements,
    not only this run's, so a creative served in an earlier round starts the next with its evidence."""

    epsilon: float = 0.05
    draws: int = 4096
    prior_clicks: float = 1.0
    prior_misses: float = 1.0
    seed: int = 0
    prior_from_logs: bool = False  # on fresh seeds it did not meet the rule it was adopted by (docs/results.md)
    carry_over: bool = True  # adopted by a rule written before its run, on fresh seeds (docs/results.md)

    def __post_init__(self) -> None:
        check_config(self)
        if not 0.0 < self.epsilon <= 1.0:
            raise InputError(f"epsilon must lie in (0, 1] so that every creative keeps a chance, got {self.epsilon}")
        if not 1 <= self.draws <= 1_000_000:
            raise InputError(f"draws must lie in [1, 1000000], got {self.draws}")
        for name in ("prior_clicks", "prior_misses"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive (a Beta prior), got {getattr(self, name)}")


def thompson_propensities(clicks: Sequence[int], impressions: Sequence[int],
                          config: ServingPolicyConfig = ServingPolicyConfig(),
                          prior: tuple[float, float] | None = None) -> np.ndarray:
    """``p`` of the module docstring for arms with these served ``clicks`` out of ``impressions``: one
    probability per arm, each at least ``epsilon / K``, summing to 1. ``prior``: the Beta prior's
    ``(clicks, misses)`` for these arms (``product_prior``), else the config's."""
    clicks_a = np.asarray(clicks, dtype=np.int64)
    shown = np.asarray(impressions, dtype=np.int64)
    arms = len(clicks_a)
    if arms == 0 or len(shown) != arms:
        raise ValueError("one count of clicks and impressions per arm, at least one arm")
    if np.any(clicks_a < 0) or np.any(clicks_a > shown):
        raise ValueError("clicks must lie in [0, impressions] for every arm")
    if arms == 1:
        return np.ones(1)
    rng = np.random.default_rng([config.seed, *clicks_a.tolist(), *shown.tolist()])
    prior_clicks, prior_misses = prior if prior is not None else (config.prior_clicks, config.prior_misses)
    samples = rng.beta(prior_clicks + clicks_a, prior_misses + shown - clicks_a, size=(config.draws, arms))
    best = np.bincount(samples.argmax(axis=1), minlength=arms) / config.draws
    return config.epsilon / arms + (1.0 - config.epsilon) * best


def product_prior(clicks: int, impressions: int, config: ServingPolicyConfig) -> tuple[float, float]:
    """The Beta prior of a product's arms centred on its logged CTR: with ``w = prior_clicks + prior_misses``
    and the CTR smoothed by the config's prior, ``m = (clicks + prior_clicks) / (impressions + w)``, it is
    ``(w m, w (1 - m))`` (the same weight as the config's prior, its mean moved to ``m``; empirical Bayes)."""
    weight = config.prior_clicks + config.prior_misses
    mean = (clicks + config.prior_clicks) / (impressions + weight)
    return weight * mean, weight * (1.0 - mean)


class ServingPolicy:
    """Draws arms from ``thompson_propensities`` with one generator (seeded by ``config.seed``), shared by
    the server's threads under a lock."""

    def __init__(self, config: ServingPolicyConfig = ServingPolicyConfig()) -> None:
        self.config = config
        self._rng = np.random.default_rng(config.seed)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """What the log records as the policy: its kind and settings."""
        return (f"{POLICY_NAME}(epsilon={self.config.epsilon:g}, draws={self.config.draws}"
                f"{', prior from logs' if self.config.prior_from_logs else ''}"
                f"{', counts across runs' if self.config.carry_over else ''})")

    def choose(self, clicks: Sequence[int], impressions: Sequence[int],
               prior: tuple[float, float] | None = None) -> tuple[int, np.ndarray]:
        """(index of the arm to show, every arm's propensity): the arm is drawn from those propensities."""
        propensities = thompson_propensities(clicks, impressions, self.config, prior)
        return self.draw(propensities), propensities

    def draw(self, propensities: np.ndarray) -> int:
        """An arm's index, drawn with probability ``propensities[index]`` (normalised by their sum)."""
        with self._lock:
            uniform = float(self._rng.random())
        index = int(np.searchsorted(np.cumsum(propensities), uniform * propensities.sum(), side="right"))
        return min(index, len(propensities) - 1)
