"""Point-wise CTR model: a creative shown for a product in a context -> click-through probability.

The network reads the creative through the shared ``CreativeTower`` (element ids and words, product,
context and, optionally, the rendered image's features) and predicts

    logit p = b + b_product + sum_s b[e_s] + MLP([e_1; ...; e_S; p; c; v])

where the additive biases carry each element's main effect and the MLP over the concatenated slot
vectors carries their interactions with each other, the product, the context and the image. It is
trained on combination-level outcomes with the impression-weighted binomial log-likelihood

    L = - sum_r [ clicks_r log p_r + (trials_r - clicks_r) log(1 - p_r) ] / sum_r trials_r,

which equals the mean log loss over the raw impressions. Validation is the latest part of the log
(``time_split``); training stops early on the validation loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

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
    CreativeBatch,
    CreativeTower,
    CreativeVocabulary,
    EncodingConfig,
    creative_image_features,
    element_text_matrix,
    image_rows,
    market_image_rows,
    outcome_tensors,
    with_new_elements,
)
from adcraft.rewards.fast_scoring import (
    CHUNK_ROWS,
    TableScorer,
    click_probability,
    context_table,
    context_terms,
    element_table,
    fixed_order_linear,
    fixed_order_matmul,
    flat_index,
    flat_table,
    product_table,
    row_chunks,
    slot_sum,
)
from adcraft.rewards.judge import Capabilities, click_validation

if TYPE_CHECKING:
    from adcraft.learning.distributed import DataParallel

KIND = "ctr"


@dataclass(frozen=True)
class CTRConfig:
    """Settings of the point-wise CTR model."""

    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    hidden: int = 64
    dropout: float = 0.1
    train: TrainConfig = field(default_factory=TrainConfig)
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        check_config(self)
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")


class CTRNetwork(nn.Module):
    """Additive element/product biases plus an interaction MLP (see the module docstring)."""

    def __init__(self, tower: CreativeTower, n_elements: int, n_products: int, hidden: int, dropout: float) -> None:
        super().__init__()
        d = tower.element_id.embedding_dim
        self.tower = tower
        self.bias = nn.Parameter(torch.zeros(()))
        self.element_bias = nn.Embedding(n_elements + 1, 1)
        self.product_bias = nn.Embedding(n_products + 1, 1)
        nn.init.zeros_(self.element_bias.weight)
        nn.init.zeros_(self.product_bias.weight)
        width = d * (tower.n_slots + 2 + (1 if tower.image_proj is not None else 0))
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def forward(self, batch: CreativeBatch) -> torch.Tensor:
        parts = [
            self.tower.element_vectors(batch.elements).flatten(1),
            self.tower.product_vector(batch),
            self.tower.context_vector(batch),
        ]
        image = self.tower.image_vector(batch)
        if image is not None:
            parts.append(image)
        interactions = self.mlp(torch.cat(parts, dim=1)).squeeze(1)
        additive = self.element_bias(batch.elements).sum(dim=(1, 2)) + self.product_bias(batch.products).squeeze(1)
        return self.bias + additive + interactions


class PointwiseCTRModel:
    """A trained point-wise CTR model with its vocabulary; predicts the CTR of any combination.

    A judge (:class:`adcraft.rewards.judge.Judge`) that scores combinations, reads image features and
    learns new elements by their words.
    """

    kind: ClassVar[str] = KIND
    config_class: ClassVar[type] = CTRConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        scores_combinations=True, reads_image_features=True, adds_elements=True, resumable=True)

    def __init__(
        self,
        config: CTRConfig,
        vocab: CreativeVocabulary,
        network: CTRNetwork,
        contexts: list[tuple[str, float]],
        mean_image: np.ndarray | None,
        history: TrainHistory | None = None,
    ) -> None:
        self.config = config
        self.vocab = vocab
        self.network = network.eval()
        self.contexts = contexts
        self.mean_image = mean_image
        self.history = history or TrainHistory()

    def _images(self, n: int, images: np.ndarray | None) -> np.ndarray | None:
        if self.mean_image is None:
            return None
        if images is None:
            return np.repeat(self.mean_image[None, :], n, axis=0)
        return np.asarray(images, dtype=np.float32)

    @classmethod
    def train(
        cls, market: Market, config: CTRConfig, *, progress: bool = False, checkpoint: Path | None = None,
        world: DataParallel | None = None,
    ) -> PointwiseCTRModel:
        """A model fitted on ``market`` by :class:`CTRTrainer` (``checkpoint``, ``world`` as there)."""
        return CTRTrainer(config).fit(market, progress, checkpoint=checkpoint, world=world)

    def metrics(self, market: Market) -> dict:
        """Click metrics on the market's latest logs (``config.split``) and the training history."""
        return {"validation": click_validation(self, market, self.config.split), "history": self.history.to_json()}

    def predict_ctr(
        self,
        product_ids: Sequence[str],
        combos: Sequence[Sequence[str]],
        contexts: Sequence[str] | None = None,
        images: np.ndarray | None = None,
    ) -> np.ndarray:
        """CTR of each (product, combination[, context]); without contexts, averaged over the traffic's.

        ``images`` are the rendered creatives' image features; a model trained with images uses the mean
        training image feature for rows without one.
        """
        images = self._images(len(product_ids), images)
        # Same values as the network's forward pass, from per-element tables built once per set of weights.
        self._scorer = CTRScorer.for_network(getattr(self, "_scorer", None), self.network, self.vocab,
                                             self.config.encoding)
        return self._scorer.predict(product_ids, combos, contexts, self.contexts, images)

    predict = predict_ctr  # the same method under its older name, which pipeline.optimize and bench/ call

    def with_elements(self, elements: pd.DataFrame) -> PointwiseCTRModel:
        """A copy that also scores ``elements`` it never saw, by their words (:func:`with_new_elements`)."""
        return with_new_elements(self, elements)

    def score_market(self, market: Market) -> pd.DataFrame:
        """Predicted CTR of every past creative of a market (``creative_id``, ``predicted_ctr``)."""
        creatives = past_creatives(market)
        ids = creatives["creative_id"].tolist()
        images = market_image_rows(market, ids, self.config.encoding, self.mean_image)
        ctr = self.predict_ctr(creatives["product_id"].tolist(), creatives["elements"].tolist(), images=images)
        return scores_frame(creatives, ctr)

    def save(self, folder: Path) -> None:
        tensors = {f"network.{k}": v for k, v in self.network.state_dict().items()}
        if self.mean_image is not None:
            tensors["mean_image"] = torch.from_numpy(self.mean_image)
        save_artifact(
            folder,
            KIND,
            asdict(self.config),
            tensors,
            extra={
                "vocab": self.vocab.to_json(),
                "contexts": self.contexts,
                "image_dim": 0 if self.mean_image is None else int(self.mean_image.shape[0]),
                "text_dim": int(self.network.tower.text.shape[1]),
                "history": self.history.to_json(),
            },
        )

    @classmethod
    def load(cls, folder: Path) -> PointwiseCTRModel:
        artifact = load_artifact(folder, expected_kind=KIND)
        config = from_mapping(CTRConfig, artifact.config)
        extra = artifact.extra
        vocab = CreativeVocabulary.from_json(extra["vocab"])
        text = np.zeros((len(vocab.elements) + 1, extra["text_dim"]), dtype=np.float32)
        network = _network(config, vocab, text, extra["image_dim"])
        state = {
            k.removeprefix("network."): torch.as_tensor(v)
            for k, v in artifact.tensors.items()
            if k.startswith("network.")
        }
        network.load_state_dict(state)
        mean_image = artifact.tensors.get("mean_image")
        history = TrainHistory(**extra.get("history", {}))
        return cls(
            config, vocab, network, [tuple(c) for c in extra["contexts"]],
            None if mean_image is None else np.asarray(mean_image, dtype=np.float32), history,
        )


def _network(config: CTRConfig, vocab: CreativeVocabulary, text: np.ndarray, image_dim: int) -> CTRNetwork:
    tower = CreativeTower(vocab, config.encoding, text, image_dim=image_dim)
    return CTRNetwork(tower, len(vocab.elements), len(vocab.products), config.hidden, config.dropout)


class CTRTrainer:
    """Fits a ``PointwiseCTRModel`` on a market's logs."""

    def __init__(self, config: CTRConfig | None = None) -> None:
        self.config = config or CTRConfig()

    def fit(
        self, market: Market, progress: bool = False, *, checkpoint: Path | None = None,
        world: DataParallel | None = None, on_epoch: Callable[[int], None] | None = None,
    ) -> PointwiseCTRModel:
        """Train on ``market``; ``checkpoint``, ``world`` and ``on_epoch`` as in ``training.fit`` (a killed
        run resumes from the checkpoint folder; ``world`` trains data-parallel)."""
        config = self.config
        torch.manual_seed(config.train.seed)
        log = click_log(market)
        train, valid = time_split(log, config.split)
        vocab = CreativeVocabulary.from_market(market, train)
        text = element_text_matrix(vocab, config.encoding)
        features = creative_image_features(market, log["creative_id"].tolist(), config.encoding)
        mean_image = np.mean(np.stack(list(features.values())), axis=0).astype(np.float32) if features else None
        network = _network(config, vocab, text, 0 if mean_image is None else int(mean_image.shape[0]))

        def tensors(part: pd.DataFrame) -> tuple[CreativeBatch, torch.Tensor, torch.Tensor]:
            return outcome_tensors(vocab, config.encoding, part, image_rows(features, part["creative_id"], mean_image))

        train_tensors = tensors(train)
        clicks, trials = float(train_tensors[1].sum()), float(train_tensors[2].sum())
        network.bias.data.fill_(np.log(clicks / (trials - clicks)))  # start at the base rate
        history = fit_click_model(
            network, train_tensors, tensors(valid), config.train, progress, "training CTR model",
            checkpoint=checkpoint, world=world, on_epoch=on_epoch,
        )
        return PointwiseCTRModel(config, vocab, network, context_distribution(train), mean_image, history)


class CTRScorer(TableScorer):
    """Click probabilities of a ``CTRNetwork`` (eval mode) from per-element tables (module docstring)."""

    def __init__(self, network: CTRNetwork, vocab: CreativeVocabulary, config: EncodingConfig) -> None:
        super().__init__(network, vocab, config)
        tower = network.tower
        d, slots = tower.element_id.embedding_dim, tower.n_slots
        first, last = network.mlp[0], network.mlp[-1]
        with torch.no_grad():  # tables of plain tensors: no autograd graph held (or copied with the model)
            blocks = first.weight.split(d, dim=1)  # v_1..v_S, p, c[, i]: every block is d wide
            elements = element_table(tower)
            self.per_slot = elements.shape[1]
            self.per_element = flat_table(torch.stack([fixed_order_matmul(elements[s], blocks[s].T)
                                                  for s in range(slots)]))  # S(N + 1) x H
            self.per_product = fixed_order_matmul(product_table(tower, vocab), blocks[slots].T) + first.bias
            self.product_bias = network.bias + network.product_bias.weight[:, 0]
            self.element_bias = network.element_bias.weight[:, 0].clone()
            self.context_weight = blocks[slots + 1]
            self.image_weight = blocks[slots + 2] if tower.image_proj is not None else None
            self.out_weight, self.out_bias = last.weight[0], last.bias[0]

    def predict(self, product_ids: Sequence[str], combos: Sequence[Sequence[str]], contexts: Sequence[str] | None,
                traffic: Sequence[tuple[str, float]], images: np.ndarray | None) -> np.ndarray:
        """Click probabilities; without ``contexts``, the ``traffic``-weighted mean over its contexts."""
        n = len(product_ids)
        if len(combos) != n:
            raise InputError("product_ids, combos and contexts must have the same length")
        elements = torch.from_numpy(self.indexer.elements(combos))
        products = torch.from_numpy(self.indexer.products(product_ids))
        pixels = None if images is None else torch.from_numpy(np.asarray(images, dtype=np.float32))
        out = np.zeros(n)
        with torch.no_grad():
            terms = [(torch.from_numpy(codes),
                      fixed_order_matmul(context_table(self.network.tower, self.vocab, self.config, distinct),
                                         self.context_weight.T),
                      weight) for codes, distinct, weight in context_terms(self.indexer, n, contexts, traffic)]
            for start in row_chunks(n):
                rows = slice(start, start + CHUNK_ROWS)
                chunk, chosen = products[rows], elements[rows]
                # W_1 [v_1; ...; v_S; p; i] + b_1 and the additive biases: the same for every context
                first = slot_sum(self.per_element[flat_index(chosen, self.per_slot)]) + self.per_product[chunk]
                if self.image_weight is not None and pixels is not None:
                    image = fixed_order_linear(self.network.tower.image_proj, pixels[rows])
                    first = first + fixed_order_matmul(image, self.image_weight.T)
                additive = self.product_bias[chunk] + slot_sum(self.element_bias[chosen])
                for codes, projected, weight in terms:
                    hidden = F.relu(first + projected[codes[rows]])
                    logit = additive + (fixed_order_matmul(hidden, self.out_weight) + self.out_bias)
                    out[rows] += weight * click_probability(logit)
        return out
