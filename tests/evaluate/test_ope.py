"""Off-policy estimators against hand-computed values and a simulated contextual bandit whose
true target value is known."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from adcraft.errors import InputError
from adcraft.evaluate.ope import (
    ESTIMATORS,
    IPS,
    SNIPS,
    DirectMethod,
    DoublyRobust,
    OffPolicyInputError,
    SwitchDR,
    effective_sample_size,
    estimate_policy_value,
    estimate_with_draws,
)

# A 4-row log: w = target / propensity = [0.5, 2, 2, 0.5].
REWARDS = [1.0, 0.0, 1.0, 0.0]
PROPENSITIES = [0.5, 0.25, 0.2, 0.8]
TARGET = [0.25, 0.5, 0.4, 0.4]
Q_LOGGED = [0.6, 0.2, 0.5, 0.1]
Q_TARGET = [0.4, 0.3, 0.7, 0.2]
HAND_LOG = (REWARDS, PROPENSITIES, TARGET, Q_LOGGED, Q_TARGET)


@pytest.mark.parametrize(
    ("estimator", "expected"),
    [
        (IPS(), (0.5 + 0 + 2 + 0) / 4),  # mean(w r)
        (IPS(clip=1.0), (0.5 + 0 + 1 + 0) / 4),  # w clipped to [0.5, 1, 1, 0.5]
        (SNIPS(), 2.5 / 5.0),  # sum(w r) / sum(w)
        (DirectMethod(), (0.4 + 0.3 + 0.7 + 0.2) / 4),
        # DR rows: 0.4 + 0.5*0.4, 0.3 + 2*(-0.2), 0.7 + 2*0.5, 0.2 + 0.5*(-0.1)
        (DoublyRobust(), (0.6 - 0.1 + 1.7 + 0.15) / 4),
        # tau = 1: rows 0 and 3 (w = 0.5) keep the DR correction, rows 1 and 2 (w = 2) are DM.
        (SwitchDR(tau=1.0), (0.6 + 0.3 + 0.7 + 0.15) / 4),
    ],
    ids=lambda value: getattr(value, "label", None),
)
def test_estimators_match_hand_computed_values(estimator, expected: float) -> None:
    assert estimator.estimate(*HAND_LOG) == pytest.approx(expected, abs=1e-12)
    terms = estimator.per_sample(*HAND_LOG)
    assert terms.shape == (4,)
    assert terms.mean() == pytest.approx(expected, abs=1e-12)


def test_per_sample_terms_hand_computed() -> None:
    np.testing.assert_allclose(IPS().per_sample(*HAND_LOG), [0.5, 0.0, 2.0, 0.0])
    np.testing.assert_allclose(SNIPS().per_sample(*HAND_LOG), [0.4, 0.0, 1.6, 0.0])  # w r / mean(w)
    np.testing.assert_allclose(DoublyRobust().per_sample(*HAND_LOG), [0.6, -0.1, 1.7, 0.15])


def test_effective_sample_size() -> None:
    assert effective_sample_size([1.0, 2.0, 3.0]) == pytest.approx(36.0 / 14.0)
    assert effective_sample_size(np.full(37, 0.3)) == pytest.approx(37.0)
    assert effective_sample_size([0.0, 0.0]) == 0.0
    propensities = np.linspace(0.1, 0.9, 500)
    result = estimate_policy_value(np.ones(500), propensities, 0.5 * propensities, "ips", n_bootstrap=20)
    assert result.ess == pytest.approx(500.0)
    assert result.n == 500


# --- A simulated contextual bandit: 5 contexts x 10 creatives, known click probabilities. ---


@dataclass(frozen=True)
class Bandit:
    click_probability: np.ndarray  # (contexts, actions)
    logging: np.ndarray  # pi_0(a|x), rows sum to 1
    target: np.ndarray  # pi(a|x)

    @property
    def true_value(self) -> float:
        """V(pi) with uniformly drawn contexts."""
        return float(np.mean(np.sum(self.target * self.click_probability, axis=1)))

    def logs(self, n_logs: int, n_rows: int, seed: int) -> dict[str, np.ndarray]:
        """``n_logs`` independent logs of ``n_rows`` impressions, as (n_logs, n_rows) arrays."""
        rng = np.random.default_rng(seed)
        contexts = rng.integers(0, self.logging.shape[0], size=(n_logs, n_rows))
        cumulative = np.cumsum(self.logging, axis=1)[contexts]
        actions = np.minimum(
            (rng.random((n_logs, n_rows))[..., None] > cumulative).sum(axis=-1), self.logging.shape[1] - 1
        )
        clicks = rng.random((n_logs, n_rows)) < self.click_probability[contexts, actions]
        return {
            "contexts": contexts,
            "actions": actions,
            "rewards": clicks.astype(np.float64),
            "logging_propensities": self.logging[contexts, actions],
            "target_probabilities": self.target[contexts, actions],
        }

    def predictions(self, log: dict[str, np.ndarray], model: np.ndarray) -> dict[str, np.ndarray]:
        """A reward model ``model[x, a]``'s q(x_i, a_i) and sum_a pi(a|x_i) q(x_i, a)."""
        return {
            "reward_predictions": model[log["contexts"], log["actions"]],
            "target_reward_predictions": np.sum(self.target * model, axis=1)[log["contexts"]],
        }


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def bandit() -> Bandit:
    rng = np.random.default_rng(7)
    click_probability = rng.uniform(0.1, 0.9, size=(5, 10))
    logging = _softmax(rng.normal(0.0, 0.5, size=(5, 10)))  # near uniform, all creatives possible
    target = _softmax(6.0 * click_probability)  # stochastic, prefers the better creatives
    return Bandit(click_probability, logging, target)


@pytest.fixture(scope="module")
def simulated_logs(bandit: Bandit) -> dict[str, np.ndarray]:
    return bandit.logs(n_logs=300, n_rows=2000, seed=11)


def _estimates_over_logs(estimator, logs: dict[str, np.ndarray], **predictions: np.ndarray) -> np.ndarray:
    return np.array([
        estimator.estimate(
            logs["rewards"][k], logs["logging_propensities"][k], logs["target_probabilities"][k],
            **{name: values[k] for name, values in predictions.items()},
        )
        for k in range(len(logs["rewards"]))
    ])


def _within_three_standard_errors(estimates: np.ndarray, truth: float) -> bool:
    standard_error = estimates.std(ddof=1) / math.sqrt(len(estimates))
    return abs(estimates.mean() - truth) <= 3.0 * standard_error


def test_simulated_bandit_has_distinct_policies(bandit: Bandit) -> None:
    logging_value = float(np.mean(np.sum(bandit.logging * bandit.click_probability, axis=1)))
    assert bandit.true_value - logging_value > 0.05  # the target is worth estimating


def test_ips_is_unbiased_on_simulated_logs(bandit: Bandit, simulated_logs) -> None:
    estimates = _estimates_over_logs(IPS(), simulated_logs)
    assert _within_three_standard_errors(estimates, bandit.true_value)


def test_doubly_robust_with_a_wrong_model_is_unbiased(bandit: Bandit, simulated_logs) -> None:
    wrong_model = 0.5 - 0.8 * bandit.click_probability  # ranks creatives backwards, off in level
    predictions = bandit.predictions(simulated_logs, wrong_model)
    dr = _estimates_over_logs(DoublyRobust(), simulated_logs, **predictions)
    assert _within_three_standard_errors(dr, bandit.true_value)
    dm = _estimates_over_logs(DirectMethod(), simulated_logs, **predictions)
    assert not _within_three_standard_errors(dm, bandit.true_value)  # the model really is wrong


def test_doubly_robust_with_a_perfect_model_has_lower_variance_than_ips(
    bandit: Bandit, simulated_logs
) -> None:
    predictions = bandit.predictions(simulated_logs, bandit.click_probability)
    dr = _estimates_over_logs(DoublyRobust(), simulated_logs, **predictions)
    ips = _estimates_over_logs(IPS(), simulated_logs)
    assert _within_three_standard_errors(dr, bandit.true_value)
    # Under equal variances log(var ratio) has sd ~ sqrt(2 / (n_logs - 1)); ask for 3 of them.
    assert dr.var(ddof=1) / ips.var(ddof=1) < math.exp(-3.0 * math.sqrt(2.0 / (len(dr) - 1)))


def test_snips_bias_shrinks_with_more_rows(bandit: Bandit, simulated_logs) -> None:
    small = bandit.logs(n_logs=4000, n_rows=5, seed=12)
    small_estimates = _estimates_over_logs(SNIPS(), small)
    large_estimates = _estimates_over_logs(SNIPS(), simulated_logs)
    small_bias = small_estimates.mean() - bandit.true_value
    large_bias = large_estimates.mean() - bandit.true_value
    # With 5 rows the self-normalisation pulls towards the logging policy's (lower) value.
    assert not _within_three_standard_errors(small_estimates, bandit.true_value)
    assert small_bias < 0
    assert _within_three_standard_errors(large_estimates, bandit.true_value)
    assert abs(large_bias) < abs(small_bias) / 5


def test_direct_method_with_the_true_model_equals_the_truth(bandit: Bandit) -> None:
    log = {name: values[0] for name, values in bandit.logs(n_logs=1, n_rows=1000, seed=3).items()}
    # DM reads only the predictions, which depend on the contexts alone: take every context
    # equally often, as the true value does, and DM has no error left.
    log["contexts"] = np.arange(1000) % 5
    predictions = bandit.predictions(log, bandit.click_probability)
    arrays = (log["rewards"], log["logging_propensities"], log["target_probabilities"])
    value = DirectMethod().estimate(*arrays, **predictions)
    assert value == pytest.approx(bandit.true_value, abs=1e-12)


def test_switch_dr_spans_direct_method_and_doubly_robust(bandit: Bandit, simulated_logs) -> None:
    log = {name: values[0] for name, values in simulated_logs.items()}
    arrays = (log["rewards"], log["logging_propensities"], log["target_probabilities"])
    predictions = bandit.predictions(log, 0.5 - 0.8 * bandit.click_probability)
    dr = DoublyRobust().per_sample(*arrays, **predictions)
    dm = DirectMethod().per_sample(*arrays, **predictions)
    np.testing.assert_array_equal(SwitchDR(tau=math.inf).per_sample(*arrays, **predictions), dr)
    np.testing.assert_array_equal(SwitchDR(tau=1e-12).per_sample(*arrays, **predictions), dm)
    weights = log["target_probabilities"] / log["logging_propensities"]
    assert 0 < np.mean(weights <= 1.0) < 1
    switched = SwitchDR(tau=1.0).per_sample(*arrays, **predictions)
    np.testing.assert_array_equal(switched, np.where(weights <= 1.0, dr, dm))


def test_bootstrap_interval_covers_the_truth_at_its_nominal_rate(bandit: Bandit) -> None:
    logs = bandit.logs(n_logs=200, n_rows=400, seed=21)
    covered = 0
    for k in range(200):
        result = estimate_policy_value(
            logs["rewards"][k], logs["logging_propensities"][k], logs["target_probabilities"][k],
            "snips", n_bootstrap=200, seed=k,
        )
        assert result.ci_low <= result.value <= result.ci_high
        covered += result.ci_low <= bandit.true_value <= result.ci_high
    # 95% nominal; 0.88 is three binomial standard deviations (sqrt(.95 * .05 / 200) = 0.015) below.
    assert covered / 200 >= 0.88


def test_bootstrap_interval_narrows_with_more_data_and_is_seeded(bandit: Bandit) -> None:
    logs = bandit.logs(n_logs=1, n_rows=8000, seed=5)
    arrays = (logs["rewards"][0], logs["logging_propensities"][0], logs["target_probabilities"][0])
    small = estimate_policy_value(*(a[:500] for a in arrays), "ips", n_bootstrap=400)
    large = estimate_policy_value(*arrays, "ips", n_bootstrap=400)
    assert large.n == 8000 and large.estimator == "ips"
    # Width scales as 1/sqrt(n): 16x the rows should give about a quarter of the width.
    assert (large.ci_high - large.ci_low) < 0.5 * (small.ci_high - small.ci_low)
    assert large.std_error < 0.5 * small.std_error
    assert large.ci_low <= bandit.true_value <= large.ci_high
    assert estimate_policy_value(*arrays, "IPS", n_bootstrap=400) == large  # same seed, same draws
    assert estimate_policy_value(*arrays, "ips", n_bootstrap=400, seed=1) != large


def test_estimate_policy_value_matches_the_estimators() -> None:
    for name, cls in ESTIMATORS.items():
        result = estimate_policy_value(*HAND_LOG[:3], name.upper(), *HAND_LOG[3:], n_bootstrap=50)
        assert result.value == pytest.approx(cls().estimate(*HAND_LOG))
        assert result.estimator == name
    clipped = estimate_policy_value(*HAND_LOG[:3], IPS(clip=1.0), n_bootstrap=50)
    assert clipped.value == pytest.approx(0.375)
    assert clipped.estimator == "ips(clip=1.0)"


# --- Refused input ---

GOOD = {
    "rewards": REWARDS,
    "logging_propensities": PROPENSITIES,
    "target_probabilities": TARGET,
    "reward_predictions": Q_LOGGED,
    "target_reward_predictions": Q_TARGET,
}


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("rewards", [1.0, 0.0, 1.0], "same length"),
        ("target_reward_predictions", [0.1, 0.2], "same length"),
        ("rewards", [1.0, math.nan, 1.0, 0.0], "rewards must be finite"),
        ("rewards", [1.0, math.inf, 1.0, 0.0], "rewards must be finite"),
        ("logging_propensities", [0.5, math.nan, 0.2, 0.8], "logging_propensities must be finite"),
        ("target_probabilities", [0.25, 0.5, math.inf, 0.4], "target_probabilities must be finite"),
        ("reward_predictions", [0.6, -math.inf, 0.5, 0.1], "reward_predictions must be finite"),
        ("target_reward_predictions", [math.nan, 0.3, 0.7, 0.2], "target_reward_predictions must be finite"),
        ("logging_propensities", [0.5, 0.0, 0.2, 0.8], r"logging_propensities must lie in \(0, 1\]"),
        ("logging_propensities", [0.5, -0.25, 0.2, 0.8], "logging_propensities must lie in"),
        ("logging_propensities", [0.5, 1.5, 0.2, 0.8], "logging_propensities must lie in"),
        ("target_probabilities", [0.25, -0.1, 0.4, 0.4], r"target_probabilities must lie in \[0, 1\]"),
        ("target_probabilities", [0.25, 1.1, 0.4, 0.4], "target_probabilities must lie in"),
        ("rewards", [[1.0, 0.0], [1.0, 0.0]], "one-dimensional"),
        ("rewards", ["a", "b", "c", "d"], "rewards must be numeric"),
    ],
)
@pytest.mark.parametrize("estimator", ["ips", "snips", "dm", "dr", "switch-dr"])
def test_bad_arrays_are_refused(estimator: str, argument: str, value, message: str) -> None:
    arguments = {**GOOD, argument: value}
    with pytest.raises(ValueError, match=message):
        ESTIMATORS[estimator]().estimate(**arguments)
    with pytest.raises(OffPolicyInputError, match=message):
        estimate_policy_value(estimator=estimator, n_bootstrap=10, **arguments)


@pytest.mark.parametrize("estimator", ["ips", "snips", "dm", "dr", "switch-dr"])
def test_empty_log_is_refused(estimator: str) -> None:
    empty = {name: [] for name in GOOD}
    with pytest.raises(ValueError, match="empty"):
        ESTIMATORS[estimator]().per_sample(**empty)


@pytest.mark.parametrize(
    ("estimator", "missing", "message"),
    [
        (DirectMethod(), "target_reward_predictions", "DirectMethod needs target_reward_predictions"),
        (DoublyRobust(), "reward_predictions", "DoublyRobust needs reward_predictions"),
        (DoublyRobust(), "target_reward_predictions", "DoublyRobust needs target_reward_predictions"),
        (SwitchDR(), "reward_predictions", "SwitchDR needs reward_predictions"),
    ],
)
def test_model_based_estimators_need_predictions(estimator, missing: str, message: str) -> None:
    arguments = {**GOOD, missing: None}
    with pytest.raises(ValueError, match=message):
        estimator.estimate(**arguments)
    with pytest.raises(ValueError, match=message):
        estimate_policy_value(estimator=estimator, **arguments)


def test_ips_and_snips_need_no_predictions() -> None:
    assert IPS().estimate(*HAND_LOG[:3]) == pytest.approx(0.625)
    assert SNIPS().estimate(*HAND_LOG[:3]) == pytest.approx(0.5)


def test_snips_without_any_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="target_probabilities are 0 on every logged"):
        SNIPS().estimate(REWARDS, PROPENSITIES, [0.0] * 4)
    assert IPS().estimate(REWARDS, PROPENSITIES, [0.0] * 4) == 0.0  # IPS is defined: 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: IPS(clip=0.0), "clip must be > 0"),
        (lambda: IPS(clip=-1.0), "clip must be > 0"),
        (lambda: IPS(clip=math.nan), "clip must be > 0"),
        (lambda: SwitchDR(tau=0.0), "tau must be > 0"),
        (lambda: SwitchDR(tau=-2.0), "tau must be > 0"),
        (lambda: SwitchDR(tau=math.nan), "tau must be > 0"),
    ],
)
def test_bad_estimator_settings_are_refused_on_construction(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"estimator": "wips"}, "unknown estimator 'wips'; choose one of ips, snips, dm, dr, switch-dr"),
        ({"estimator": None}, "unknown estimator"),
        ({"alpha": 0.0}, "alpha must lie in"),
        ({"alpha": 1.0}, "alpha must lie in"),
        ({"alpha": math.nan}, "alpha must lie in"),
        ({"n_bootstrap": 1}, "n_bootstrap must be an integer >= 2"),
        ({"n_bootstrap": 10.5}, "n_bootstrap must be an integer >= 2"),
    ],
)
def test_bad_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(OffPolicyInputError, match=message) as caught:
        estimate_policy_value(**GOOD, **options)
    assert isinstance(caught.value, InputError) and isinstance(caught.value, ValueError)


# --- Numerical safety: weights far beyond any plausible log ---


def test_effective_sample_size_is_scale_free() -> None:
    assert effective_sample_size([1e300, 1e300, 1e300]) == pytest.approx(3.0)  # squares overflow float64
    assert effective_sample_size([1e-300, 2e-300, 3e-300]) == pytest.approx(36.0 / 14.0)  # squares underflow


def test_snips_and_the_ess_survive_weights_that_overflow() -> None:
    rewards, propensities, target = [1.0, 0.0, 1.0, 0.0], [5e-324, 5e-324, 1e-300, 5e-324], [1.0, 1.0, 0.0, 1.0]
    with pytest.raises(OffPolicyInputError, match="overflows at position 0"):
        IPS().estimate(rewards, propensities, target)
    with pytest.raises(OffPolicyInputError, match="overflows"):
        estimate_policy_value(rewards, propensities, target, "dr", [0.1] * 4, [0.1] * 4, n_bootstrap=10)
    result = estimate_policy_value(rewards, propensities, target, "snips", n_bootstrap=50)
    assert result.value == pytest.approx(1.0 / 3.0) and result.ess == pytest.approx(3.0)
    assert math.isfinite(result.ci_low) and math.isfinite(result.ci_high)


def test_an_estimate_whose_terms_cannot_add_up_is_refused() -> None:
    n = 100  # each weight 1e307 is finite, their sum is not
    with pytest.raises(OffPolicyInputError, match="not a finite number"):
        estimate_policy_value(np.ones(n), np.full(n, 1e-307), np.ones(n), "ips", n_bootstrap=10)


def test_bootstrap_draws_of_the_same_log_and_seed_are_paired() -> None:
    rng = np.random.default_rng(0)
    rewards = (rng.random(300) < 0.2).astype(float)
    propensities = rng.uniform(0.1, 0.9, 300)
    result, on_policy = estimate_with_draws(rewards, propensities, propensities, "ips", n_bootstrap=200, seed=7)
    _, self_normalised = estimate_with_draws(rewards, propensities, propensities, "snips", n_bootstrap=200, seed=7)
    np.testing.assert_allclose(on_policy, self_normalised)  # weights 1: both are the resample's mean reward
    _, reseeded = estimate_with_draws(rewards, propensities, propensities, "ips", n_bootstrap=200, seed=8)
    assert on_policy.std() > 0 and not np.allclose(on_policy, reseeded)
    assert (result.ci_low, result.ci_high) == tuple(np.quantile(on_policy, [0.025, 0.975]))
    assert result == estimate_policy_value(rewards, propensities, propensities, "ips", n_bootstrap=200, seed=7)
