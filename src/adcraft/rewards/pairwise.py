"""Pairwise reward model of CAIG (arXiv 2502.06823, WWW 2025): which of two creatives of a product is better.

Pairs (``build_pairs``, CAIG's rules): two creatives of the same product that both have at least
``min_impressions`` impressions and a CTR above 0, whose CTR ratio ``ctr_high / ctr_low`` lies in
``[min_ratio, max_ratio]`` (1.05 and 1.20 in CAIG: hard pairs, a 5-20% relative gap); the side of the
better one is randomised. Validation pairs are built the same way from the latest part of the log only
(``time_split``), so they are judged on impressions later than any the model was trained on.

Network: a shared tower reads each creative,

    z = MLP([e_1; ...; e_S; p; v])           slot element vectors, product vector, image vector,

a comparison head gives the logit of P(first is better), antisymmetric by construction,

    l(a, b) = g(f(z_a, z_b)) - g(f(z_b, z_a)),   f(x, y) = [x; y; x - y; x * y],

so that l(a, b) = -l(b, a) and p(a, b) + p(b, a) = 1 exactly (the answer never depends on which side a
creative is shown on), and a point-wise head gives each creative's CTR logit ``w . z + c``. The loss is
CAIG's

    L = lambda_pair * CE(sigmoid(l), first_is_better) + lambda_point * MSE(point predictions, targets)

with lambda_pair = 1 and lambda_point = 0.5 as in the released code. The release regresses raw CTRs;
those are of order 0.01, so their squared errors (~1e-4) vanish beside the cross-entropy (~0.7) and the
point term does nothing. By default (``point_target="logit"``) the point head therefore regresses the
empirical logit ``log((clicks + 0.5) / (trials - clicks + 0.5))`` instead, whose errors are of order 1;
``point_target="ctr"`` reproduces the release. How much the point-wise term should weigh depends on the
data (it shapes the shared tower from each paired creative's own CTR), so by default ``lambda_point`` is
chosen among ``lambda_point_candidates`` on a time split of the training part alone (``PairwiseConfig``).

Reviewers' pairs (``reviewed_pairs``, CAIG's preference data from people rather than clicks): an approved
and a rejected combination of the same product (``pipeline.reviews.preference_pairs``) join the training
pairs with the approved one better. They carry no CTR, so they enter the pair term only, with weight
``reviewed_weight`` each (a logged pair weighs 1), and the point term is averaged over the logged pairs'
creatives alone:

    L = lambda_pair * sum_i w_i CE_i / n + lambda_point * sum_i m_i MSE_i / sum_i m_i,

w_i = 1 for a logged pair and ``reviewed_weight`` for a reviewer's, m_i = 1 for a logged pair and 0 for a
reviewer's. A reviewed creative has no logged image, so a model that reads images reads the mean training
image feature for it. Validation pairs stay logged pairs of the latest impressions: the model is judged on
clicks, whatever its reviewers taught it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, get_args

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from adcraft.configuration import check_config, from_mapping
from adcraft.errors import InputError
from adcraft.learning.artifacts import load_artifact, save_artifact
from adcraft.learning.checkpoint import array_digest
from adcraft.learning.metrics import log_loss
from adcraft.learning.training import TrainConfig, TrainHistory, fit
from adcraft.market import Market
from adcraft.market.click_log import (
    SplitConfig,
    click_log,
    creative_outcomes,
    past_creatives,
    scores_frame,
    time_split,
)
from adcraft.rewards.encoding import (
    CreativeBatch,
    CreativeTower,
    CreativeVocabulary,
    EncodingConfig,
    creative_image_features,
    element_text_matrix,
    image_rows,
    make_batch,
    market_image_rows,
    with_new_elements,
)
from adcraft.rewards.judge import Capabilities

if TYPE_CHECKING:
    from adcraft.learning.distributed import DataParallel

logger = logging.getLogger(__name__)
KIND = "pairwise"
PAPER_MIN_IMPRESSIONS = 1000  # CAIG's threshold on its production log
AUTO_QUANTILE = 0.25  # min_impressions="auto": this quantile of the creatives' impressions ...
AUTO_FLOOR = 50  # ... but never fewer impressions than this, nor more than PAPER_MIN_IMPRESSIONS
PAIR_COLUMNS = (
    "product_id",
    "creative_first",
    "creative_second",
    "elements_first",
    "elements_second",
    "clicks_first",
    "clicks_second",
    "trials_first",
    "trials_second",
    "ctr_first",
    "ctr_second",
    "first_is_better",
)
OUTCOME_COLUMNS = ("creative_id", "product_id", "elements", "clicks", "trials", "ctr")
REVIEWED_COLUMNS = ("product_id", "approved", "rejected")  # pipeline.reviews.preference_pairs
PAIR_WEIGHT, POINT_WEIGHT = "pair_weight", "point_weight"  # extra columns of training pairs with reviewers' pairs
REVIEWED_CREATIVE = ""  # a reviewed creative's id in a pair: it has no logged image (the mean image is read)
PointTarget = Literal["logit", "ctr"]
POINT_TARGETS: tuple[str, ...] = get_args(PointTarget)
CHUNK = 8192  # rows per forward pass at prediction time
RATIO_TOLERANCE = 1e-9  # ratio bounds are inclusive up to rounding (21/1000 over 20/1000 is 1.05)


@dataclass(frozen=True)
class PairConfig:
    """Which creative pairs train and validate the model (CAIG's rules, module docstring).

    min_impressions: impressions each creative of a pair needs. CAIG used 1000 on a production log.
        ``"auto"`` (the default) adapts it to the market: the 25th percentile of the creatives' impressions
        in the part of the log at hand (training or validation), at least 50, so that the least-shown
        quarter of creatives, whose CTRs are mostly noise, is left out, and at most CAIG's 1000, which a
        market with enough traffic gets. The threshold used is in the model's ``metrics``.
    min_ratio, max_ratio: inclusive bounds on ``ctr_high / ctr_low``; ``max_ratio=None`` has no upper
        bound. Pairs with equal CTRs are never kept (neither side is better).
    require_positive_ctr: keep only creatives with at least one click (CAIG). Without it a pair whose
        worse creative has no click has an infinite ratio and needs ``max_ratio=None``.
    seed: of the coin that decides on which side the better creative is put.
    """

    min_impressions: int | Literal["auto"] = "auto"
    min_ratio: float = 1.05
    max_ratio: float | None = 1.20
    require_positive_ctr: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self)
        auto = self.min_impressions == "auto"
        if not auto and (isinstance(self.min_impressions, bool) or not isinstance(self.min_impressions, int)
                         or self.min_impressions < 0):
            raise InputError(f"min_impressions must be 'auto' or a whole number >= 0, got {self.min_impressions!r}")
        if not self.min_ratio >= 1.0:
            raise InputError(f"min_ratio must be at least 1 (it bounds ctr_high / ctr_low), got {self.min_ratio}")
        if self.max_ratio is not None and not self.max_ratio >= self.min_ratio:
            raise InputError(f"max_ratio ({self.max_ratio}) must be at least min_ratio ({self.min_ratio}), or None")


def impression_threshold(outcomes: pd.DataFrame, config: PairConfig) -> int:
    """The impressions a creative needs to enter a pair (``config.min_impressions``, 'auto' resolved)."""
    if config.min_impressions != "auto":
        return int(config.min_impressions)
    if outcomes.empty:
        return AUTO_FLOOR
    quartile = int(np.ceil(np.quantile(outcomes["trials"].to_numpy(dtype=float), AUTO_QUANTILE)))
    return min(PAPER_MIN_IMPRESSIONS, max(AUTO_FLOOR, quartile))


def build_pairs(outcomes: pd.DataFrame, config: PairConfig = PairConfig()) -> pd.DataFrame:
    """Every qualifying pair of creatives of the same product (columns ``PAIR_COLUMNS``).

    ``outcomes`` is ``creative_outcomes(log)``. The better creative (higher observed CTR) is put first
    or second at random (``first_is_better`` is 1 or 0). Raises ``InputError`` with the counts at each
    rule when no pair qualifies.
    """
    missing = [c for c in OUTCOME_COLUMNS if c not in outcomes.columns]
    if missing:
        raise InputError(f"creative outcomes lack the columns {missing}; build them with creative_outcomes(log)")
    threshold = impression_threshold(outcomes, config)
    shown = outcomes[outcomes["trials"] >= threshold]
    eligible = shown[shown["ctr"] > 0] if config.require_positive_ctr else shown
    eligible = eligible[list(OUTCOME_COLUMNS)].sort_values("creative_id")
    joined = eligible.merge(eligible, on="product_id", suffixes=("_a", "_b"))
    joined = joined[joined["creative_id_a"] < joined["creative_id_b"]].reset_index(drop=True)
    ctr_a, ctr_b = joined["ctr_a"].to_numpy(dtype=float), joined["ctr_b"].to_numpy(dtype=float)
    high, low = np.maximum(ctr_a, ctr_b), np.minimum(ctr_a, ctr_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(low > 0, high / np.where(low > 0, low, 1.0), np.inf)
    keep = (high > low) & (ratio >= config.min_ratio * (1 - RATIO_TOLERANCE))
    if config.max_ratio is not None:
        keep &= ratio <= config.max_ratio * (1 + RATIO_TOLERANCE)
    if not keep.any():
        raise InputError(_no_pairs_message(outcomes, shown, eligible, len(joined), threshold, config))
    joined = joined[keep].reset_index(drop=True)
    a_is_better = (joined["ctr_a"] > joined["ctr_b"]).to_numpy()
    first_is_better = np.random.default_rng(config.seed).integers(0, 2, size=len(joined)).astype(bool)
    a_first = a_is_better == first_is_better  # put a first when its rank matches the coin
    columns = {"product_id": joined["product_id"]}
    for name in ("creative_id", "elements", "clicks", "trials", "ctr"):
        target = "creative" if name == "creative_id" else name
        a, b = joined[f"{name}_a"].to_numpy(), joined[f"{name}_b"].to_numpy()
        columns[f"{target}_first"] = np.where(a_first, a, b)
        columns[f"{target}_second"] = np.where(a_first, b, a)
    columns["first_is_better"] = first_is_better.astype(np.int64)
    pairs = pd.DataFrame(columns)[list(PAIR_COLUMNS)]
    pairs.attrs["min_impressions"] = threshold  # the threshold used ('auto' resolved), for the model's metrics
    return pairs


def _no_pairs_message(
    outcomes: pd.DataFrame,
    shown: pd.DataFrame,
    eligible: pd.DataFrame,
    n_candidates: int,
    threshold: int,
    config: PairConfig,
) -> str:
    band = f"[{config.min_ratio:g}, {'inf' if config.max_ratio is None else f'{config.max_ratio:g}'}]"
    median = float(outcomes["trials"].median()) if len(outcomes) else 0.0
    clicked = f", {len(eligible)} of them with a CTR above 0" if config.require_positive_ctr else ""
    per_product = eligible.groupby("product_id").size()
    return (
        f"no pair of creatives qualifies for the pairwise reward model: {len(shown)} of {len(outcomes)} "
        f"creatives have at least {threshold} impressions{clicked}; {int((per_product >= 2).sum())} products "
        f"have two or more such creatives, giving {n_candidates} same-product pairs, none with a CTR ratio "
        f"in {band}. Lower min_impressions (the median creative has {median:.0f} impressions; 'auto' takes "
        f"the 25th percentile, at least {AUTO_FLOOR}) or widen min_ratio/max_ratio."
    )


def bayes_optimal_accuracy(
    pairs: pd.DataFrame, true_ctr_first: Sequence[float] | np.ndarray, true_ctr_second: Sequence[float] | np.ndarray
) -> float:
    """Accuracy, against the observed labels, of always picking the truly better creative.

    The observed label (which creative had the higher observed CTR) is itself noisy, so even a model
    that knows the true CTRs agrees with it only this often: the ceiling a trained model is compared
    with. Pairs whose true CTRs are equal count one half.
    """
    first, second = np.asarray(true_ctr_first, dtype=float), np.asarray(true_ctr_second, dtype=float)
    if not len(first) == len(second) == len(pairs):
        raise InputError(f"got {len(first)} and {len(second)} true CTRs for {len(pairs)} pairs")
    if len(pairs) == 0:
        raise InputError("no pairs to score")
    label = pairs["first_is_better"].to_numpy().astype(bool)
    right = np.where(first == second, 0.5, (first > second) == label)
    return float(right.mean())


@dataclass(frozen=True)
class PairwiseConfig:
    """Settings of the pairwise reward model (module docstring).

    encoding: how creatives are read; the rendered images are part of what CAIG's model sees, hence
        ``image_backbone="efficientnet-lite0"`` by default ("tiny" and "none" also work).
    point_target: what the point-wise head regresses, "logit" (empirical logit CTR, default) or "ctr"
        (raw CTR, as in the release).
    lambda_point_candidates: when not empty, ``lambda_point`` is chosen among these values before the
        final fit, without looking at the validation pairs: the training part of the log is split again by
        time (``split``), a model per candidate is fitted on the earlier pairs, and the candidate with the
        lowest pair cross-entropy on the later pairs wins (``lambda_point`` is used when that inner split
        has no pairs). The point-wise term shapes the shared tower from every paired creative's own CTR,
        and how much that helps the comparison depends on how many pairs there are.
    train: optimiser settings; batches are small by default because pair sets are small.
    reviewed_weight: the weight of one reviewer's approved-over-rejected pair in the pair term, against 1 for
        a logged pair (module docstring; > 0). Reviewer pairs are given to ``PairwiseTrainer.fit``.
    """

    encoding: EncodingConfig = field(default_factory=lambda: EncodingConfig(image_backbone="efficientnet-lite0"))
    pairs: PairConfig = field(default_factory=PairConfig)
    hidden: int = 64
    lambda_pair: float = 1.0
    lambda_point: float = 0.5
    point_target: PointTarget = "logit"
    lambda_point_candidates: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=64, learning_rate=0.003))
    split: SplitConfig = field(default_factory=SplitConfig)
    reviewed_weight: float = 1.0

    def __post_init__(self) -> None:
        check_config(self)
        if not (np.isfinite(self.reviewed_weight) and self.reviewed_weight > 0):
            raise InputError(f"reviewed_weight must be a finite number > 0, got {self.reviewed_weight}")
        if self.hidden < 1:
            raise InputError(f"hidden must be at least 1, got {self.hidden}")
        if self.lambda_pair < 0 or self.lambda_point < 0 or self.lambda_pair + self.lambda_point <= 0:
            raise InputError("lambda_pair and lambda_point must be >= 0 and not both 0")
        object.__setattr__(self, "lambda_point_candidates", tuple(float(v) for v in self.lambda_point_candidates))
        if any(not np.isfinite(v) or v < 0 for v in self.lambda_point_candidates):
            raise InputError(f"lambda_point_candidates must be finite and >= 0, got {self.lambda_point_candidates}")
        if self.point_target not in POINT_TARGETS:
            raise InputError(f"point_target must be one of {', '.join(POINT_TARGETS)}, got {self.point_target!r}")


def pair_split(log: pd.DataFrame, config: PairwiseConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and validation pairs: ``build_pairs`` on each part of ``time_split(log, config.split)``."""
    parts = time_split(log, config.split)
    pairs = []
    for name, part in zip(("training", "validation"), parts):
        try:
            pairs.append(build_pairs(creative_outcomes(part), config.pairs))
        except InputError as error:
            share = config.split.valid_fraction if name == "validation" else 1 - config.split.valid_fraction
            hint = " A larger split.valid_fraction also gives the validation part more." if name == "validation" else ""
            raise InputError(f"in the {name} part of the log ({share:.0%} of its impressions): {error}{hint}") from None
    return pairs[0], pairs[1]


def point_targets(clicks: np.ndarray, trials: np.ndarray, point_target: str) -> np.ndarray:
    """What the point-wise head regresses: empirical logit CTR or raw CTR (module docstring)."""
    if point_target == "logit":
        return np.log((clicks + 0.5) / (trials - clicks + 0.5))
    return clicks / trials


def reviewed_pairs(reviewed: pd.DataFrame, market: Market, weight: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Reviewers' approved-over-rejected pairs as training pairs (module docstring).

    ``reviewed`` has the columns ``REVIEWED_COLUMNS`` (``pipeline.reviews.preference_pairs``). A pair is
    kept when its product is in ``market`` and both combinations have one element of the market per slot, in
    the slots' order (a reviewer's pair of elements the market no longer has teaches nothing it can use).
    Returns ``PAIR_COLUMNS`` plus ``PAIR_WEIGHT`` (``weight``) and ``POINT_WEIGHT`` (0): the approved
    combination is first or second by a coin (``seed``), as in ``build_pairs``; the clicks and trials are
    placeholders that the point term never reads. ``attrs["left_out"]`` counts the pairs not kept.
    """
    missing = [c for c in REVIEWED_COLUMNS if c not in reviewed.columns]
    if missing:
        raise InputError(f"reviewer pairs lack the columns {missing}; build them with preference_pairs(decisions)")
    slots = market.config.slots
    known = market.elements.set_index("element_id")["slot"].to_dict()
    products = set(market.products["product_id"])

    def usable(combo) -> bool:
        combo = list(combo)
        return len(combo) == len(slots) and all(known.get(e) == slot for e, slot in zip(combo, slots))

    keep = [p in products and usable(a) and usable(r) for p, a, r in
            zip(reviewed["product_id"], reviewed["approved"], reviewed["rejected"])]
    kept = reviewed[np.asarray(keep, dtype=bool)] if len(reviewed) else reviewed
    first_is_better = np.random.default_rng(seed).integers(0, 2, size=len(kept)).astype(bool)
    approved = [list(c) for c in kept["approved"]]
    rejected = [list(c) for c in kept["rejected"]]
    n = len(kept)
    pairs = pd.DataFrame({
        "product_id": kept["product_id"].astype(str).to_numpy(),
        "creative_first": [REVIEWED_CREATIVE] * n,
        "creative_second": [REVIEWED_CREATIVE] * n,
        "elements_first": [a if f else r for a, r, f in zip(approved, rejected, first_is_better)],
        "elements_second": [r if f else a for a, r, f in zip(approved, rejected, first_is_better)],
        "clicks_first": np.zeros(n), "clicks_second": np.zeros(n),
        "trials_first": np.ones(n), "trials_second": np.ones(n),
        "ctr_first": np.full(n, np.nan), "ctr_second": np.full(n, np.nan),
        "first_is_better": first_is_better.astype(np.int64),
        PAIR_WEIGHT: np.full(n, float(weight)), POINT_WEIGHT: np.zeros(n),
    })
    pairs.attrs["left_out"] = len(reviewed) - n
    return pairs


def with_reviewed(train_pairs: pd.DataFrame, reviewed: pd.DataFrame | None) -> pd.DataFrame:
    """Logged training pairs and reviewers' (``reviewed_pairs``) in one frame, the logged ones weighing 1 in both
    terms; the logged pairs as they are when there are no reviewer pairs."""
    if reviewed is None or reviewed.empty:
        return train_pairs
    logged = train_pairs.assign(**{PAIR_WEIGHT: 1.0, POINT_WEIGHT: 1.0})
    joined = pd.concat([logged, reviewed], ignore_index=True)
    joined.attrs = dict(train_pairs.attrs)
    return joined


class PairwiseNetwork(nn.Module):
    """Shared creative tower, antisymmetric comparison head and point-wise CTR head (module docstring).

    Image features are standardised with the training creatives' mean and spread (buffers), so a
    creative without an image, given the mean feature, has a zero image input.
    """

    def __init__(self, tower: CreativeTower, hidden: int, image_dim: int) -> None:
        super().__init__()
        d = tower.element_id.embedding_dim
        self.tower = tower
        width = d * (tower.n_slots + 1 + (1 if image_dim else 0))
        self.encoder = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.compare_head = nn.Sequential(nn.Linear(4 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.point_head = nn.Linear(hidden, 1)
        if image_dim:
            self.register_buffer("image_mean", torch.zeros(image_dim))
            self.register_buffer("image_scale", torch.ones(image_dim))

    @property
    def uses_images(self) -> bool:
        return self.tower.image_proj is not None

    def embed(self, batch: CreativeBatch) -> torch.Tensor:
        """(n, hidden) creative vectors z."""
        parts = [self.tower.element_vectors(batch.elements).flatten(1), self.tower.product_vector(batch)]
        if self.uses_images:
            if batch.images is None:
                raise InputError("this pairwise model reads image features; the batch has none")
            parts.append(self.tower.image_proj((batch.images - self.image_mean) / self.image_scale))
        return self.encoder(torch.cat(parts, dim=1))

    def compare(self, z_first: torch.Tensor, z_second: torch.Tensor) -> torch.Tensor:
        """Logit of P(first is better): g(f(a, b)) - g(f(b, a)), exactly antisymmetric."""
        forward = torch.cat([z_first, z_second, z_first - z_second, z_first * z_second], dim=1)
        backward = torch.cat([z_second, z_first, z_second - z_first, z_second * z_first], dim=1)
        return (self.compare_head(forward) - self.compare_head(backward)).squeeze(1)

    def point(self, z: torch.Tensor) -> torch.Tensor:
        """CTR logit of each creative."""
        return self.point_head(z).squeeze(1)

    def forward(
        self, first: CreativeBatch, second: CreativeBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pair logit, CTR logit of first, CTR logit of second)."""
        z_first, z_second = self.embed(first), self.embed(second)
        return self.compare(z_first, z_second), self.point(z_first), self.point(z_second)


def pairwise_loss(
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    first_is_better: torch.Tensor,
    target_first: torch.Tensor,
    target_second: torch.Tensor,
    config: PairwiseConfig,
    pair_weight: torch.Tensor | None = None,
    point_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """lambda_pair * CE + lambda_point * MSE over both creatives of each pair (module docstring); with
    ``pair_weight`` (w_i) and ``point_weight`` (m_i), the weighted form for reviewers' pairs."""
    pair_logit, point_first, point_second = outputs
    if config.point_target == "ctr":
        point_first, point_second = torch.sigmoid(point_first), torch.sigmoid(point_second)
    ce = F.binary_cross_entropy_with_logits(pair_logit, first_is_better, weight=pair_weight)
    if point_weight is None:
        mse = 0.5 * (F.mse_loss(point_first, target_first) + F.mse_loss(point_second, target_second))
    else:
        squared = 0.5 * ((point_first - target_first) ** 2 + (point_second - target_second) ** 2)
        mse = (point_weight * squared).sum() / point_weight.sum().clamp(min=1.0)
    return config.lambda_pair * ce + config.lambda_point * mse


def probability_from_logit(logit: np.ndarray) -> np.ndarray:
    """sigmoid(logit) in float64, computed so that p(l) + p(-l) == 1 exactly.

    For l >= 0, s = sigmoid(l) lies in [0.5, 1], where 1 - s is exact in floating point; p(-l) is
    taken as that 1 - s, and s + (1 - s) rounds to exactly 1.
    """
    logit = np.asarray(logit, dtype=np.float64)
    s = 1.0 / (1.0 + np.exp(-np.abs(logit)))
    return np.where(logit >= 0, s, 1.0 - s)


class PairwiseModel:
    """A trained CAIG pairwise reward model with its vocabulary.

    A model that reads images and gets no image features for a creative (``images=None``, or a row of
    NaN) uses the mean image feature of the training creatives for it.

    A judge (:class:`adcraft.rewards.judge.Judge`) that compares two combinations, scores one with its
    point head, reads image features and learns new elements by their words.
    """

    kind: ClassVar[str] = KIND
    config_class: ClassVar[type] = PairwiseConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        scores_combinations=True, reads_image_features=True, adds_elements=True, compares_pairs=True, resumable=True)

    def __init__(
        self,
        config: PairwiseConfig,
        vocab: CreativeVocabulary,
        network: PairwiseNetwork,
        history: TrainHistory | None = None,
        n_train_pairs: int = 0,
        n_valid_pairs: int = 0,
        valid_accuracy: float | None = None,
        min_impressions_used: dict[str, int] | None = None,
    ) -> None:
        self.config = config
        self.vocab = vocab
        self.network = network.eval()
        self.history = history or TrainHistory()
        self.n_train_pairs = n_train_pairs
        self.n_valid_pairs = n_valid_pairs
        self.valid_accuracy = valid_accuracy
        self.min_impressions_used = min_impressions_used or {}  # per part of the log: the pair threshold used
        self.valid_cross_entropy: float | None = None
        self.lambda_point_selection: dict[float, float] | None = None  # candidate -> inner validation CE
        self.reviewed_pairs: dict[str, int] | None = None  # reviewers' pairs used and left out; None: none given

    @classmethod
    def train(
        cls, market: Market, config: PairwiseConfig, *, progress: bool = False, checkpoint: Path | None = None,
        world: DataParallel | None = None,
    ) -> PairwiseModel:
        """A model fitted on ``market`` by :class:`PairwiseTrainer` (``checkpoint``, ``world`` as there)."""
        return PairwiseTrainer(config).fit(market, progress, checkpoint=checkpoint, world=world)

    def metrics(self, market: Market) -> dict:
        """Pair accuracy on the validation pairs, the pair counts, the chosen ``lambda_point`` and the training
        history (``market`` is not read again: the trainer validated on its pairs)."""
        selection = self.lambda_point_selection
        return {
            "pairwise": {
                "valid_accuracy": self.valid_accuracy,
                "train_pairs": self.n_train_pairs,
                "valid_pairs": self.n_valid_pairs,
                "min_impressions": self.config.pairs.min_impressions,
                "min_impressions_used": self.min_impressions_used,
                "lambda_point": self.config.lambda_point,
                "lambda_point_selection": None if selection is None else {str(k): v for k, v in selection.items()},
                "reviewed_pairs": self.reviewed_pairs,
            },
            "history": self.history.to_json(),
        }

    @property
    def mean_image(self) -> np.ndarray | None:
        """The mean training image feature (None for a model without images)."""
        return self.network.image_mean.numpy().copy() if self.network.uses_images else None

    def _images(self, n: int, images: np.ndarray | None) -> np.ndarray | None:
        mean = self.mean_image
        if mean is None:
            return None
        if images is None:
            return np.repeat(mean[None, :], n, axis=0)
        images = np.array(images, dtype=np.float32)
        if images.shape != (n, mean.shape[0]):
            raise InputError(f"image features must have shape ({n}, {mean.shape[0]}), got {images.shape}")
        missing = np.isnan(images).any(axis=1)
        images[missing] = mean
        return images

    def _embed(
        self, product_ids: Sequence[str], combos: Sequence[Sequence[str]], images: np.ndarray | None
    ) -> torch.Tensor:
        if len(combos) != len(product_ids):
            raise InputError(f"got {len(combos)} combinations for {len(product_ids)} products")
        images = self._images(len(product_ids), images)
        batch = make_batch(self.vocab, self.config.encoding, product_ids, combos, images=images)
        with torch.no_grad():
            return torch.cat([self.network.embed(batch.take(torch.arange(i, min(i + CHUNK, len(batch)))))
                              for i in range(0, len(batch), CHUNK)] or [torch.zeros(0, self.config.hidden)])

    def prob_first_better(
        self,
        product_ids: Sequence[str],
        combos_a: Sequence[Sequence[str]],
        combos_b: Sequence[Sequence[str]],
        images_a: np.ndarray | None = None,
        images_b: np.ndarray | None = None,
    ) -> np.ndarray:
        """P(combination a beats combination b) for each product; ``p(a, b) + p(b, a) == 1`` exactly."""
        z_a = self._embed(product_ids, combos_a, images_a)
        z_b = self._embed(product_ids, combos_b, images_b)
        with torch.no_grad():
            logit = self.network.compare(z_a, z_b).numpy()
        return probability_from_logit(logit)

    def predict_ctr(
        self, product_ids: Sequence[str], combos: Sequence[Sequence[str]], contexts: Sequence[str] | None = None,
        images: np.ndarray | None = None,
    ) -> np.ndarray:
        """Point-wise CTR of each (product, combination) from the point head.

        The point head reads no context: ``contexts`` (one per row when given) does not change the CTR.
        """
        if contexts is not None and len(contexts) != len(product_ids):
            raise InputError(f"got {len(contexts)} contexts for {len(product_ids)} products")
        z = self._embed(product_ids, combos, images)
        with torch.no_grad():
            return probability_from_logit(self.network.point(z).numpy())

    def with_elements(self, elements: pd.DataFrame) -> PairwiseModel:
        """A copy that also scores ``elements`` it never saw, by their words (:func:`with_new_elements`)."""
        return with_new_elements(self, elements)

    def score_market(self, market: Market) -> pd.DataFrame:
        """Point-wise CTR of every past creative of a market, from the point head."""
        creatives = past_creatives(market)
        ids = creatives["creative_id"].tolist()
        images = market_image_rows(market, ids, self.config.encoding, self.mean_image)
        ctr = self.predict_ctr(creatives["product_id"].tolist(), creatives["elements"].tolist(), images=images)
        return scores_frame(creatives, ctr)

    def pairwise_accuracy(self, pairs: pd.DataFrame, image_features: Mapping[str, np.ndarray] | None = None) -> float:
        """Share of ``build_pairs`` rows whose better side the model picks (p > 0.5 means first).

        ``image_features`` maps creative ids to image features (``creative_image_features``); creatives
        missing from it get the mean training feature.
        """
        p = self.pair_probabilities(pairs, image_features)
        return float(np.mean((p > 0.5) == pairs["first_is_better"].to_numpy().astype(bool)))

    def pair_probabilities(
        self, pairs: pd.DataFrame, image_features: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """P(first is better) of each ``build_pairs`` row (``image_features`` as in ``pairwise_accuracy``)."""
        if len(pairs) == 0:
            raise InputError("no pairs to score")
        images = [self._pair_images(pairs[f"creative_{side}"], image_features) for side in ("first", "second")]
        return self.prob_first_better(
            pairs["product_id"].tolist(), pairs["elements_first"].tolist(), pairs["elements_second"].tolist(),
            images[0], images[1],
        )

    def _pair_images(self, creative_ids: pd.Series, features: Mapping[str, np.ndarray] | None) -> np.ndarray | None:
        return image_rows(features, creative_ids, self.mean_image) if features else None

    def save(self, folder: Path) -> None:
        """Write ``config.json`` + ``model.safetensors`` to ``folder``."""
        tensors = {f"network.{k}": v for k, v in self.network.state_dict().items()}
        save_artifact(
            folder,
            KIND,
            asdict(self.config),
            tensors,
            extra={
                "vocab": self.vocab.to_json(),
                "text_dim": int(self.network.tower.text.shape[1]),
                "image_dim": 0 if self.mean_image is None else int(self.mean_image.shape[0]),
                "history": self.history.to_json(),
                "n_train_pairs": self.n_train_pairs,
                "n_valid_pairs": self.n_valid_pairs,
                "valid_accuracy": self.valid_accuracy,
                "min_impressions_used": self.min_impressions_used,
                "reviewed_pairs": self.reviewed_pairs,
            },
        )

    @classmethod
    def load(cls, folder: Path) -> PairwiseModel:
        """Read a model written by ``save``; ``InputError`` if the folder holds no pairwise model."""
        artifact = load_artifact(folder, expected_kind=KIND)
        config = from_mapping(PairwiseConfig, artifact.config)
        extra = artifact.extra or {}
        vocab = CreativeVocabulary.from_json(extra["vocab"])
        text = np.zeros((len(vocab.elements) + 1, extra["text_dim"]), dtype=np.float32)
        network = _network(config, vocab, text, extra["image_dim"])
        state = {k.removeprefix("network."): v for k, v in artifact.tensors.items() if k.startswith("network.")}
        network.load_state_dict(state)
        model = cls(
            config, vocab, network, TrainHistory(**extra.get("history", {})),
            extra.get("n_train_pairs", 0), extra.get("n_valid_pairs", 0), extra.get("valid_accuracy"),
            extra.get("min_impressions_used"),
        )
        model.reviewed_pairs = extra.get("reviewed_pairs")
        return model


def _network(config: PairwiseConfig, vocab: CreativeVocabulary, text: np.ndarray, image_dim: int) -> PairwiseNetwork:
    tower = CreativeTower(vocab, config.encoding, text, image_dim=image_dim)
    return PairwiseNetwork(tower, config.hidden, image_dim)


@dataclass
class _PairTensors:
    first: CreativeBatch
    second: CreativeBatch
    label: torch.Tensor
    target_first: torch.Tensor
    target_second: torch.Tensor
    pair_weight: torch.Tensor | None = None  # None: every pair is a logged one (weights of 1)
    point_weight: torch.Tensor | None = None

    def take(self, index: torch.Tensor) -> _PairTensors:
        return _PairTensors(
            self.first.take(index), self.second.take(index), self.label[index],
            self.target_first[index], self.target_second[index],
            None if self.pair_weight is None else self.pair_weight[index],
            None if self.point_weight is None else self.point_weight[index],
        )

    def weights(self) -> tuple[torch.Tensor, ...]:
        return tuple(w for w in (self.pair_weight, self.point_weight) if w is not None)


def _pair_tensors(
    pairs: pd.DataFrame,
    vocab: CreativeVocabulary,
    config: PairwiseConfig,
    features: Mapping[str, np.ndarray],
    mean_image: np.ndarray | None,
) -> _PairTensors:
    sides = []
    for side in ("first", "second"):
        images = image_rows(features, pairs[f"creative_{side}"], mean_image)
        sides.append(make_batch(
            vocab, config.encoding, pairs["product_id"].tolist(), pairs[f"elements_{side}"].tolist(), images=images
        ))
    targets = [
        torch.as_tensor(point_targets(pairs[f"clicks_{s}"].to_numpy(float), pairs[f"trials_{s}"].to_numpy(float),
                                      config.point_target), dtype=torch.float32)
        for s in ("first", "second")
    ]
    label = torch.tensor(pairs["first_is_better"].to_numpy(), dtype=torch.float32)
    weights = [torch.tensor(pairs[c].to_numpy(dtype=np.float32, copy=True)) if c in pairs else None
               for c in (PAIR_WEIGHT, POINT_WEIGHT)]
    return _PairTensors(sides[0], sides[1], label, targets[0], targets[1], *weights)


class PairwiseTrainer:
    """Fits a ``PairwiseModel`` on a market's logs (pairs from ``pair_split``)."""

    def __init__(self, config: PairwiseConfig | None = None) -> None:
        self.config = config or PairwiseConfig()

    def fit(
        self, market: Market, progress: bool = False, *, checkpoint: Path | None = None,
        world: DataParallel | None = None, on_epoch: Callable[[int], None] | None = None,
        reviewed: pd.DataFrame | None = None,
    ) -> PairwiseModel:
        """Train on ``market``; ``checkpoint``, ``world`` and ``on_epoch`` as in ``training.fit`` (a killed
        run resumes from the checkpoint folder; ``world`` trains data-parallel). ``reviewed``: reviewers'
        approved-over-rejected pairs (``REVIEWED_COLUMNS``), which join the training pairs of the final fit
        and of every ``lambda_point`` candidate (``reviewed_pairs``; module docstring)."""
        log = click_log(market)
        train_pairs, valid_pairs = pair_split(log, self.config)
        taught = None
        if reviewed is not None:
            taught = reviewed_pairs(reviewed, market, self.config.reviewed_weight, self.config.pairs.seed)
        inner = self._inner_pairs(log)
        if inner is not None:
            inner = (with_reviewed(inner[0], taught), inner[1])
        shared = _SharedInputs.of(market, self.config, [train_pairs, valid_pairs, *(inner or ())])
        config, selection = self._chosen_config(market, log, shared, inner)
        model = _fit_pairs(market, config, shared, with_reviewed(train_pairs, taught), valid_pairs, progress,
                           checkpoint=checkpoint, world=world, on_epoch=on_epoch)
        model.lambda_point_selection = selection
        if taught is not None:
            model.reviewed_pairs = {"used": len(taught), "left_out": int(taught.attrs["left_out"])}
        return model

    def _inner_pairs(self, log: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """Pairs of the earlier and later part of the log's training part, to choose ``lambda_point`` on;
        None when there are no candidates or that split has no pairs."""
        config = self.config
        if not config.lambda_point_candidates:
            return None
        try:
            return pair_split(time_split(log, config.split)[0], config)
        except InputError as error:
            logger.warning("lambda_point kept at %s: the training part has no inner validation pairs (%s)",
                           config.lambda_point, error)
            return None

    def _chosen_config(
        self, market: Market, log: pd.DataFrame, shared: _SharedInputs | None = None,
        inner: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    ) -> tuple[PairwiseConfig, dict[float, float] | None]:
        """The config with ``lambda_point`` chosen on the training part only (see ``PairwiseConfig``), and the
        inner validation pair cross-entropy of each candidate (None when nothing was chosen)."""
        config = self.config
        inner = inner if inner is not None else self._inner_pairs(log)
        if inner is None:
            return config, None
        shared = shared or _SharedInputs.of(market, config, list(inner))
        losses = {
            candidate: _fit_pairs(market, replace(config, lambda_point=candidate, lambda_point_candidates=()),
                                  shared, *inner, progress=False).valid_cross_entropy
            for candidate in config.lambda_point_candidates
        }
        best = min(losses, key=lambda candidate: (losses[candidate], candidate))
        return replace(config, lambda_point=best), losses


@dataclass(frozen=True)
class _SharedInputs:
    """What every fit on one market reads the same way: the vocabulary, its element text features and the
    image features of every creative in the pair sets it will see (read once, not once per candidate)."""

    vocab: CreativeVocabulary
    text: np.ndarray
    features: dict[str, np.ndarray]

    @classmethod
    def of(cls, market: Market, config: PairwiseConfig, pair_sets: Sequence[pd.DataFrame]) -> _SharedInputs:
        vocab = CreativeVocabulary.from_market(market)
        creatives = [c for pairs in pair_sets for side in ("first", "second") for c in pairs[f"creative_{side}"]
                     if c != REVIEWED_CREATIVE]
        return cls(vocab, element_text_matrix(vocab, config.encoding),
                   creative_image_features(market, creatives, config.encoding))


def _fit_pairs(
    market: Market, config: PairwiseConfig, shared: _SharedInputs, train_pairs: pd.DataFrame,
    valid_pairs: pd.DataFrame, progress: bool, *, checkpoint: Path | None = None,
    world: DataParallel | None = None, on_epoch: Callable[[int], None] | None = None,
) -> PairwiseModel:
    """One pairwise model fitted on ``train_pairs`` (early stopping on ``valid_pairs``), with its accuracy and
    pair cross-entropy on ``valid_pairs``."""
    torch.manual_seed(config.train.seed)
    vocab, features = shared.vocab, shared.features
    creatives = pd.concat([train_pairs[f"creative_{s}"] for s in ("first", "second")]).unique().tolist()
    seen = np.stack([features[c] for c in creatives if c in features]) if features else None
    network = _network(config, vocab, shared.text, 0 if seen is None else seen.shape[1])
    mean_image = None
    if seen is not None:
        mean_image = seen.mean(axis=0).astype(np.float32)
        scale = seen.std(axis=0)
        network.image_mean.copy_(torch.from_numpy(mean_image))
        network.image_scale.copy_(torch.from_numpy(np.where(scale > 1e-6, scale, 1.0).astype(np.float32)))
    train = _pair_tensors(train_pairs, vocab, config, features, mean_image)
    valid = _pair_tensors(valid_pairs, vocab, config, features, mean_image)
    with_ctr = slice(None) if train.point_weight is None else train.point_weight > 0  # reviewer pairs have none
    mean_target = float(torch.cat([train.target_first[with_ctr], train.target_second[with_ctr]]).mean())
    if config.point_target == "ctr":
        mean_target = float(np.log(mean_target / (1 - mean_target)))
    network.point_head.bias.data.fill_(mean_target)

    forward = network if world is None else world.wrap(network)

    def loss(part: _PairTensors, through: nn.Module) -> torch.Tensor:
        outputs = through(part.first, part.second)
        return pairwise_loss(outputs, part.label, part.target_first, part.target_second, config,
                             part.pair_weight, part.point_weight)

    data = {part: array_digest(pairs.label, pairs.target_first, pairs.target_second, *pairs.first.tensors(),
                               *pairs.second.tensors(), *pairs.weights())
            for part, pairs in (("train", train), ("valid", valid))}
    history = fit(
        network, len(train_pairs), lambda index: loss(train.take(index), forward),
        lambda: float(loss(valid, network)), config.train, progress, "training pairwise reward model",
        checkpoint=checkpoint, fingerprint=data, world=world, on_epoch=on_epoch,
    )
    used = {part: int(pairs.attrs["min_impressions"]) for part, pairs in (("training", train_pairs),
                                                                        ("validation", valid_pairs))
            if "min_impressions" in pairs.attrs}
    logged = int((train_pairs[POINT_WEIGHT] > 0).sum()) if POINT_WEIGHT in train_pairs else len(train_pairs)
    model = PairwiseModel(config, vocab, network, history, logged, len(valid_pairs), min_impressions_used=used)
    p = model.pair_probabilities(valid_pairs, features)
    label = valid_pairs["first_is_better"].to_numpy().astype(bool)
    model.valid_accuracy = float(np.mean((p > 0.5) == label))
    model.valid_cross_entropy = log_loss(label, p)
    return model


__all__ = [
    "PAIR_COLUMNS",
    "PairConfig",
    "PairwiseConfig",
    "PairwiseModel",
    "PairwiseNetwork",
    "PairwiseTrainer",
    "bayes_optimal_accuracy",
    "build_pairs",
    "impression_threshold",
    "pair_split",
    "pairwise_loss",
    "point_targets",
    "probability_from_logit",
    "reviewed_pairs",
    "with_reviewed",
]
