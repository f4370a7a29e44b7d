"""Online creative selection on the real AES CTRs: bandit learners choose among 200 composited banners.

    python bench/aes_online.py [--data ../shared/data] [--seeds 20] [--horizon 100000] [--batch 100]
                               [--workers 2] [--results docs/results.md] [--plot docs/aes_regret.png]

The environment is the 200 creatives of AES (Alimama, AAAI 2021; ``aes/ctr_online.csv`` of the shared
data bundle, whose README gives its provenance): background (2) x picture size (5) x text colour (8, four
per background) x font (5), the full factorial within the colour-background constraint, so every one of
the 200 rows is a feasible creative and "the best feasible creative" is an argmax over them. Each
impression a learner shows one creative and a click is drawn Bernoulli(its real online CTR).

Batched updates: a learner chooses ``--batch`` impressions at a time from the posterior (or estimates)
it held at the start of the batch, each impression with its own posterior draw, and sees the batch's
clicks only at its end (as in a production system that refits every few minutes).

Learners (the baselines of GenCO's field, papers.md section 3, and the bench's GenCO-style learner):

- ``TS Beta(1,1) per creative`` / ``TS Beta(1,49) per creative``: Thompson sampling over whole
  creatives, one Beta-Bernoulli arm per creative (Chapelle & Li, NIPS 2011); the second prior is
  centred on a 2% CTR (50 pseudo-impressions).
- ``eps-greedy 0.1`` / ``eps-greedy min(1, 1000/t)``: epsilon-greedy on the creatives' observed CTRs, with a
  fixed epsilon or epsilon_t = min(1, c K / t), c = 5, K = 200 (Auer et al., Mach. Learn. 2002).
- ``TS logistic, elements``: Bayesian logistic regression on one-hot elements, Laplace approximation
  refitted every batch by Newton steps on all clicks so far; Thompson sampling draws the weights.
- ``TS logistic, pairwise (MVT)``: the same with every pairwise interaction between slots (Hill et al.,
  KDD 2017, "An efficient bandit algorithm for realtime multivariate optimization"); the best creative
  under each draw is found by exhaustive search over the 200 (Hill et al. hill-climb because their
  space is large; here the exact argmax is cheap).
- ``TS elements + residual (MIL-style)``: the bench's online counterpart of ``adcraft.rewards.mil`` with "sum"
  pooling (GenCO's multi-instance idea: a creative's click logit is the sum of its element scores), plus
  a per-creative residual: logit CTR_c = x_c . w + u_c, u_c ~ N(0, tau^2), so a creative's CTR is shrunk
  toward its element-wise prediction until its own clicks say otherwise. It is written in NumPy
  here, not the MIL class itself (a torch fit per batch would be far too slow).
- ``uniform (reference)``: a reference that shows every creative equally often.

Regret is in expected clicks, sum over impressions of (best CTR - CTR of the creative shown).
Prints a message and exits 0 when the data file is absent. The table goes to the section
"## Online creative selection on AES real CTRs (bench/aes_online.py)" of --results; the mean regret
curves to the --plot PNG.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# Each worker fits small matrices: with one BLAS thread per process a run is ~30x faster than with
# every process spawning a thread per core (measured on 2 cores).
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402  (after the thread limits: BLAS reads them when loaded)
import pandas as pd  # noqa: E402
from markdown import markdown_table, write_section  # noqa: E402
from plots import LineSeries, line_plot  # noqa: E402
from scipy.linalg import cho_factor, cho_solve, solve_triangular  # noqa: E402

from adcraft.errors import InputError  # noqa: E402

SECTION = "## Online creative selection on AES real CTRs (bench/aes_online.py)"
SLOTS = ("background", "size", "text_color", "font")
CHECKPOINTS = (10_000, 50_000, 100_000)  # reported when within the horizon, and the horizon itself
LAST_WINDOW = 10_000  # impressions at the end of the horizon over which the allocation is measured
TOP_K = 5
TYPICAL_CTR = 0.02  # the prior centre of the centred Beta arms and of the logistic intercept
PRIOR_IMPRESSIONS = 50  # weight of the centred Beta prior: Beta(1, 49)
INTERCEPT_SD = 1.0  # logit scale
WEIGHT_SD = 0.25  # logit scale, every element weight, interaction weight and per-creative residual
NEWTON_STEPS = 3  # at most, per batch, warm-started at the previous mode
NEWTON_TOLERANCE = 1e-4  # logit scale: stop once no weight moves more
EPSILON_DECAY_C = 5.0


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class AESCreatives:
    """The AES creatives: element codes (one row per creative, columns ``SLOTS``) and real online CTRs."""

    codes: pd.DataFrame
    ctr: np.ndarray

    @property
    def best(self) -> int:
        return int(np.argmax(self.ctr))

    @property
    def top(self) -> np.ndarray:
        return np.argsort(-self.ctr)[:TOP_K]


def load_creatives(path: Path) -> AESCreatives:
    """Read ``ctr_online.csv`` and check what the bench relies on (CTRs in (0, 1), colours nested in backgrounds)."""
    frame = pd.read_csv(path)
    missing = [c for c in (*SLOTS, "ctr") if c not in frame.columns]
    if missing:
        raise InputError(f"{path} lacks the columns {missing}; expected the AES ctr_online.csv of the data bundle")
    ctr = frame["ctr"].to_numpy(dtype=float)
    if not np.all((ctr > 0) & (ctr < 1)):
        raise InputError(f"{path}: every ctr must lie strictly between 0 and 1")
    if frame.duplicated(list(SLOTS)).any():
        raise InputError(f"{path}: two rows share one element combination")
    if (frame.groupby("text_color")["background"].nunique() > 1).any():
        raise InputError(f"{path}: a text colour appears on both backgrounds (AES nests colours in backgrounds)")
    return AESCreatives(codes=frame[list(SLOTS)].astype(int).reset_index(drop=True), ctr=ctr)


def one_hot(values: np.ndarray) -> np.ndarray:
    """One column per distinct value (in sorted order)."""
    levels = np.unique(values)
    return (values[:, None] == levels[None, :]).astype(float)


def element_design(codes: pd.DataFrame) -> np.ndarray:
    """Intercept plus one-hot elements of every slot (2 + 5 + 8 + 5 columns for AES)."""
    blocks = [np.ones((len(codes), 1))] + [one_hot(codes[s].to_numpy()) for s in SLOTS]
    return np.hstack(blocks)


def pairwise_design(codes: pd.DataFrame) -> np.ndarray:
    """Element columns plus one column per pair of elements of two different slots that co-occur.

    Pairs that do not vary within a single element are dropped: a text colour fixes its background,
    so background x colour repeats the colour's own column (2 + 5 + 8 + 5 main columns and
    10 + 10 + 40 + 25 + 40 pairwise ones for AES).
    """
    columns = [element_design(codes)]
    for i, first in enumerate(SLOTS):
        for second in SLOTS[i + 1 :]:
            pair = codes[first].astype(str) + "|" + codes[second].astype(str)
            if pair.nunique() in (codes[first].nunique(), codes[second].nunique()):
                continue
            columns.append(one_hot(pair.to_numpy()))
    return np.hstack(columns)


# ---------------------------------------------------------------- learners


class UniformLearner:
    """Shows every creative with the same probability (a reference, not a learner)."""

    def __init__(self, n_creatives: int) -> None:
        self.n_creatives = n_creatives

    def choose(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.n_creatives, size=n)

    def update(self, indices: np.ndarray, clicks: np.ndarray) -> None:
        pass


class BetaThompson:
    """Thompson sampling with one Beta(alpha, beta) - Bernoulli arm per creative (Chapelle & Li, 2011).

    Each impression draws one CTR per creative from Beta(alpha + clicks, beta + non-clicks) and shows
    the creative with the highest draw.
    """

    def __init__(self, n_creatives: int, alpha: float, beta: float) -> None:
        self.alpha = np.full(n_creatives, float(alpha))
        self.beta = np.full(n_creatives, float(beta))

    def choose(self, rng: np.random.Generator, n: int) -> np.ndarray:
        draws = rng.beta(self.alpha[None, :], self.beta[None, :], size=(n, self.alpha.size))
        return np.argmax(draws, axis=1)

    def update(self, indices: np.ndarray, clicks: np.ndarray) -> None:
        shown = np.bincount(indices, minlength=self.alpha.size)
        clicked = np.bincount(indices, weights=clicks, minlength=self.alpha.size)
        self.alpha += clicked
        self.beta += shown - clicked


class EpsilonGreedy:
    """Epsilon-greedy on observed CTRs: explore uniformly with probability epsilon, else the best so far.

    ``epsilon=None`` decays it with the impressions t seen so far: epsilon_t = min(1, c K / t)
    (Auer, Cesa-Bianchi & Fischer, 2002, with their d^2 folded into c). Creatives never shown count
    as best, so each is tried once before any is exploited; ties are broken at random.
    """

    def __init__(self, n_creatives: int, epsilon: float | None, decay_c: float = EPSILON_DECAY_C) -> None:
        self.shown = np.zeros(n_creatives)
        self.clicked = np.zeros(n_creatives)
        self.epsilon = epsilon
        self.decay_c = decay_c

    def current_epsilon(self) -> float:
        if self.epsilon is not None:
            return self.epsilon
        t = self.shown.sum()
        return 1.0 if t == 0 else min(1.0, self.decay_c * self.shown.size / t)

    def choose(self, rng: np.random.Generator, n: int) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self.shown > 0, self.clicked / self.shown, np.inf)
        best = np.flatnonzero(mean == mean.max())
        explore = rng.random(n) < self.current_epsilon()
        return np.where(explore, rng.integers(self.shown.size, size=n), rng.choice(best, size=n))

    def update(self, indices: np.ndarray, clicks: np.ndarray) -> None:
        self.shown += np.bincount(indices, minlength=self.shown.size)
        self.clicked += np.bincount(indices, weights=clicks, minlength=self.shown.size)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class LaplaceLogisticThompson:
    """Thompson sampling with a Bayesian logistic regression on creative features (Laplace approximation).

    Model: clicks_c ~ Binomial(shown_c, sigmoid(x_c . w)), prior w ~ N(m, diag(s^2)). The posterior is
    approximated by N(w*, H^-1), w* its mode and H = X' diag(n p (1 - p)) X + diag(1/s^2) the negative
    Hessian of the log posterior there (Chapelle & Li, 2011, section 3; Bishop, PRML section 4.4).
    After every batch, ``NEWTON_STEPS`` Newton steps on all clicks so far, w <- w + H^-1 g, with
    g = X'(k - n p) - (w - m)/s^2, move w* from its previous value. The data are pooled by creative
    (features depend only on the creative), so a step costs the same at any horizon. Each impression
    draws w = w* + L^-T z (H = L L', z standard normal) and shows the creative with the highest x_c . w.
    """

    def __init__(self, design: np.ndarray, prior_mean: np.ndarray, prior_sd: np.ndarray,
                 newton_steps: int = NEWTON_STEPS) -> None:
        self.design = design
        self.prior_mean = prior_mean.astype(float)
        self.prior_precision = 1.0 / prior_sd.astype(float) ** 2
        self.newton_steps = newton_steps
        self.shown = np.zeros(design.shape[0])
        self.clicked = np.zeros(design.shape[0])
        self.mode = self.prior_mean.copy()
        self.chol = np.diag(np.sqrt(self.prior_precision))  # lower Cholesky factor of H

    def hessian(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(negative Hessian H, gradient g) of the log posterior at ``w``."""
        p = sigmoid(self.design @ w)
        gradient = self.design.T @ (self.clicked - self.shown * p) - self.prior_precision * (w - self.prior_mean)
        curvature = self.shown * p * (1.0 - p)
        h = (self.design.T * curvature) @ self.design
        h[np.diag_indices_from(h)] += self.prior_precision
        return h, gradient

    def choose(self, rng: np.random.Generator, n: int) -> np.ndarray:
        z = rng.standard_normal((self.mode.size, n))
        weights = self.mode[:, None] + solve_triangular(self.chol.T, z, lower=False)
        return np.argmax(self.design @ weights, axis=0)

    def update(self, indices: np.ndarray, clicks: np.ndarray) -> None:
        self.shown += np.bincount(indices, minlength=self.shown.size)
        self.clicked += np.bincount(indices, weights=clicks, minlength=self.shown.size)
        for _ in range(self.newton_steps):
            h, gradient = self.hessian(self.mode)
            step = cho_solve(cho_factor(h, lower=True), gradient)
            self.mode = self.mode + step
            if np.max(np.abs(step)) < NEWTON_TOLERANCE:
                break
        h, _ = self.hessian(self.mode)
        self.chol = np.linalg.cholesky(h)


def logistic_prior(n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Prior mean and sd: intercept N(logit(TYPICAL_CTR), INTERCEPT_SD^2), every other weight N(0, WEIGHT_SD^2)."""
    mean = np.zeros(n_columns)
    mean[0] = np.log(TYPICAL_CTR / (1.0 - TYPICAL_CTR))
    sd = np.full(n_columns, WEIGHT_SD)
    sd[0] = INTERCEPT_SD
    return mean, sd


def element_thompson(codes: pd.DataFrame) -> LaplaceLogisticThompson:
    """Learner 3: one-hot elements."""
    design = element_design(codes)
    return LaplaceLogisticThompson(design, *logistic_prior(design.shape[1]))


def pairwise_thompson(codes: pd.DataFrame) -> LaplaceLogisticThompson:
    """Learner 4 (MVT, Hill et al. 2017): elements and pairwise interactions, exhaustive argmax."""
    design = pairwise_design(codes)
    return LaplaceLogisticThompson(design, *logistic_prior(design.shape[1]))


def residual_thompson(codes: pd.DataFrame) -> LaplaceLogisticThompson:
    """Learner 5: element scores summed into the logit plus a per-creative residual u_c ~ N(0, WEIGHT_SD^2).

    The joint Laplace posterior of (w, u) shrinks each creative toward its element-wise prediction;
    creatives that share elements pool their clicks through w, while u lets a well-measured creative
    depart from the additive model (which explains little of AES's real CTRs).
    """
    design = np.hstack([element_design(codes), np.eye(len(codes))])
    return LaplaceLogisticThompson(design, *logistic_prior(design.shape[1]))


LEARNERS: dict[str, Callable[[pd.DataFrame], object]] = {
    "uniform (reference)": lambda codes: UniformLearner(len(codes)),
    "TS Beta(1,1) per creative": lambda codes: BetaThompson(len(codes), 1.0, 1.0),
    "TS Beta(1,49) per creative": lambda codes: BetaThompson(
        len(codes), TYPICAL_CTR * PRIOR_IMPRESSIONS, (1 - TYPICAL_CTR) * PRIOR_IMPRESSIONS),
    "eps-greedy 0.1": lambda codes: EpsilonGreedy(len(codes), 0.1),
    "eps-greedy min(1, 1000/t)": lambda codes: EpsilonGreedy(len(codes), None),
    "TS logistic, elements": element_thompson,
    "TS logistic, pairwise (MVT)": pairwise_thompson,
    "TS elements + residual (MIL-style)": residual_thompson,
}


# ---------------------------------------------------------------- simulation


@dataclass(frozen=True)
class RunResult:
    """One learner on one seed: cumulative regret at batch ends and the last window's allocation."""

    learner: str
    seed: int
    ends: np.ndarray  # impressions seen at the end of each batch
    regret: np.ndarray  # cumulative regret (expected clicks) at those ends
    checkpoints: dict[int, float]
    best_share: float
    top_share: float
    seconds: float


def report_points(horizon: int) -> list[int]:
    """The impressions at which cumulative regret is reported."""
    return sorted({c for c in CHECKPOINTS if c <= horizon} | {horizon})


def simulate(learner_name: str, seed: int, creatives: AESCreatives, horizon: int, batch: int) -> RunResult:
    """Run one learner for ``horizon`` impressions in batches of ``batch``; clicks ~ Bernoulli(real CTR)."""
    started = time.perf_counter()
    rng = np.random.default_rng([seed, list(LEARNERS).index(learner_name)])
    learner = LEARNERS[learner_name](creatives.codes)
    chosen = np.empty(horizon, dtype=np.int64)
    for start in range(0, horizon, batch):
        n = min(batch, horizon - start)
        indices = learner.choose(rng, n)
        clicks = (rng.random(n) < creatives.ctr[indices]).astype(float)
        learner.update(indices, clicks)
        chosen[start : start + n] = indices
    cumulative = np.cumsum(creatives.ctr.max() - creatives.ctr[chosen])
    ends = np.minimum(np.arange(batch, horizon + batch, batch), horizon)
    last = chosen[-min(LAST_WINDOW, horizon):]
    return RunResult(
        learner=learner_name,
        seed=seed,
        ends=ends,
        regret=cumulative[ends - 1],
        checkpoints={c: float(cumulative[c - 1]) for c in report_points(horizon)},
        best_share=float(np.mean(last == creatives.best)),
        top_share=float(np.mean(np.isin(last, creatives.top))),
        seconds=time.perf_counter() - started,
    )


def run_all(creatives: AESCreatives, seeds: int, horizon: int, batch: int, workers: int) -> list[RunResult]:
    """Every learner on every seed, over ``workers`` processes."""
    jobs = [(name, seed) for name in LEARNERS for seed in range(seeds)]
    if workers <= 1:
        return [simulate(name, seed, creatives, horizon, batch) for name, seed in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(simulate, name, seed, creatives, horizon, batch) for name, seed in jobs]
        return [f.result() for f in futures]


def mean_se(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    se = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else float("nan")
    return float(values.mean()), float(se)


def summary_table(results: list[RunResult], horizon: int) -> pd.DataFrame:
    """One row per learner: regret at the checkpoints and the last window's shares, mean ± s.e. over seeds."""
    rows = []
    window = min(LAST_WINDOW, horizon)
    for name in LEARNERS:
        runs = [r for r in results if r.learner == name]
        row: dict[str, object] = {"learner": name}
        for c in report_points(horizon):
            m, s = mean_se(np.array([r.checkpoints[c] for r in runs]))
            row[f"regret@{c / 1000:g}k"] = f"{m:.1f} ± {s:.1f}"
        m, s = mean_se(np.array([r.best_share for r in runs]))
        row[f"best share, last {window / 1000:g}k"] = f"{m:.3f} ± {s:.3f}"
        m, s = mean_se(np.array([r.top_share for r in runs]))
        row[f"top-{TOP_K} share, last {window / 1000:g}k"] = f"{m:.3f} ± {s:.3f}"
        row["s/run"] = float(np.mean([r.seconds for r in runs]))
        rows.append(row)
    return pd.DataFrame(rows)


def regret_plot(results: list[RunResult], path: Path, seeds: int, batch: int) -> None:
    """Mean cumulative regret per learner, with a ±1 s.e. band over seeds."""
    series = []
    for name in LEARNERS:
        curves = np.stack([r.regret for r in results if r.learner == name])
        mean = curves.mean(axis=0)
        se = curves.std(axis=0, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else np.zeros_like(mean)
        ends = next(r.ends for r in results if r.learner == name)
        def from_origin(values: np.ndarray) -> np.ndarray:
            return np.concatenate([[0.0], values])

        series.append(LineSeries(name, from_origin(ends), from_origin(mean), from_origin(mean - se),
                                 from_origin(mean + se)))
    line_plot(path, series,
              title=f"AES real CTRs: cumulative regret (mean ± 1 s.e. over {seeds} seeds, batches of {batch})",
              x_label="impressions", y_label="cumulative regret (expected clicks)",
              y_format=lambda v: f"{v:,.0f}", end_format=lambda v: f"{v:,.0f}")


# ---------------------------------------------------------------- report


def report(args: argparse.Namespace, creatives: AESCreatives, results: list[RunResult], table: pd.DataFrame,
           seconds: float) -> str:
    ctr = np.sort(creatives.ctr)[::-1]
    uniform_regret = args.horizon * (ctr[0] - ctr.mean())
    # Impressions per creative at which the best and an average creative's observed CTRs differ by
    # two standard errors of their difference: n = 2^2 (p1 (1 - p1) + p2 (1 - p2)) / (p1 - p2)^2.
    p1, p2 = ctr[0], ctr.mean()
    resolve = 4.0 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p1 - p2) ** 2
    exploring = (f": within {args.horizon:,} impressions a learner that explores every creative is still "
                 "mostly exploring" if args.horizon < resolve * len(ctr) else "")
    plot_link = os.path.relpath(args.plot, args.results.parent)
    final = {name: np.mean([r.checkpoints[args.horizon] for r in results if r.learner == name]) for name in LEARNERS}
    ranking = ", ".join(f"{name} {value:,.0f}" for name, value in sorted(final.items(), key=lambda kv: kv[1]))
    lines = [
        SECTION,
        "",
        (f"Data: `{args.data / 'aes' / 'ctr_online.csv'}`, the real online CTRs of {len(ctr)} composited AES "
         f"creatives (every one feasible). Best CTR {ctr[0]:.5f}, second {ctr[1]:.5f}, fifth {ctr[4]:.5f}, mean "
         f"{ctr.mean():.5f}; uniform allocation loses {uniform_regret:.0f} expected clicks over the horizon. "
         f"Telling the best creative from an average one at two standard errors takes about {resolve:,.0f} "
         f"impressions on each ({resolve * len(ctr):,.0f} for all {len(ctr)}){exploring}. "
         f"Horizon {args.horizon:,} impressions; seeds 0-{args.seeds - 1} ({args.seeds}); each learner chooses "
         f"{args.batch} impressions at a time (one posterior draw per impression, from the posterior held at the "
         f"start of the batch) and sees their clicks at the batch's end. Clicks ~ Bernoulli(real CTR)."),
        "",
        (f"Learners. TS per creative: Beta-Bernoulli Thompson sampling with prior Beta(1,1) or Beta(1,49) "
         f"(centred on {TYPICAL_CTR:.0%}). eps-greedy: observed CTR per creative, epsilon 0.1 or "
         f"min(1, {EPSILON_DECAY_C:g}·200/t). TS logistic: Bayesian logistic regression, Laplace approximation "
         f"refitted each batch by up to {NEWTON_STEPS} warm-started Newton steps on all clicks so far (pooled by "
         f"creative), prior N(logit {TYPICAL_CTR:.0%}, {INTERCEPT_SD:g}²) on the intercept and N(0, {WEIGHT_SD:g}²) "
         f"on every other weight; one weight draw per impression and the argmax over all {len(ctr)} creatives. "
         f"*elements*: one-hot elements ({element_design(creatives.codes).shape[1]} columns with the intercept); "
         "*pairwise (MVT)*: plus every pairwise interaction of two slots (Hill et al., KDD 2017; "
         f"{pairwise_design(creatives.codes).shape[1]} columns, background x colour left out as colours are "
         f"nested in backgrounds; exhaustive search over the {len(ctr)} creatives instead of hill climbing); "
         "*elements + residual (MIL-style)*: the bench's online counterpart of `adcraft.rewards.mil` "
         "(GenCO's multi-instance model with sum pooling: a creative's logit is the sum of its element scores), "
         f"plus a per-creative residual u_c ~ N(0, {WEIGHT_SD:g}²) that shrinks each creative toward its "
         "element-wise prediction; it is written in NumPy in the bench, not the MIL class itself. Regret: "
         "expected clicks lost against always showing the best creative, Σ (best CTR − CTR shown); mean ± "
         f"standard error over seeds. Shares: fraction of the last {min(LAST_WINDOW, args.horizon):,} "
         f"impressions on the best creative and on the top {TOP_K}. `s/run`: seconds per learner and seed."),
        "",
        markdown_table(table, digits=2),
        "",
        f"Mean regret at {args.horizon:,}, lowest first: {ranking}.",
        "",
        f"![regret]({plot_link})",
        "",
        f"Total wall time {seconds:.0f} s on {args.workers} worker process(es).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds (0 .. N-1)")
    parser.add_argument("--horizon", type=int, default=100_000, help="impressions per run")
    parser.add_argument("--batch", type=int, default=100, help="impressions between learner updates")
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--plot", type=Path, default=Path("docs/aes_regret.png"))
    args = parser.parse_args()
    if args.seeds < 1 or args.horizon < 1 or args.batch < 1 or args.workers < 1:
        parser.error("--seeds, --horizon, --batch and --workers must be positive")
    source = args.data / "aes" / "ctr_online.csv"
    if not source.is_file():
        print(f"skipping the AES online benchmark: {source} is absent (point --data at the shared data bundle)")
        sys.exit(0)
    try:
        creatives = load_creatives(source)
    except InputError as error:
        parser.error(str(error))
    print(f"{len(creatives.ctr)} creatives; seeds {args.seeds}; horizon {args.horizon:,}; batch {args.batch}; "
          f"workers {args.workers}", flush=True)

    started = time.perf_counter()
    results = run_all(creatives, args.seeds, args.horizon, args.batch, args.workers)
    seconds = time.perf_counter() - started
    table = summary_table(results, args.horizon)
    print(table.to_string(index=False), flush=True)
    regret_plot(results, args.plot, args.seeds, args.batch)
    text = report(args, creatives, results, table, seconds)
    print(text)
    write_section(args.results, SECTION, text)


if __name__ == "__main__":
    main()
