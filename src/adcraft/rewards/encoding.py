"""Shared input side of the reward models: vocabularies, element content features and the creative tower.

Every reward model sees a creative the same way:

- each slot's element as a learned id embedding plus, when the element carries words (a title, a
  selling point, a background prompt, any multi-word value), a projection of its text embedding, so
  that elements never seen in training (new prompts) still get a meaningful vector;
- the product (id and category embeddings) and the context (mean of ``key=value`` token embeddings
  parsed from the impression's context JSON);
- optionally the rendered creative's image features (EfficientNet-Lite0, cached).

The vocabulary is saved with the model as JSON, so a model loads without the market it was trained on.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.market import TEXT_SLOTS, Market

ModelT = TypeVar("ModelT")
UNKNOWN = 0  # index 0 of every vocabulary: an id not seen in training


@dataclass(frozen=True)
class EncodingConfig:
    """How creatives are turned into tensors."""

    text_backbone: Literal["minilm", "tiny", "none"] = "minilm"
    image_backbone: Literal["efficientnet-lite0", "tiny", "none"] = "none"
    image_runtime: Literal["torch", "onnx"] = "torch"  # onnx: Lite0 through ONNX Runtime (faster on CPU)
    embedding_dim: int = 16
    max_context_tokens: int = 8

    def __post_init__(self) -> None:
        check_config(self)
        if self.text_backbone not in ("minilm", "tiny", "none"):
            raise InputError(f"text_backbone must be minilm, tiny or none, got {self.text_backbone!r}")
        if self.image_backbone not in ("efficientnet-lite0", "tiny", "none"):
            raise InputError(
                f"image_backbone must be efficientnet-lite0, tiny or none, got {self.image_backbone!r}"
            )
        if self.image_runtime not in ("torch", "onnx"):
            raise InputError(f"image_runtime must be torch or onnx, got {self.image_runtime!r}")
        if self.image_runtime == "onnx" and self.image_backbone == "tiny":
            raise InputError("image_runtime onnx runs the efficientnet-lite0 backbone only")
        if self.embedding_dim < 1:
            raise InputError("embedding_dim must be at least 1")


def element_text(slot: str, text: object, value: object) -> str | None:
    """The words an element carries, if any: text slots' text, or a multi-word free-text value."""
    if slot in TEXT_SLOTS and isinstance(text, str) and text.strip():
        return text
    if isinstance(value, str) and len(value.split()) >= 2:
        return value
    if isinstance(text, str) and text.strip():
        return text
    return None


def context_tokens(context: str) -> list[str]:
    """``key=value`` tokens of a context JSON object (nested values as JSON); [] for empty or invalid."""
    if not context:
        return []
    try:
        data = json.loads(context)
    except json.JSONDecodeError:
        return []
    if not isinstance(data, dict):
        return []
    return [f"{k}={v if isinstance(v, str) else json.dumps(v, sort_keys=True)}" for k, v in sorted(data.items())]


@dataclass
class CreativeVocabulary:
    """Ids the model knows, each mapped to an index (0 is reserved for unknown ids)."""

    slots: list[str]
    elements: list[str]
    element_slots: list[str]
    element_texts: list[str | None]
    products: list[str]
    categories: list[str]
    product_categories: list[str]
    context_tokens: list[str]

    def __post_init__(self) -> None:
        self._element = {e: i + 1 for i, e in enumerate(self.elements)}
        self._product = {p: i + 1 for i, p in enumerate(self.products)}
        self._category = {c: i + 1 for i, c in enumerate(self.categories)}
        self._token = {t: i + 1 for i, t in enumerate(self.context_tokens)}
        self._product_category = dict(zip(self.products, self.product_categories))

    @classmethod
    def from_market(cls, market: Market, log: pd.DataFrame | None = None) -> CreativeVocabulary:
        el = market.elements
        texts = [element_text(s, t, v) for s, t, v in zip(el["slot"], el["text"], el["value"])]
        tokens: set[str] = set()
        if log is not None:
            for context in log["context"].unique():
                tokens.update(context_tokens(context))
        return cls(
            slots=list(market.config.slots),
            elements=el["element_id"].tolist(),
            element_slots=el["slot"].tolist(),
            element_texts=texts,
            products=market.products["product_id"].tolist(),
            categories=sorted(market.products["category"].unique().tolist()),
            product_categories=market.products["category"].tolist(),
            context_tokens=sorted(tokens),
        )

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    @classmethod
    def from_json(cls, data: dict) -> CreativeVocabulary:
        return cls(**data)

    def element_indices(self, combos: Sequence[Sequence[str]]) -> np.ndarray:
        """(n, n_slots) indices of each combination's elements (0 for unknown ids)."""
        out = np.zeros((len(combos), len(self.slots)), dtype=np.int64)
        for i, combo in enumerate(combos):
            if len(combo) != len(self.slots):
                raise InputError(f"combination {list(combo)} does not have one element per slot {self.slots}")
            out[i] = [self._element.get(e, UNKNOWN) for e in combo]
        return out

    def product_indices(self, products: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Indices of products and of their categories (0 for unknown)."""
        prod = np.array([self._product.get(p, UNKNOWN) for p in products], dtype=np.int64)
        cat = np.array(
            [self._category.get(self._product_category.get(p, ""), UNKNOWN) for p in products], dtype=np.int64
        )
        return prod, cat

    def context_indices(self, contexts: Sequence[str], width: int) -> np.ndarray:
        """(n, width) token indices of each context, zero-padded (0 is also 'no token')."""
        out = np.zeros((len(contexts), width), dtype=np.int64)
        cache: dict[str, list[int]] = {}
        for i, context in enumerate(contexts):
            if context not in cache:
                cache[context] = [self._token.get(t, UNKNOWN) for t in context_tokens(context)][:width]
            row = cache[context]
            out[i, : len(row)] = row
        return out


def element_text_matrix(vocab: CreativeVocabulary, config: EncodingConfig, cache_dir: Path | None = None) -> np.ndarray:
    """(n_elements + 1, d) text embeddings of the vocabulary's elements; zero rows for wordless ones."""
    return _text_rows([None, *vocab.element_texts], config, cache_dir)


def _text_rows(texts: Sequence[str | None], config: EncodingConfig, cache_dir: Path | None = None) -> np.ndarray:
    """(len(texts), d) text embeddings; a zero row for None (d = 1 without a text backbone)."""
    if config.text_backbone == "none":
        return np.zeros((len(texts), 1), dtype=np.float32)
    from adcraft.features.cache import FeatureCache, default_cache_dir, encode_texts
    from adcraft.features.text_encoder import TextEncoderConfig, build_text_encoder

    encoder = build_text_encoder(TextEncoderConfig(backbone=config.text_backbone))
    rows = [i for i, t in enumerate(texts) if t is not None]
    matrix = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    if rows:
        cache = FeatureCache(cache_dir or default_cache_dir())
        matrix[rows] = encode_texts(encoder, [texts[i] for i in rows], cache)
    return matrix


def with_new_elements(model: ModelT, elements: pd.DataFrame) -> ModelT:
    """A copy of a trained reward model that also knows elements it never saw (e.g. generated prompts).

    ``model`` is any reward model holding ``vocab``, ``network`` (with a ``tower``) and
    ``config.encoding``. New rows of ``elements`` (market elements-table columns; ids the vocabulary
    already has are skipped) are appended to the vocabulary, their text embeddings to the tower's text
    table, and a zero row to every element-indexed embedding (modules named ``element_*``): exactly how
    the model treats an unknown id, except that the new element now has its words.
    """
    model = copy.deepcopy(model)
    vocab, network, tower = model.vocab, model.network, model.network.tower
    missing = [c for c in ("element_id", "slot") if c not in elements]
    if missing:
        raise InputError(f"new elements need the columns element_id and slot; missing {missing}")
    known = set(vocab.elements)
    new = elements[~elements["element_id"].isin(known)].drop_duplicates("element_id")
    unknown_slots = sorted(set(new["slot"]) - set(vocab.slots))
    if unknown_slots:
        raise InputError(f"new elements name slots the model does not have: {unknown_slots}")
    blank = [None] * len(new)
    texts = [
        element_text(slot, text, value)
        for slot, text, value in zip(new["slot"], new.get("text", blank), new.get("value", blank))
    ]
    old_rows = len(vocab.elements) + 1
    rows = _text_rows(texts, model.config.encoding)
    if rows.shape[1] != tower.text.shape[1]:
        raise InputError("the model's text features and the new elements' do not have the same width")
    tower.text = torch.cat([tower.text, torch.as_tensor(rows, dtype=tower.text.dtype)])
    for name, module in list(network.named_modules()):
        if isinstance(module, nn.Embedding) and name.rsplit(".", 1)[-1].startswith("element") \
                and module.num_embeddings == old_rows:
            grown = nn.Embedding(old_rows + len(new), module.embedding_dim, padding_idx=module.padding_idx)
            with torch.no_grad():
                grown.weight.zero_()
                grown.weight[:old_rows] = module.weight
            parent = network.get_submodule(name.rsplit(".", 1)[0]) if "." in name else network
            setattr(parent, name.rsplit(".", 1)[-1], grown)
    model.vocab = CreativeVocabulary(
        slots=vocab.slots,
        elements=vocab.elements + new["element_id"].tolist(),
        element_slots=vocab.element_slots + new["slot"].tolist(),
        element_texts=vocab.element_texts + texts,
        products=vocab.products,
        categories=vocab.categories,
        product_categories=vocab.product_categories,
        context_tokens=vocab.context_tokens,
    )
    return model


def creative_image_features(
    market: Market, creative_ids: Sequence[str], config: EncodingConfig, cache_dir: Path | None = None
) -> dict[str, np.ndarray]:
    """Image features of past creatives that have an image, by creative id (empty without an image backbone)."""
    if config.image_backbone == "none" or market.creatives is None:
        return {}
    from adcraft.features.cache import FeatureCache, default_cache_dir, encode_image_files
    from adcraft.features.image_encoder import ImageEncoderConfig, build_image_encoder

    images = market.creatives.set_index("creative_id")["image"]
    wanted = [c for c in dict.fromkeys(creative_ids) if isinstance(images.get(c), str)]
    if not wanted:
        return {}
    encoder = build_image_encoder(ImageEncoderConfig(backbone=config.image_backbone, runtime=config.image_runtime))
    paths = [market.resolve(images[c]) for c in wanted]
    features = encode_image_files(encoder, paths, FeatureCache(cache_dir or default_cache_dir()))
    return dict(zip(wanted, features))


def image_rows(
    features: Mapping[str, np.ndarray], creative_ids: Iterable[str], fallback: np.ndarray | None
) -> np.ndarray | None:
    """Image features of each creative in order, ``fallback`` where a creative has none.

    ``fallback`` is a model's mean training image feature; None means the model reads no images.
    """
    if fallback is None:
        return None
    return np.stack([features.get(c, fallback) for c in creative_ids])


def market_image_rows(
    market: Market, creative_ids: Sequence[str], config: EncodingConfig, fallback: np.ndarray | None
) -> np.ndarray | None:
    """``image_rows`` of a market's past creatives (encoded, through the cache, only when needed)."""
    if fallback is None:
        return None
    return image_rows(creative_image_features(market, creative_ids, config), creative_ids, fallback)


@dataclass
class CreativeBatch:
    """Tensors of n creatives shown in n contexts (rows aligned)."""

    elements: torch.Tensor  # (n, S) long
    products: torch.Tensor  # (n,) long
    categories: torch.Tensor  # (n,) long
    contexts: torch.Tensor  # (n, T) long
    images: torch.Tensor | None  # (n, D_img) float or None

    def __len__(self) -> int:
        return int(self.elements.shape[0])

    def take(self, index: torch.Tensor) -> CreativeBatch:
        return CreativeBatch(
            self.elements[index], self.products[index], self.categories[index], self.contexts[index],
            None if self.images is None else self.images[index],
        )

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """Every tensor of the batch (elements, products, categories, contexts, then images if any), e.g.
        for a training checkpoint's digest of its data."""
        images = () if self.images is None else (self.images,)
        return (self.elements, self.products, self.categories, self.contexts, *images)


def make_batch(
    vocab: CreativeVocabulary,
    config: EncodingConfig,
    product_ids: Sequence[str],
    combos: Sequence[Sequence[str]],
    contexts: Sequence[str] | None = None,
    images: np.ndarray | None = None,
) -> CreativeBatch:
    """Tensors for rows of (product, combination, context[, image features])."""
    prod, cat = vocab.product_indices(product_ids)
    if contexts is None:
        contexts = [""] * len(product_ids)
    ctx = vocab.context_indices(contexts, config.max_context_tokens)
    return CreativeBatch(
        elements=torch.from_numpy(vocab.element_indices(combos)),
        products=torch.from_numpy(prod),
        categories=torch.from_numpy(cat),
        contexts=torch.from_numpy(ctx),
        images=None if images is None else torch.from_numpy(np.asarray(images, dtype=np.float32)),
    )


def outcome_tensors(
    vocab: CreativeVocabulary,
    config: EncodingConfig,
    rows: pd.DataFrame,
    images: np.ndarray | None = None,
) -> tuple[CreativeBatch, torch.Tensor, torch.Tensor]:
    """Inputs, clicks and trials of click-log rows (columns product_id, elements, context, clicks, trials)."""
    batch = make_batch(
        vocab, config, rows["product_id"].tolist(), rows["elements"].tolist(), rows["context"].tolist(), images
    )
    clicks = torch.tensor(rows["clicks"].to_numpy(dtype=np.float32))
    trials = torch.tensor(rows["trials"].to_numpy(dtype=np.float32))
    return batch, clicks, trials


class CreativeTower(nn.Module):
    """Embeds a creative's slots, product, context and (optionally) image into ``embedding_dim`` vectors.

    Element vector = id embedding + slot embedding + W_text · text embedding (frozen text features).
    Unknown ids (index 0) have a zero id embedding, so an unseen element is represented by its words alone.
    """

    def __init__(
        self,
        vocab: CreativeVocabulary,
        config: EncodingConfig,
        text_matrix: np.ndarray,
        image_dim: int = 0,
    ) -> None:
        super().__init__()
        d = config.embedding_dim
        self.n_slots = len(vocab.slots)
        self.element_id = nn.Embedding(len(vocab.elements) + 1, d, padding_idx=UNKNOWN)
        self.slot = nn.Parameter(torch.zeros(self.n_slots, d))
        self.register_buffer("text", torch.as_tensor(text_matrix, dtype=torch.float32))
        self.text_proj = nn.Linear(self.text.shape[1], d, bias=False)
        self.product = nn.Embedding(len(vocab.products) + 1, d, padding_idx=UNKNOWN)
        self.category = nn.Embedding(len(vocab.categories) + 1, d, padding_idx=UNKNOWN)
        self.context = nn.Embedding(len(vocab.context_tokens) + 1, d, padding_idx=UNKNOWN)
        self.image_proj = nn.Linear(image_dim, d) if image_dim else None
        for emb in (self.element_id, self.product, self.category, self.context):
            nn.init.normal_(emb.weight, std=0.05)
            with torch.no_grad():
                emb.weight[UNKNOWN].zero_()

    def element_vectors(self, elements: torch.Tensor) -> torch.Tensor:
        """(n, S, d) vectors of each slot's element."""
        return self.element_id(elements) + self.slot + self.text_proj(self.text[elements])

    def product_vector(self, batch: CreativeBatch) -> torch.Tensor:
        return self.product(batch.products) + self.category(batch.categories)

    def context_vector(self, batch: CreativeBatch) -> torch.Tensor:
        mask = (batch.contexts != UNKNOWN).float().unsqueeze(-1)
        summed = (self.context(batch.contexts) * mask).sum(dim=1)
        return summed / mask.sum(dim=1).clamp(min=1.0)

    def image_vector(self, batch: CreativeBatch) -> torch.Tensor | None:
        if self.image_proj is None or batch.images is None:
            return None
        return self.image_proj(batch.images)
