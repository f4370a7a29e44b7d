"""Multi-instance reward model (GenCO, arXiv 2508.09730, stage 2): clicks on combinations -> element credit.

A combination is a bag whose instances are its elements (one per slot); only the bag's label, the click,
is observed. The model scores each element in its bag and pools the scores into the bag's click
probability, so training on combination-level clicks teaches it what each element contributes.

Element score of the element in slot i, shown for product p in context x (``CreativeTower`` vectors
v_i, p, x)::

    s_i = beta[e_i] + MLP([v_i; p; x])

``beta`` is a per-element bias; the MLP lets an element's effect depend on the product (its id and
category embeddings, hence element x category interactions) and on the context. Pairs of elements
interact through a factorisation machine (Rendle, ICDM 2010) with rank-``interaction_rank``
projections V of the element vectors::

    phi_ij = <V v_i, V v_j>,        Phi = sum_{i<j} phi_ij

Pooling into the bag's click logit (``pooling``), with b a global and b_p a product bias:

    "sum":       logit = b + b_p + sum_i s_i + Phi
    "attention": logit = b + b_p + S * sum_i softmax(a)_i s_i + Phi,   a_i = w . [v_i; p; x]
    "noisy_or":  P = 1 - prod_i (1 - sigmoid(s_i + o)),                o = b + b_p + Phi

GenCO does not publish its pooling; "sum" (a logistic model additive in the instances) is the default.
"attention" multiplies by the number of slots S so that uniform weights give back "sum". In
"noisy_or" every element is an independent chance to be clicked; the bag's biases and interactions
form a per-bag offset o shared by all its elements, as the paper is silent on where they go.

Loss: the impression-weighted binomial NLL of the log's (clicks, trials) rows (``training.binomial_loss``),
i.e. the mean log loss over raw impressions; rows sharing creative and context are pooled over days
first (the model has no time input, so the loss is unchanged). Training stops early on the validation
loss of the time split.

Attributions (logit units) are the Shapley values of the game "bag logit with only the elements in T
switched on" (an element switched off has s_i = 0 and no interactions), with the bias as the value of
the empty bag, so the baseline plus the attributions always equal the bag's logit. For "sum" this is
exactly s_i + (1/2) sum_j phi_ij, for "attention" S softmax(a)_i s_i + (1/2) sum_j phi_ij (the
attention weights held at their values in the bag); for "noisy_or" it is computed by enumerating the
2^S coalitions (sampled permutations beyond 10 slots). GenCO feeds such element-level credit back to
its generator; the paper does not say how it is computed.

``MILConfig.per_element()`` is the baseline without product, context or interactions: s_i = beta[e_i].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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
from adcraft.learning.training import TrainConfig, TrainHistory, fit_click_model
from adcraft.market import Market
from adcraft.market.click_log import (
    SplitConfig,
    click_log,
    context_distribution,
    past_creatives,
    scores_frame,
    time_split,
)
from adcraft.rewards.encoding import (
    UNKNOWN,
    CreativeBatch,
    CreativeTower,
    CreativeVocabulary,
    EncodingConfig,
    element_text_matrix,
    make_batch,
    outcome_tensors,
    with_new_elements,
)
from adcraft.rewards.fast_scoring import (
    CHUNK_ROWS,
    TABLE_VALUES,
    TableScorer,
    click_probability,
    context_table,
    context_terms,
    distinct_keys,
    element_table,
    fixed_order_linear,
    fixed_order_matmul,
    flat_index,
    flat_table,
    product_table,
    row_chunks,
)
from adcraft.rewards.judge import Capabilities, click_validation

if TYPE_CHECKING:
    from adcraft.learning.distributed import DataParallel

KIND = "mil"
Pooling = Literal["sum", "attention", "noisy_or"]
POOLINGS: tuple[str, ...] = get_args(Pooling)
EXACT_SHAPLEY_SLOTS = 10  # beyond this many slots, noisy-or attributions sample permutations
SHAPLEY_PERMUTATIONS = 256


@dataclass(frozen=True)
class MILConfig:
    """Settings of the multi-instance reward model (module docstring for the formulas).

    ``element_only`` replaces the element MLP by the per-element bias alone (no product or context
    input); with ``interactions=False`` it is the per-element baseline, ``MILConfig.per_element()``.
    """

    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    pooling: Pooling = "sum"
    interactions: bool = True
    interaction_rank: int = 8
    element_only: bool = False
    use_context: bool = True
    hidden: int = 32
    # Rows are pooled per (creative, context), so an epoch is only a few steps: more epochs and patience.
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=150, batch_size=256, learning_rate=0.02, patience=10)
    )
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        check_config(self)
        if self.pooling not in POOLINGS:
            raise InputError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.interaction_rank < 1 or self.hidden < 1:
            raise InputError("interaction_rank and hidden must be at least 1")
        if self.encoding.image_backbone != "none":
            raise InputError(
                "the multi-instance model scores elements, not rendered images: "
                "set encoding.image_backbone='none'"
            )

    @classmethod
    def per_element(cls, **overrides: object) -> MILConfig:
        """The per-element baseline: one learned effect per element, no product or context input and
        no interactions (the "per-element model" that the multi-instance model is compared against)."""
        return cls(**{"element_only": True, "interactions": False, "use_context": False, **overrides})


@dataclass
class BagParts:
    """The pieces of a bag's logit: element scores, attention weights, pairwise interactions, biases."""

    scores: torch.Tensor  # (n, S) s_i
    weights: torch.Tensor | None  # (n, S) softmax(a)_i for "attention", else None
    pairs: torch.Tensor | None  # (n, S, S) phi_ij with a zero diagonal, or None without interactions
    base: torch.Tensor  # (n,) b + b_p


class MILNetwork(nn.Module):
    """Element scorer, pairwise interactions and pooling (module docstring)."""

    def __init__(self, tower: CreativeTower, n_elements: int, n_products: int, config: MILConfig) -> None:
        super().__init__()
        d = tower.element_id.embedding_dim
        self.tower = tower
        self.pooling = config.pooling
        self.use_context = config.use_context
        self.bias = nn.Parameter(torch.zeros(()))
        self.product_bias = nn.Embedding(n_products + 1, 1, padding_idx=UNKNOWN)
        self.element_bias = nn.Embedding(n_elements + 1, 1, padding_idx=UNKNOWN)
        nn.init.zeros_(self.product_bias.weight)
        nn.init.zeros_(self.element_bias.weight)
        width = d * (3 if config.use_context else 2)
        self.element_mlp = None
        if not config.element_only:
            self.element_mlp = nn.Sequential(
                nn.Linear(width, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1)
            )
            nn.init.zeros_(self.element_mlp[2].weight)
            nn.init.zeros_(self.element_mlp[2].bias)
        self.attention = nn.Linear(width, 1) if config.pooling == "attention" else None
        if self.attention is not None:
            nn.init.zeros_(self.attention.weight)
            nn.init.zeros_(self.attention.bias)
        self.pair_projection = nn.Linear(d, config.interaction_rank, bias=False) if config.interactions else None
        if self.pair_projection is not None:
            nn.init.normal_(self.pair_projection.weight, std=0.05)

    def parts(self, batch: CreativeBatch) -> BagParts:
        vectors = self.tower.element_vectors(batch.elements)  # (n, S, d)
        n, slots, _ = vectors.shape
        inputs = [vectors, self.tower.product_vector(batch).unsqueeze(1).expand(n, slots, -1)]
        if self.use_context:
            inputs.append(self.tower.context_vector(batch).unsqueeze(1).expand(n, slots, -1))
        joined = torch.cat(inputs, dim=2)
        scores = self.element_bias(batch.elements).squeeze(-1)
        if self.element_mlp is not None:
            scores = scores + self.element_mlp(joined).squeeze(-1)
        weights = None if self.attention is None else torch.softmax(self.attention(joined).squeeze(-1), dim=1)
        pairs = None
        if self.pair_projection is not None:
            projected = self.pair_projection(vectors)
            pairs = projected @ projected.transpose(1, 2)
            pairs = pairs * (1.0 - torch.eye(slots, dtype=pairs.dtype))
        base = self.bias + self.product_bias(batch.products).squeeze(-1)
        return BagParts(scores, weights, pairs, base)

    def forward(self, batch: CreativeBatch) -> torch.Tensor:
        """Bag logits (n,)."""
        return bag_logit(self.pooling, self.parts(batch))


def noisy_or_logit(z: torch.Tensor) -> torch.Tensor:
    """logit of P = 1 - prod_i (1 - sigmoid(z_i)) over the last axis, computed in log space.

    With L = sum_i log sigmoid(-z_i) = log(1 - P): logit P = log(-expm1(L)) - L.
    """
    log_miss = F.logsigmoid(-z).sum(dim=-1).clamp(max=-1e-30)
    return torch.log(-torch.expm1(log_miss)) - log_miss


def bag_logit(pooling: str, parts: BagParts) -> torch.Tensor:
    """Pool element scores into the bag's click logit (the three formulas of the module docstring)."""
    interaction = 0.0 if parts.pairs is None else 0.5 * parts.pairs.sum(dim=(1, 2))
    if pooling == "sum":
        return parts.base + parts.scores.sum(dim=1) + interaction
    if pooling == "attention":
        slots = parts.scores.shape[1]
        return parts.base + slots * (parts.weights * parts.scores).sum(dim=1) + interaction
    offset = parts.base + interaction
    return noisy_or_logit(parts.scores + offset.unsqueeze(1))


def attribute(pooling: str, parts: BagParts) -> tuple[torch.Tensor, torch.Tensor]:
    """(baseline (n,), attributions (n, S)) with baseline + attributions.sum(1) == the bag logit.

    Shapley values of the bag-logit game (module docstring); closed form for the linear poolings.
    """
    half_pairs = 0.0 if parts.pairs is None else 0.5 * parts.pairs.sum(dim=2)
    if pooling == "sum":
        return parts.base, parts.scores + half_pairs
    if pooling == "attention":
        return parts.base, parts.scores.shape[1] * parts.weights * parts.scores + half_pairs

    def value(on: torch.Tensor) -> torch.Tensor:  # on: (K, S) coalitions -> (n, K) bag logits
        z = on.unsqueeze(0) * parts.scores.unsqueeze(1) + parts.base[:, None, None]
        if parts.pairs is not None:
            z = z + 0.5 * torch.einsum("kj,njl,kl->nk", on, parts.pairs, on).unsqueeze(2)
        return noisy_or_logit(z)

    slots = parts.scores.shape[1]
    baseline = value(torch.zeros(1, slots))[:, 0]
    return baseline, shapley_values(value, slots)


def shapley_values(value: Callable[[torch.Tensor], torch.Tensor], players: int) -> torch.Tensor:
    """Shapley values (n, players) of n games given by ``value(coalitions (K, players)) -> (n, K)``.

    Exact by enumerating all 2^players coalitions up to ``EXACT_SHAPLEY_SLOTS`` players; beyond, the
    mean marginal contribution over ``SHAPLEY_PERMUTATIONS`` seeded random orders taken in antithetic
    pairs (each order and its reverse, which makes the estimate exact for games with at most pairwise
    terms). Either way the values sum exactly to value(all) - value(none).
    """
    if players <= EXACT_SHAPLEY_SLOTS:
        codes = torch.arange(2**players)
        on = ((codes.unsqueeze(1) >> torch.arange(players)) & 1).float()  # (K, S)
        values = value(on)
        sizes = on.sum(dim=1).long()
        weight = torch.tensor(
            [math.factorial(t) * math.factorial(players - t - 1) / math.factorial(players) for t in range(players)]
        )
        out = []
        for i in range(players):
            without = codes[(codes >> i) & 1 == 0]
            gain = values[:, without | (1 << i)] - values[:, without]
            out.append((gain * weight[sizes[without]]).sum(dim=1))
        return torch.stack(out, dim=1)
    generator = torch.Generator().manual_seed(0)
    total = None
    for _ in range(SHAPLEY_PERMUTATIONS // 2):
        forward = torch.randperm(players, generator=generator)
        for order in (forward, forward.flip(0)):
            on = torch.zeros(players + 1, players)
            for step, player in enumerate(order.tolist()):
                on[step + 1 :, player] = 1.0
            gains = value(on).diff(dim=1)  # (n, players): gain of the step-th player of the order
            contribution = torch.zeros_like(gains)
            contribution[:, order] = gains
            total = contribution if total is None else total + contribution
    return total / (2 * (SHAPLEY_PERMUTATIONS // 2))


@dataclass
class BagAttribution:
    """A bag's logit split into the bias (the empty bag's logit) and each element's contribution."""

    logit: float
    baseline: float
    elements: dict[str, float]


class MILModel:
    """A trained multi-instance reward model: bag CTRs and per-element credit.

    A judge (:class:`adcraft.rewards.judge.Judge`) that scores combinations and learns new elements by
    their words; ``decompose`` and ``attributions`` say what each element contributes.
    """

    kind: ClassVar[str] = KIND
    config_class: ClassVar[type] = MILConfig
    capabilities: ClassVar[Capabilities] = Capabilities(scores_combinations=True, adds_elements=True, resumable=True)

    def __init__(
        self,
        config: MILConfig,
        vocab: CreativeVocabulary,
        network: MILNetwork,
        contexts: list[tuple[str, float]],
        bags: list[tuple[str, list[str]]],
        history: TrainHistory | None = None,
    ) -> None:
        self.config = config
        self.vocab = vocab
        self.network = network.eval()
        self.contexts = contexts
        self.bags = bags
        self.history = history or TrainHistory()

    @property
    def validation_log_loss(self) -> float:
        """Validation binomial log loss (per impression) of the kept epoch; NaN before training."""
        if self.history.best_epoch < 0:
            return math.nan
        return float(self.history.valid_loss[self.history.best_epoch])

    def _contexts(self, context: str | None) -> list[tuple[str, float]]:
        if context is not None:
            return [(context, 1.0)]
        if not self.config.use_context:
            return [("", 1.0)]
        return self.contexts

    def _batch(
        self, product_ids: Sequence[str], combos: Sequence[Sequence[str]], contexts: Sequence[str]
    ) -> CreativeBatch:
        if len(product_ids) != len(combos) or len(contexts) != len(combos):
            raise InputError("product_ids, combos and contexts must have the same length")
        combos = [list(c) for c in combos]
        return make_batch(self.vocab, self.config.encoding, list(product_ids), combos, list(contexts))

    @classmethod
    def train(
        cls, market: Market, config: MILConfig, *, progress: bool = False, checkpoint: Path | None = None,
        world: DataParallel | None = None,
    ) -> MILModel:
        """A model fitted on ``market`` by :class:`MILTrainer` (``checkpoint``, ``world`` as there)."""
        return MILTrainer(config).fit(market, progress, checkpoint=checkpoint, world=world)

    def metrics(self, market: Market) -> dict:
        """Click metrics on the market's latest logs (``config.split``) and the training history."""
        return {"validation": click_validation(self, market, self.config.split), "history": self.history.to_json()}

    def predict_ctr(
        self, product_ids: Sequence[str], combos: Sequence[Sequence[str]], contexts: Sequence[str] | None = None,
        images: np.ndarray | None = None,
    ) -> np.ndarray:
        """Click probability of each (product, combination[, context]).

        Without contexts, the probability is averaged over the training log's most frequent contexts,
        weighted by their share of impressions (``self.contexts``). The model reads no images: ``images``
        is accepted, as by every kind that scores combinations, and not used.
        """
        # Same values as the network's forward pass, from per-element tables built once per set of weights.
        self._scorer = MILScorer.for_network(getattr(self, "_scorer", None), self.network, self.vocab,
                                             self.config.encoding)
        return self._scorer.predict(product_ids, combos, contexts, self._contexts(None))

    predict = predict_ctr  # the same method under its older name, which pipeline.optimize and bench/ call

    def _decompose(
        self, product_ids: Sequence[str], combos: Sequence[Sequence[str]], context: str | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logit (n,), baseline (n,), attributions (n, S)), context-weighted when ``context`` is None."""
        n, slots = len(product_ids), len(self.vocab.slots)
        logit, baseline, credit = np.zeros(n), np.zeros(n), np.zeros((n, slots))
        with torch.no_grad():
            for ctx, weight in self._contexts(context):
                parts = self.network.parts(self._batch(product_ids, combos, [ctx] * n))
                base, elements = attribute(self.config.pooling, parts)
                logit += weight * bag_logit(self.config.pooling, parts).numpy()
                baseline += weight * base.numpy()
                credit += weight * elements.numpy()
        return logit, baseline, credit

    def decompose(self, product_id: str, combo: Sequence[str], context: str | None = None) -> BagAttribution:
        """The bag's logit, its baseline and each element's contribution (logit units).

        ``baseline + sum(elements.values()) == logit``. Without a context, all three are averaged over
        the training contexts (so ``logit`` is the context-averaged logit).
        """
        logit, baseline, credit = self._decompose([product_id], [combo], context)
        elements: dict[str, float] = {}
        for element, value in zip(combo, credit[0]):
            elements[element] = elements.get(element, 0.0) + float(value)
        return BagAttribution(float(logit[0]), float(baseline[0]), elements)

    def attributions(self, product_id: str, combo: Sequence[str], context: str | None = None) -> dict[str, float]:
        """Each element's contribution to the bag's logit (Shapley values; module docstring)."""
        return self.decompose(product_id, combo, context).elements

    def changed_credit(self, product_id: str, combo: Sequence[str], current: Sequence[str] | None
                       ) -> list[tuple[int, str, float]]:
        """``(slot index, element, credit)`` for each slot where ``combo`` differs from ``current``, largest
        absolute credit first (every slot when ``current`` is None): what a proposal changed and what the
        model credits each change with (:meth:`attributions`)."""
        changed = [k for k, element in enumerate(combo) if current is None or current[k] != element]
        if not changed:
            return []
        credit = self.attributions(product_id, combo)
        rows = [(k, combo[k], float(credit.get(combo[k], 0.0))) for k in changed]
        return sorted(rows, key=lambda row: -abs(row[2]))

    def with_elements(self, elements: pd.DataFrame) -> MILModel:
        """A copy that also scores ``elements`` it never saw, by their words (:func:`with_new_elements`)."""
        return with_new_elements(self, elements)

    def score_market(self, market: Market) -> pd.DataFrame:
        """Predicted CTR (traffic-averaged over contexts) of every past creative of a market."""
        creatives = past_creatives(market)
        return scores_frame(creatives, self.predict_ctr(creatives["product_id"].tolist(),
                                                        creatives["elements"].tolist()))

    def element_effects(self) -> pd.Series:
        """Learned effect of each element seen in training: its mean attribution over the training bags
        that contain it (each bag once, context-averaged), centred to mean zero within its slot.

        Centring removes what no click log can identify: a constant shifted between slots and the bias.
        """
        if not self.bags:
            raise InputError("the model has no training bags to average element effects over")
        products = [p for p, _ in self.bags]
        combos = [c for _, c in self.bags]
        _, _, credit = self._decompose(products, combos, None)
        frame = pd.DataFrame(
            {
                "element_id": np.asarray(combos, dtype=object).ravel(),
                "slot": np.tile(self.vocab.slots, len(combos)),
                "effect": credit.ravel(),
            }
        )
        means = frame.groupby(["slot", "element_id"], sort=False)["effect"].mean().reset_index()
        means["effect"] -= means.groupby("slot")["effect"].transform("mean")
        return means.set_index("element_id")["effect"].sort_index()

    def save(self, folder: Path) -> None:
        save_artifact(
            folder,
            KIND,
            asdict(self.config),
            {f"network.{k}": v for k, v in self.network.state_dict().items()},
            extra={
                "vocab": self.vocab.to_json(),
                "contexts": self.contexts,
                "bags": [[p, list(c)] for p, c in self.bags],
                "text_dim": int(self.network.tower.text.shape[1]),
                "history": self.history.to_json(),
            },
        )

    @classmethod
    def load(cls, folder: Path) -> MILModel:
        artifact = load_artifact(folder, expected_kind=KIND)
        config = from_mapping(MILConfig, artifact.config)
        extra = artifact.extra or {}
        vocab = CreativeVocabulary.from_json(extra["vocab"])
        text = np.zeros((len(vocab.elements) + 1, extra["text_dim"]), dtype=np.float32)
        network = _network(config, vocab, text)
        state = {k.removeprefix("network."): v for k, v in artifact.tensors.items() if k.startswith("network.")}
        network.load_state_dict(state)
        return cls(
            config,
            vocab,
            network,
            [(str(c), float(w)) for c, w in extra["contexts"]],
            [(str(p), [str(e) for e in c]) for p, c in extra["bags"]],
            TrainHistory(**extra.get("history", {})),
        )


def _network(config: MILConfig, vocab: CreativeVocabulary, text: np.ndarray) -> MILNetwork:
    tower = CreativeTower(vocab, config.encoding, text)
    return MILNetwork(tower, len(vocab.elements), len(vocab.products), config)


def pooled_rows(log: pd.DataFrame, by_context: bool) -> pd.DataFrame:
    """Log rows summed over days per (creative, context), or per creative when contexts are not used."""
    keys = ["creative_id", "context"] if by_context else ["creative_id"]
    pooled = log.groupby(keys, sort=True).agg(
        product_id=("product_id", "first"),
        elements=("elements", "first"),
        clicks=("clicks", "sum"),
        trials=("trials", "sum"),
    ).reset_index()
    if not by_context:
        pooled["context"] = ""
    return pooled


def initial_bias(pooling: str, rate: float, slots: int) -> float:
    """The global bias whose untrained bag (all s_i = 0, no interactions) predicts the mean CTR."""
    rate = min(max(rate, 1e-6), 1.0 - 1e-6)  # a training part with no clicks, or only clicks
    if pooling == "noisy_or":
        per_element = 1.0 - (1.0 - rate) ** (1.0 / slots)
        return math.log(per_element / (1.0 - per_element))
    return math.log(rate / (1.0 - rate))


class MILTrainer:
    """Fits a ``MILModel`` on a market's click log (early stopping on the time split's validation part)."""

    def __init__(self, config: MILConfig | None = None) -> None:
        self.config = config or MILConfig()

    def fit(
        self, market: Market, progress: bool = False, *, checkpoint: Path | None = None,
        world: DataParallel | None = None, on_epoch: Callable[[int], None] | None = None,
    ) -> MILModel:
        """Train on ``market``; ``checkpoint``, ``world`` and ``on_epoch`` as in ``training.fit`` (a killed
        run resumes from the checkpoint folder; ``world`` trains data-parallel)."""
        config = self.config
        torch.manual_seed(config.train.seed)
        log = click_log(market)
        train, valid = time_split(log, config.split)
        vocab = CreativeVocabulary.from_market(market, train)
        network = _network(config, vocab, element_text_matrix(vocab, config.encoding))

        def tensors(part: pd.DataFrame) -> tuple[CreativeBatch, torch.Tensor, torch.Tensor]:
            return outcome_tensors(vocab, config.encoding, pooled_rows(part, config.use_context))

        train_tensors = tensors(train)
        rate = float(train_tensors[1].sum() / train_tensors[2].sum())
        network.bias.data.fill_(initial_bias(config.pooling, rate, len(vocab.slots)))
        history = fit_click_model(
            network, train_tensors, tensors(valid), config.train, progress,
            f"training multi-instance model ({config.pooling})", checkpoint=checkpoint, world=world, on_epoch=on_epoch,
        )
        bags = train.drop_duplicates("creative_id").sort_values("creative_id")
        return MILModel(
            config,
            vocab,
            network,
            context_distribution(train),
            [(str(p), [str(e) for e in c]) for p, c in zip(bags["product_id"], bags["elements"])],
            history,
        )


def compare_poolings(
    market: Market, base_config: MILConfig, poolings: Sequence[str] = POOLINGS
) -> pd.DataFrame:
    """Train one model per pooling with otherwise equal settings; validation log loss of each.

    Columns: ``pooling``, ``validation_log_loss``, ``best_epoch`` and ``model`` (the trained
    ``MILModel``, so a caller can score the validation rows with other metrics such as AUC).
    """
    rows = []
    for pooling in poolings:
        model = MILTrainer(replace(base_config, pooling=pooling)).fit(market)
        rows.append(
            {
                "pooling": pooling,
                "validation_log_loss": model.validation_log_loss,
                "best_epoch": model.history.best_epoch,
                "model": model,
            }
        )
    return pd.DataFrame(rows)


class MILScorer(TableScorer):
    """Bag click probabilities of a ``MILNetwork`` from per-element tables (module docstring)."""

    def __init__(self, network: MILNetwork, vocab: CreativeVocabulary, config: EncodingConfig) -> None:
        super().__init__(network, vocab, config)
        tower = network.tower
        d = tower.element_id.embedding_dim
        with torch.no_grad():
            elements = element_table(tower)
            self.per_slot = elements.shape[1]
            products = product_table(tower, vocab)
            self.element_bias = network.element_bias.weight[:, 0].clone()
            self.base = network.bias + network.product_bias.weight[:, 0]
            self.mlp = None
            if network.element_mlp is not None:
                first, last = network.element_mlp[0], network.element_mlp[2]
                self.mlp = (flat_table(fixed_order_matmul(elements, first.weight[:, :d].T)),
                            fixed_order_matmul(products, first.weight[:, d:2 * d].T) + first.bias,
                            first.weight[:, 2 * d:].T, last.weight[0], last.bias[0])
            self.attention = None
            if network.attention is not None:
                w = network.attention.weight[0]
                self.attention = (flat_table(fixed_order_matmul(elements, w[:d])),
                                  fixed_order_matmul(products, w[d:2 * d]) + network.attention.bias[0], w[2 * d:])
            self.pairs = (None if network.pair_projection is None
                          else flat_table(fixed_order_linear(network.pair_projection, elements)))

    def _element_parts(self, elements: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """What of a bag does not depend on the product or the context: gathered once per chunk of rows."""
        index = flat_index(elements, self.per_slot)
        pairs = None
        if self.pairs is not None:
            projected = self.pairs[index]  # (n, S, r)
            pairs = projected[:, :, None, 0] * projected[:, None, :, 0]  # (n, S, S), summed over r in order
            for r in range(1, projected.shape[2]):
                pairs = pairs + projected[:, :, None, r] * projected[:, None, :, r]
            pairs = pairs * (1.0 - torch.eye(elements.shape[1], dtype=pairs.dtype))
        return {
            "index": index,
            "bias": self.element_bias[elements],
            "attention": None if self.attention is None else self.attention[0][index],
            "pairs": pairs,
        }

    def _context_parts(self, contexts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per context vector (K, d): its part of the element MLP's first layer (K, H) and attention logit (K,)."""
        use_context = self.network.use_context
        mlp = torch.zeros(len(contexts), 0)
        if self.mlp is not None:
            mlp = (fixed_order_matmul(contexts, self.mlp[2]) if use_context
                   else torch.zeros(len(contexts), self.mlp[1].shape[1]))
        attention = None
        if self.attention is not None:
            attention = fixed_order_matmul(contexts, self.attention[2]) if use_context else torch.zeros(len(contexts))
        return mlp, attention

    def _score_tables(self, products: torch.Tensor, codes: torch.Tensor,
                      contexts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Element-MLP outputs of every (slot, element) for each (product, context) pair of the rows, and each
        row's pair, when that is less work than evaluating the MLP per row and slot; otherwise None."""
        per_element, per_product, _, out_weight, _ = self.mlp
        unique, inverse = distinct_keys(products * len(contexts) + codes, len(per_product) * len(contexts))
        if len(unique) * per_element.shape[0] >= len(products) * self.network.tower.n_slots:
            return None
        rows = per_product[unique // len(contexts)] + contexts[unique % len(contexts)]  # (m, H)
        step = max(1, TABLE_VALUES // per_element.numel())
        tables = torch.cat([fixed_order_matmul(F.relu(per_element + r.unsqueeze(1)), out_weight)
                            for r in rows.split(step)])
        return tables, inverse

    def _logits(self, parts: dict[str, torch.Tensor | None], products: torch.Tensor, codes: torch.Tensor,
                contexts: tuple[torch.Tensor, torch.Tensor | None],
                tables: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """Bag logits (n,) from ``_element_parts``, product indices (n,), context ``codes`` into the
        ``_context_parts`` and, when given, the rows' ``_score_tables``."""
        index = parts["index"]
        scores = parts["bias"]
        if self.mlp is not None:
            per_element, per_product, _, out_weight, out_bias = self.mlp
            if tables is not None:
                table, pair = tables
                scores = scores + (table.reshape(-1)[pair.unsqueeze(1) * per_element.shape[0] + index] + out_bias)
            else:
                if "mlp" not in parts:
                    parts["mlp"] = per_element[index]
                row = per_product[products] + contexts[0][codes]
                scores = scores + (fixed_order_matmul(F.relu(parts["mlp"] + row.unsqueeze(1)), out_weight) + out_bias)
        weights = None
        if self.attention is not None:
            row = self.attention[1][products] + contexts[1][codes]
            weights = torch.softmax(parts["attention"] + row.unsqueeze(1), dim=1)
        return bag_logit(self.network.pooling, BagParts(scores, weights, parts["pairs"], self.base[products]))

    def predict(self, product_ids: Sequence[str], combos: Sequence[Sequence[str]], contexts: Sequence[str] | None,
                traffic: Sequence[tuple[str, float]]) -> np.ndarray:
        """Click probabilities; without ``contexts``, the ``traffic``-weighted mean over its contexts."""
        n = len(product_ids)
        if len(combos) != n:
            raise InputError("product_ids, combos and contexts must have the same length")
        elements = torch.from_numpy(self.indexer.elements(combos))
        products = torch.from_numpy(self.indexer.products(product_ids))
        out = np.zeros(n)
        with torch.no_grad():
            terms = []
            for codes, distinct, weight in context_terms(self.indexer, n, contexts, traffic):
                codes = torch.from_numpy(codes)
                parts = self._context_parts(context_table(self.network.tower, self.vocab, self.config, distinct))
                tables = None if self.mlp is None else self._score_tables(products, codes, parts[0])
                terms.append((codes, parts, tables, weight))
            for start in row_chunks(n):
                rows = slice(start, start + CHUNK_ROWS)
                parts = self._element_parts(elements[rows])
                for codes, context_parts, tables, weight in terms:
                    chunk = None if tables is None else (tables[0], tables[1][rows])
                    logit = self._logits(parts, products[rows], codes[rows], context_parts, chunk)
                    out[rows] += weight * click_probability(logit)
        return out
