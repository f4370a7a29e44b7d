"""CAIG's background prompt model (arXiv 2502.06823, WWW 2025), small: a product-conditioned GRU over prompt words.

CAIG fine-tunes a multimodal LLM to write a short background prompt for a product from its image and
title. Here the writer is a small autoregressive model over a closed vocabulary:

- tokens are the words (and ``#RRGGBB`` codes) and commas of the market's background prompts, plus
  everyday colour words the renderer understands (``COLOUR_WORDS``, each checked with
  :func:`adcraft.render.parse_color`), so that every prompt it writes can be drawn;
- the condition is the product: frozen text features of "title, category" and frozen image features
  of the product photo (standardised over the market's products). Image features matter for PCPO,
  whose corrupted condition blanks patches of the photo;
- the network: ``c = tanh(W [t; v])``, ``h_0 = tanh(U c)``, a GRU reading ``[embed(y_{i-1}); c]`` and a
  linear head over the vocabulary. The log-probability of a prompt is the sum of its tokens'
  log-probabilities, end-of-prompt token included (the sequence log-probability DPO needs).

Supervised fit (``PromptTrainer``): each product's logged backgrounds, weighted by the impressions of
the past creatives that showed them (raised to ``weight_power``) and normalised per product, so every
product counts the same; products without logs learn from every word prompt they may use. The
weighted negative log-likelihood is minimised with Adam by ``learning.training.fit`` (optionally
stopped early on a held-out share of the backgrounds, and resumable from a checkpoint). A market's
prompts are few (the simulator has ten), so a model fitted to them alone only repeats them; by
default a fifth of each prompt's weight goes to a copy with one colour word swapped for another
(``colour_variants``, an adcraft choice, not CAIG's), which teaches it to write new colourways the
preference rounds can choose from.

A model saves as ``config.json`` + ``model.safetensors`` (vocabulary, product ids and their frozen
features included), so it samples for its products without the market.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from adcraft.configuration import check_config, from_mapping
from adcraft.errors import InputError
from adcraft.features.cache import default_cache_dir
from adcraft.learning.artifacts import load_artifact, save_artifact
from adcraft.learning.checkpoint import array_digest
from adcraft.learning.training import TrainConfig, TrainHistory, fit, torch_threads
from adcraft.market import Market
from adcraft.render import parse_color

KIND = "background_prompt"
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIALS = (PAD, BOS, EOS)
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
BACKGROUND_SLOT = "background"
TextBackbone = Literal["minilm", "tiny"]
TEXT_BACKBONES: tuple[str, ...] = get_args(TextBackbone)
ImageBackbone = Literal["efficientnet-lite0", "tiny", "none"]
IMAGE_BACKBONES: tuple[str, ...] = get_args(ImageBackbone)
_TOKEN = re.compile(r"#[0-9a-f]{6}(?![0-9a-f])|#[0-9a-f]{3}(?![0-9a-f])|[a-z]+|,")
_HEX_ONLY = re.compile(r"^\s*#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})\s*$")

COLOUR_WORDS: tuple[str, ...] = (
    "white", "black", "grey", "silver", "beige", "cream", "ivory", "sand", "taupe", "brown", "charcoal",
    "slate", "navy", "blue", "sky", "teal", "turquoise", "mint", "sage", "olive", "green", "emerald",
    "forest", "yellow", "mustard", "gold", "orange", "peach", "coral", "terracotta", "rust", "red",
    "burgundy", "pink", "blush", "rose", "lilac", "lavender", "purple", "plum",
)
"""Everyday colour words added to the vocabulary (those the renderer reads as a colour)."""


# -- words -----------------------------------------------------------------------------------------


def tokenize(prompt: str) -> list[str]:
    """The prompt's tokens: lower-cased words, ``#hex`` codes and commas (anything else is dropped)."""
    return _TOKEN.findall((prompt or "").lower())


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens back to a prompt: words joined by spaces, a comma after the word before it.

    Leading, trailing and repeated commas are dropped, so ``detokenize(tokenize(p))`` is the canonical
    spelling of ``p`` (``"Warm beige studio ,soft shadow"`` -> ``"warm beige studio, soft shadow"``).
    """
    parts: list[str] = []
    for token in tokens:
        if token in SPECIALS:
            continue
        if token == ",":
            if parts and parts[-1] != ",":
                parts.append(",")
            continue
        parts.append(token)
    while parts and parts[-1] == ",":
        parts.pop()
    text = ""
    for token in parts:
        text += token if (token == "," or not text) else f" {token}"
    return text


def normalize_prompt(prompt: str) -> str:
    """The canonical spelling of a prompt (:func:`detokenize` of :func:`tokenize`)."""
    return detokenize(tokenize(prompt))


def prompt_key(prompt: str) -> tuple[str, ...]:
    """What a prompt draws: its words and hex codes in order (case and commas do not change the drawing)."""
    return tuple(token for token in tokenize(prompt) if token != ",")


def repeats_a_word(prompt: str) -> bool:
    """Whether a word or hex code occurs twice ("sage sage paper"): a sampling slip, not a description."""
    words = prompt_key(prompt)
    return len(set(words)) < len(words)


def is_word_prompt(value: object) -> bool:
    """True for a background value in words (at least one word token), False for a bare ``#RRGGBB``."""
    if not isinstance(value, str) or _HEX_ONLY.match(value):
        return False
    return any(token[0].isalpha() for token in tokenize(value))


def renderable_colour_words() -> list[str]:
    """``COLOUR_WORDS`` that the renderer reads as a colour."""
    return [word for word in COLOUR_WORDS if parse_color(word) is not None]


@dataclass
class PromptVocabulary:
    """Token strings by id; ids 0, 1, 2 are padding, begin and end of prompt."""

    tokens: list[str]

    def __post_init__(self) -> None:
        if list(self.tokens[: len(SPECIALS)]) != list(SPECIALS):
            raise InputError(f"a prompt vocabulary starts with {list(SPECIALS)}")
        if len(set(self.tokens)) != len(self.tokens):
            raise InputError("a prompt vocabulary has each token once")
        self._index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def from_prompts(cls, prompts: Sequence[str], extra_words: Sequence[str] = ()) -> PromptVocabulary:
        """Every token of ``prompts`` and ``extra_words``, sorted after the special tokens."""
        words = {token for prompt in prompts for token in tokenize(prompt)}
        words.update(token for word in extra_words for token in tokenize(word))
        return cls(list(SPECIALS) + sorted(words))

    def __len__(self) -> int:
        return len(self.tokens)

    def covers(self, prompt: str) -> bool:
        """Whether every token of ``prompt`` is in the vocabulary (and it has one)."""
        tokens = tokenize(prompt)
        return bool(tokens) and all(token in self._index for token in tokens)

    def encode(self, prompt: str) -> list[int]:
        """Token ids of a prompt, without begin/end tokens; ``InputError`` for a word it does not know."""
        tokens = tokenize(prompt)
        unknown = sorted({t for t in tokens if t not in self._index})
        if unknown:
            raise InputError(f"the prompt {prompt!r} uses words outside the prompt vocabulary: {unknown}")
        if not tokens:
            raise InputError(f"the prompt {prompt!r} has no words")
        return [self._index[t] for t in tokens]

    def decode(self, ids: Sequence[int]) -> str:
        """A prompt from token ids (stops at the end token)."""
        tokens = []
        for i in ids:
            if int(i) == EOS_ID:
                break
            tokens.append(self.tokens[int(i)])
        return detokenize(tokens)

    def to_json(self) -> dict:
        return {"tokens": list(self.tokens)}

    @classmethod
    def from_json(cls, data: dict) -> PromptVocabulary:
        return cls(list(data["tokens"]))


def background_prompts(market: Market) -> list[str]:
    """The market's background prompts in words (bare ``#RRGGBB`` values left out), canonical spelling."""
    if BACKGROUND_SLOT not in market.config.slots:
        raise InputError(f"the market has no '{BACKGROUND_SLOT}' slot: there are no background prompts to learn")
    values = market.elements.loc[market.elements["slot"] == BACKGROUND_SLOT, "value"]
    return sorted({normalize_prompt(v) for v in values if is_word_prompt(v)})


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptModelConfig:
    """Settings of the prompt model and its supervised fit (module docstring).

    text_backbone: text features of "title, category": "minilm" (pretrained) or "tiny" (hashing).
    image_backbone: features of the product photo: "efficientnet-lite0", "tiny" or "none" (then
        PCPO can only corrupt the title).
    embedding_dim, condition_dim, hidden: token embedding, product condition and GRU widths.
    max_tokens: longest prompt it writes (the end token is forced after that many tokens).
    colour_words: add ``COLOUR_WORDS`` to the vocabulary.
    colour_variants: share of each logged prompt's weight given to a recoloured copy of it in every
        epoch of the supervised fit (``fit_prompts``); 0 fits the logged prompts alone.
    weight_power: a logged background's weight is (its impressions) ** weight_power.
    epochs, batch_size, learning_rate, seed: the supervised fit (``fit_prompts``).
    validation_share: share of the logged backgrounds held out to stop the fit early, after
        ``patience`` epochs without improvement (keeping the best epoch's weights); 0 runs every epoch.
    num_threads: torch threads while the prompt model trains or writes (``torch_threads``; None leaves
        torch's setting alone).
    """

    text_backbone: TextBackbone = "minilm"
    image_backbone: ImageBackbone = "efficientnet-lite0"
    embedding_dim: int = 32
    condition_dim: int = 64
    hidden: int = 128
    max_tokens: int = 16
    colour_words: bool = True
    colour_variants: float = 0.2
    weight_power: float = 1.0
    epochs: int = 60
    batch_size: int = 128
    learning_rate: float = 0.003
    seed: int = 0
    validation_share: float = 0.0
    patience: int = 4
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        check_config(self)
        if self.text_backbone not in TEXT_BACKBONES:
            raise InputError(f"text_backbone must be one of {', '.join(TEXT_BACKBONES)}, got {self.text_backbone!r}")
        if self.image_backbone not in IMAGE_BACKBONES:
            raise InputError(
                f"image_backbone must be one of {', '.join(IMAGE_BACKBONES)}, got {self.image_backbone!r}"
            )
        for name in ("embedding_dim", "condition_dim", "hidden", "max_tokens", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.num_threads is not None and self.num_threads < 1:
            raise InputError(f"num_threads must be at least 1 or None, got {self.num_threads}")
        if not 0.0 <= self.colour_variants < 1.0:
            raise InputError(f"colour_variants must be in [0, 1), got {self.colour_variants}")
        if self.weight_power < 0:
            raise InputError(f"weight_power must be >= 0, got {self.weight_power}")
        if not 0.0 <= self.validation_share < 1.0:
            raise InputError(f"validation_share must be in [0, 1), got {self.validation_share}")


# -- product conditions --------------------------------------------------------------------------


def product_text(title: str, category: str) -> str:
    """The words a product is conditioned on."""
    return f"{title}, {category}"


@dataclass
class ProductConditions:
    """Frozen features of the products a prompt model writes for (rows aligned with ``product_ids``)."""

    product_ids: list[str]
    text: np.ndarray  # (n, text_dim) float32
    image: np.ndarray  # (n, image_dim) float32; image_dim is 0 without an image backbone

    def __post_init__(self) -> None:
        self._row = {p: i for i, p in enumerate(self.product_ids)}

    def rows(self, product_ids: Sequence[str]) -> np.ndarray:
        """Row of each product; ``InputError`` naming products the model has no features for."""
        unknown = [p for p in dict.fromkeys(product_ids) if p not in self._row]
        if unknown:
            raise InputError(f"the prompt model has no features for the products {unknown[:5]}")
        return np.array([self._row[p] for p in product_ids], dtype=np.int64)

    def features(self, product_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(text, image) feature rows of the products."""
        rows = self.rows(product_ids)
        return self.text[rows], self.image[rows]


def encode_products(market: Market, config: PromptModelConfig, cache_dir: Path | None = None) -> ProductConditions:
    """Text features of "title, category" and image features of the photo of every product of a market."""
    from adcraft.features.cache import FeatureCache, encode_image_files, encode_texts
    from adcraft.features.text_encoder import TextEncoderConfig, build_text_encoder

    products = market.products
    cache = FeatureCache(cache_dir or default_cache_dir())
    texts = [product_text(t, c) for t, c in zip(products["title"], products["category"])]
    text = encode_texts(build_text_encoder(TextEncoderConfig(backbone=config.text_backbone)), texts, cache)
    if config.image_backbone == "none":
        image = np.zeros((len(products), 0), dtype=np.float32)
    else:
        encoder = product_image_encoder(config)
        image = encode_image_files(encoder, [market.resolve(p) for p in products["image"]], cache)
    return ProductConditions(products["product_id"].tolist(), text.astype(np.float32), image.astype(np.float32))


def product_image_encoder(config: PromptModelConfig):
    """The image encoder of the product photos (``None`` without an image backbone)."""
    if config.image_backbone == "none":
        return None
    from adcraft.features.image_encoder import ImageEncoderConfig, build_image_encoder

    return build_image_encoder(ImageEncoderConfig(backbone=config.image_backbone))


# -- network ---------------------------------------------------------------------------------------


def _standardiser(features: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if features.shape[1] == 0:
        return torch.zeros(0), torch.ones(0)
    scale = features.std(axis=0)
    return (torch.from_numpy(features.mean(axis=0).astype(np.float32)),
            torch.from_numpy(np.where(scale > 1e-6, scale, 1.0).astype(np.float32)))


class PromptNetwork(nn.Module):
    """Product condition -> GRU over prompt tokens (module docstring).

    ``log_prob`` and ``sample`` share one rule for the distribution of the next token: padding and
    begin tokens never come, the end token never comes first, and it is forced after ``max_tokens``
    tokens; so a sampled prompt's ``log_prob`` is exactly the log-probability it was drawn with.
    """

    def __init__(self, n_tokens: int, text_dim: int, image_dim: int, config: PromptModelConfig) -> None:
        super().__init__()
        self.max_tokens = config.max_tokens
        self.register_buffer("text_mean", torch.zeros(text_dim))
        self.register_buffer("text_scale", torch.ones(text_dim))
        self.register_buffer("image_mean", torch.zeros(image_dim))
        self.register_buffer("image_scale", torch.ones(image_dim))
        self.condition = nn.Sequential(nn.Linear(text_dim + image_dim, config.condition_dim), nn.Tanh())
        self.initial = nn.Linear(config.condition_dim, config.hidden)
        self.embed = nn.Embedding(n_tokens, config.embedding_dim)
        self.gru = nn.GRU(config.embedding_dim + config.condition_dim, config.hidden, batch_first=True)
        self.head = nn.Linear(config.hidden, n_tokens)

    def fit_standardisers(self, text: np.ndarray, image: np.ndarray) -> None:
        """Standardise conditions with the mean and spread of the products' features."""
        for name, features in (("text", text), ("image", image)):
            mean, scale = _standardiser(features)
            getattr(self, f"{name}_mean").copy_(mean)
            getattr(self, f"{name}_scale").copy_(scale)

    def condition_vector(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """(n, condition_dim) product condition c."""
        parts = [(text - self.text_mean) / self.text_scale]
        if image.shape[1]:
            parts.append((image - self.image_mean) / self.image_scale)
        return self.condition(torch.cat(parts, dim=1))

    def _run(self, tokens: torch.Tensor, c: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.embed(tokens), c[:, None, :].expand(-1, tokens.shape[1], -1)], dim=2)
        out, h = self.gru(x, h)
        return self.head(out), h

    def _masked(self, logits: torch.Tensor, first_position: int) -> torch.Tensor:
        """Apply the next-token rule to (n, T, V) logits whose first column is at ``first_position``."""
        logits = logits.clone()
        logits[..., PAD_ID] = -torch.inf
        logits[..., BOS_ID] = -torch.inf
        positions = torch.arange(first_position, first_position + logits.shape[1])
        logits[:, positions == 0, EOS_ID] = -torch.inf
        forced = positions >= self.max_tokens
        if forced.any():
            logits[:, forced, :] = -torch.inf
            logits[:, forced, EOS_ID] = 0.0
        return logits

    def log_prob(self, text: torch.Tensor, image: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(n,) sequence log-probabilities of ``targets`` (n, L): token ids, then EOS, then padding."""
        c = self.condition_vector(text, image)
        h0 = torch.tanh(self.initial(c)).unsqueeze(0)
        inputs = torch.cat([torch.full_like(targets[:, :1], BOS_ID), targets[:, :-1]], dim=1)
        logits, _ = self._run(inputs, c, h0)
        logp = F.log_softmax(self._masked(logits, 0), dim=-1)
        picked = logp.gather(2, targets.unsqueeze(2)).squeeze(2)
        return torch.where(targets != PAD_ID, picked, torch.zeros_like(picked)).sum(dim=1)

    @torch.no_grad()
    def sample(
        self, text: torch.Tensor, image: torch.Tensor, temperature: float, generator: torch.Generator
    ) -> list[list[int]]:
        """One prompt (token ids, no end token) per row, drawn at ``temperature``."""
        c = self.condition_vector(text, image)
        h = torch.tanh(self.initial(c)).unsqueeze(0)
        token = torch.full((len(c), 1), BOS_ID, dtype=torch.long)
        done = torch.zeros(len(c), dtype=torch.bool)
        drawn: list[torch.Tensor] = []
        for position in range(self.max_tokens + 1):
            logits, h = self._run(token, c, h)
            probs = F.softmax(self._masked(logits, position)[:, 0] / temperature, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator)
            token = torch.where(done[:, None], torch.full_like(token, EOS_ID), token)
            drawn.append(token[:, 0])
            done |= token[:, 0] == EOS_ID
            if done.all():
                break
        ids = torch.stack(drawn, dim=1).tolist()
        return [row[: row.index(EOS_ID)] if EOS_ID in row else row for row in ids]

    @torch.no_grad()
    def beam_search(self, text: torch.Tensor, image: torch.Tensor, width: int) -> list[tuple[list[int], float]]:
        """The ``width`` most probable prompts found by beam search for one product (rows of 1)."""
        c = self.condition_vector(text, image)
        states = torch.tanh(self.initial(c)).unsqueeze(0)
        alive: list[tuple[list[int], float]] = [([], 0.0)]
        finished: list[tuple[list[int], float]] = []
        for position in range(self.max_tokens + 1):
            last = torch.tensor([[seq[-1] if seq else BOS_ID] for seq, _ in alive])
            logits, states = self._run(last, c.expand(len(alive), -1), states)
            logp = F.log_softmax(self._masked(logits, position)[:, 0], dim=-1)
            scores = (torch.tensor([s for _, s in alive])[:, None] + logp).flatten()
            top = torch.topk(scores, min(width, int(torch.isfinite(scores).sum())))
            grown, rows = [], []
            for value, flat in zip(top.values.tolist(), top.indices.tolist()):
                beam, token = divmod(flat, logp.shape[1])
                if token == EOS_ID:
                    finished.append((alive[beam][0], value))
                else:
                    grown.append((alive[beam][0] + [token], value))
                    rows.append(beam)
            finished = sorted(finished, key=lambda item: -item[1])[:width]
            # log-probabilities only fall as a prompt grows: no live beam can overtake a full list
            if not grown or (len(finished) == width and finished[-1][1] >= grown[0][1]):
                break
            alive, states = grown, states[:, rows]
        return finished


def pad_targets(sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """(n, L) target tensor: each sequence's ids, then EOS, then padding."""
    width = max((len(s) for s in sequences), default=0) + 1
    out = np.full((len(sequences), width), PAD_ID, dtype=np.int64)
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = seq
        out[i, len(seq)] = EOS_ID
    return torch.from_numpy(out)


# -- the model -------------------------------------------------------------------------------------


class BackgroundPromptModel:
    """A prompt model with its vocabulary and the frozen features of the products it writes for."""

    def __init__(
        self,
        config: PromptModelConfig,
        vocab: PromptVocabulary,
        conditions: ProductConditions,
        network: PromptNetwork,
        history: list[float] | None = None,
    ) -> None:
        self.config = config
        self.vocab = vocab
        self.conditions = conditions
        self.network = network.eval()
        self.history = list(history or [])

    @property
    def product_ids(self) -> list[str]:
        return list(self.conditions.product_ids)

    def copy(self) -> BackgroundPromptModel:
        """An independent copy (its own network weights)."""
        network = copy.deepcopy(self.network)
        return BackgroundPromptModel(self.config, self.vocab, self.conditions, network, self.history)

    def condition_tensors(self, product_ids: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        text, image = self.conditions.features(product_ids)
        return torch.from_numpy(text), torch.from_numpy(image)

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        return [self.vocab.encode(p) for p in prompts]

    def sample_ids(
        self, product_ids: Sequence[str], temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> list[list[int]]:
        """One prompt (token ids) per entry of ``product_ids``."""
        if not temperature > 0:
            raise InputError(f"temperature must be positive, got {temperature}")
        text, image = self.condition_tensors(product_ids)
        with torch_threads(self.config.num_threads):
            return self.network.sample(text, image, temperature, generator or torch.Generator().manual_seed(0))

    def sample(
        self, product_ids: Sequence[str], n: int = 1, temperature: float = 1.0, seed: int = 0
    ) -> list[list[str]]:
        """``n`` prompts drawn for each product, at ``temperature`` (1 is the model's own distribution)."""
        if n < 1:
            raise InputError(f"n must be at least 1, got {n}")
        repeated = [p for p in product_ids for _ in range(n)]
        ids = self.sample_ids(repeated, temperature, torch.Generator().manual_seed(seed))
        prompts = [self.vocab.decode(seq) for seq in ids]
        return [prompts[i * n : (i + 1) * n] for i in range(len(product_ids))]

    def log_prob_ids(self, product_ids: Sequence[str], sequences: Sequence[Sequence[int]]) -> np.ndarray:
        text, image = self.condition_tensors(product_ids)
        with torch.no_grad(), torch_threads(self.config.num_threads):
            return self.network.log_prob(text, image, pad_targets(sequences)).numpy().astype(np.float64)

    def log_prob(self, product_ids: Sequence[str], prompts: Sequence[str]) -> np.ndarray:
        """Sequence log-probability (sum over tokens, end token included) of each product's prompt."""
        if len(product_ids) != len(prompts):
            raise InputError(f"got {len(prompts)} prompts for {len(product_ids)} products")
        return self.log_prob_ids(product_ids, self.encode(prompts))

    def beam_search(self, product_ids: Sequence[str], width: int = 4) -> list[list[tuple[str, float]]]:
        """Per product, up to ``width`` (prompt, log-probability) pairs, most probable first.

        Token sequences that spell the same prompt (a stray comma) count once; the log-probability is
        that of the prompt's canonical spelling.
        """
        if width < 1:
            raise InputError(f"width must be at least 1, got {width}")
        out = []
        for pid in product_ids:
            text, image = self.condition_tensors([pid])
            with torch_threads(self.config.num_threads):
                found = self.network.beam_search(text, image, width)
            prompts = [self.vocab.decode(seq) for seq, _ in found]
            prompts = [p for p in dict.fromkeys(prompts) if p]
            scores = self.log_prob([pid] * len(prompts), prompts) if prompts else np.zeros(0)
            out.append(sorted(zip(prompts, scores.tolist()), key=lambda item: -item[1]))
        return out

    def greedy(self, product_ids: Sequence[str]) -> list[str]:
        """The most probable next token at every step (beam width 1), per product."""
        return [found[0][0] for found in self.beam_search(product_ids, width=1)]

    def save(self, folder: Path) -> None:
        """Write ``config.json`` + ``model.safetensors`` to ``folder``."""
        tensors = {f"network.{k}": v for k, v in self.network.state_dict().items()}
        tensors["conditions.text"] = torch.from_numpy(self.conditions.text)
        tensors["conditions.image"] = torch.from_numpy(self.conditions.image)
        save_artifact(
            folder, KIND, asdict(self.config), tensors,
            extra={"vocab": self.vocab.to_json(), "product_ids": self.product_ids, "history": self.history},
        )

    @classmethod
    def load(cls, folder: Path) -> BackgroundPromptModel:
        """Read a model written by ``save``; ``InputError`` if the folder holds no prompt model."""
        artifact = load_artifact(folder, expected_kind=KIND)
        config = from_mapping(PromptModelConfig, artifact.config)
        extra = artifact.extra or {}
        vocab = PromptVocabulary.from_json(extra["vocab"])
        text = artifact.tensors["conditions.text"].numpy()
        image = artifact.tensors["conditions.image"].numpy()
        conditions = ProductConditions(list(extra["product_ids"]), text, image)
        network = PromptNetwork(len(vocab), text.shape[1], image.shape[1], config)
        state = {k.removeprefix("network."): v for k, v in artifact.tensors.items() if k.startswith("network.")}
        network.load_state_dict(state)
        return cls(config, vocab, conditions, network, extra.get("history"))


# -- supervised fit --------------------------------------------------------------------------------


def logged_backgrounds(market: Market, weight_power: float = 1.0) -> pd.DataFrame:
    """(product_id, prompt, weight): what each product's past creatives showed as background, in words.

    A prompt's weight is the impressions of the creatives that showed it (every creative counts 1
    when the market has no logs), raised to ``weight_power`` and normalised to sum to 1 per product.
    Products with no logged background in words get every word prompt they may use, equally.
    """
    slot = market.config.slots.index(BACKGROUND_SLOT) if BACKGROUND_SLOT in market.config.slots else None
    if slot is None:
        raise InputError(f"the market has no '{BACKGROUND_SLOT}' slot: there are no background prompts to learn")
    value = dict(zip(market.elements["element_id"], market.elements["value"]))
    rows: list[tuple[str, str, float]] = []
    if market.creatives is not None and not market.creatives.empty:
        shown = _impressions_by_creative(market)
        for cid, pid, combo in zip(market.creatives["creative_id"], market.creatives["product_id"],
                                   market.creatives["elements"]):
            prompt = value.get(combo[slot])
            if is_word_prompt(prompt) and shown.get(cid, 0.0) > 0:
                rows.append((pid, normalize_prompt(prompt), shown[cid]))
    frame = pd.DataFrame(rows, columns=["product_id", "prompt", "weight"])
    frame = frame.groupby(["product_id", "prompt"], as_index=False, sort=True)["weight"].sum()
    frame["weight"] = frame["weight"] ** weight_power
    missing = [p for p in market.products["product_id"] if p not in set(frame["product_id"])]
    fallback = []
    for pid in missing:
        usable = market.usable_elements(pid, BACKGROUND_SLOT)["value"]
        for prompt in sorted({normalize_prompt(v) for v in usable if is_word_prompt(v)}):
            fallback.append((pid, prompt, 1.0))
    frame = pd.concat([frame, pd.DataFrame(fallback, columns=frame.columns)], ignore_index=True)
    frame["weight"] = frame["weight"].astype(np.float64)
    if frame.empty:
        raise InputError("the market has no background prompt in words to learn from (only #RRGGBB colours)")
    frame["weight"] = frame["weight"] / frame.groupby("product_id")["weight"].transform("sum")
    return frame.reset_index(drop=True)


def _impressions_by_creative(market: Market) -> dict[str, float]:
    """Impressions of each past creative (1 each when the market has no logs)."""
    if market.impressions is not None and not market.impressions.empty:
        return market.impressions["creative_id"].value_counts().astype(float).to_dict()
    if market.creative_stats is not None and not market.creative_stats.empty:
        return market.creative_stats.groupby("creative_id")["impressions"].sum().astype(float).to_dict()
    return {cid: 1.0 for cid in market.creatives["creative_id"]}


@dataclass(frozen=True)
class PromptExamples:
    """What the supervised fit learns from (rows aligned): a product, a prompt it should write and the
    prompt's weight (``logged_backgrounds``)."""

    product_ids: list[str]
    prompts: list[str]
    weights: np.ndarray  # float64

    def __post_init__(self) -> None:
        if not len(self.product_ids) == len(self.prompts) == len(self.weights):
            raise InputError(f"got {len(self.prompts)} prompts and {len(self.weights)} weights for "
                             f"{len(self.product_ids)} products")

    @classmethod
    def of(cls, frame: pd.DataFrame) -> PromptExamples:
        """From a ``logged_backgrounds`` frame."""
        return cls(frame["product_id"].tolist(), frame["prompt"].tolist(), frame["weight"].to_numpy(np.float64))

    def __len__(self) -> int:
        return len(self.product_ids)

    def take(self, rows: Sequence[int]) -> PromptExamples:
        return PromptExamples([self.product_ids[i] for i in rows], [self.prompts[i] for i in rows],
                              self.weights[np.asarray(rows, dtype=np.int64)])

    def split(self, share: float, seed: int) -> tuple[PromptExamples, PromptExamples | None]:
        """(training, validation) rows: a seeded ``share`` of the rows held out (none for share 0), at
        least one row on each side."""
        if share == 0:
            return self, None
        if len(self) < 2:
            raise InputError(f"validation_share needs at least two logged backgrounds to split, got {len(self)}")
        order = np.random.default_rng(seed).permutation(len(self))
        held = min(len(self) - 1, max(1, round(share * len(self))))
        return self.take(sorted(order[held:])), self.take(sorted(order[:held]))


@dataclass
class PromptTrainer:
    """Builds a prompt model for a market and fits it to the logged backgrounds (module docstring)."""

    config: PromptModelConfig = field(default_factory=PromptModelConfig)
    cache_dir: Path | None = None

    def build(self, market: Market) -> BackgroundPromptModel:
        """An untrained model: vocabulary, product features and randomly initialised weights."""
        config = self.config
        extra = renderable_colour_words() if config.colour_words else []
        vocab = PromptVocabulary.from_prompts(background_prompts(market), extra)
        conditions = encode_products(market, config, self.cache_dir)
        torch.manual_seed(config.seed)
        network = PromptNetwork(len(vocab), conditions.text.shape[1], conditions.image.shape[1], config)
        network.fit_standardisers(conditions.text, conditions.image)
        return BackgroundPromptModel(config, vocab, conditions, network)

    def fit(self, market: Market, progress: bool = False, *, checkpoint: Path | None = None,
            on_epoch: Callable[[int], None] | None = None) -> BackgroundPromptModel:
        """``build`` then minimise the weighted negative log-likelihood of ``logged_backgrounds`` (a
        ``validation_share`` of them held out for early stopping); ``checkpoint`` and ``on_epoch`` as in
        ``fit_prompts``."""
        model = self.build(market)
        examples = PromptExamples.of(logged_backgrounds(market, self.config.weight_power))
        too_long = [p for p in examples.prompts if len(tokenize(p)) > self.config.max_tokens]
        if too_long:
            raise InputError(f"the background prompt {too_long[0]!r} is longer than max_tokens="
                             f"{self.config.max_tokens} tokens; raise max_tokens")
        train, valid = examples.split(self.config.validation_share, self.config.seed)
        history = fit_prompts(model, train, self.config, progress, valid=valid, checkpoint=checkpoint,
                              on_epoch=on_epoch)
        model.history = history.train_loss
        return model


def recoloured(prompt: str, colours: Sequence[str], rng: np.random.Generator) -> str | None:
    """The prompt with one of its colour words swapped for another of ``colours`` (None if it has none).

    A swap that would repeat a word ("mint green" -> "green green") is not made.
    """
    tokens = tokenize(prompt)
    spots = [i for i, token in enumerate(tokens) if token in colours]
    if not spots:
        return None
    spot = spots[int(rng.integers(len(spots)))]
    options = [c for c in colours if c not in tokens]
    if not options:
        return None
    return detokenize(tokens[:spot] + [options[int(rng.integers(len(options)))]] + tokens[spot + 1 :])


class _ColourVariants:
    """Each epoch's ``recoloured`` copies of the training prompts, drawn epoch after epoch from one
    generator seeded once, so that a resumed fit gets the copies of an epoch that an uninterrupted fit
    got. Whether a prompt has a copy depends on its words alone: the same rows have one every epoch."""

    def __init__(self, prompts: Sequence[str], colours: Sequence[str], seed: int) -> None:
        self.prompts, self.colours = list(prompts), list(colours)
        self.rng = np.random.default_rng(seed)
        self.drawn: list[str | None] = []
        self.epochs = 0

    def epoch(self, epoch: int) -> list[str | None]:
        """The copies of ``epoch`` (None for a prompt without one); epochs are asked for in order."""
        while self.epochs <= epoch:
            self.drawn = [recoloured(p, self.colours, self.rng) for p in (self.prompts if self.colours else ())]
            self.epochs += 1
        return self.drawn


def fit_prompts(
    model: BackgroundPromptModel,
    examples: PromptExamples,
    config: PromptModelConfig,
    progress: bool = False,
    *,
    valid: PromptExamples | None = None,
    checkpoint: Path | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> TrainHistory:
    """Minimise ``sum_i w_i * -log p(prompt_i | product_i) / sum_i w_i`` with Adam (``fit``); the history.

    With ``config.colour_variants`` = s > 0, every epoch each prompt that names a colour word also
    teaches a fresh ``recoloured`` copy of itself with weight ``s * w_i`` (the original keeps
    ``(1 - s) * w_i``), so the model learns to write new colourways of the logged backgrounds, not
    only to repeat them.

    ``valid``: held-out examples whose weighted negative log-likelihood stops the fit after
    ``config.patience`` epochs without improvement, keeping the best epoch's weights; without them all
    ``config.epochs`` run. ``checkpoint``: a folder where the fit's state is saved after every epoch, from
    which a killed fit resumes to the same bits; ``on_epoch(epoch)`` is called after each epoch.
    """
    network = model.network
    rows = model.conditions.rows(examples.product_ids)
    sequences = model.encode(examples.prompts)
    colours = [w for w in renderable_colour_words() if w in model.vocab.tokens] if config.colour_variants > 0 else []
    variants = _ColourVariants(examples.prompts, colours, config.seed)
    copied = [i for i, variant in enumerate(variants.epoch(0)) if variant is not None]
    weights = np.append(examples.weights.astype(np.float64), config.colour_variants * examples.weights[copied])
    weights[copied] = (1.0 - config.colour_variants) * examples.weights[copied]
    w = torch.as_tensor(weights, dtype=torch.float32)
    all_rows = np.concatenate([rows, rows[copied]])
    text = torch.from_numpy(model.conditions.text[all_rows])
    image = torch.from_numpy(model.conditions.image[all_rows])
    targets = pad_targets(sequences)

    def before_epoch(epoch: int) -> None:
        nonlocal targets
        drawn = variants.epoch(epoch)
        targets = pad_targets(sequences + [model.vocab.encode(drawn[i]) for i in copied])

    def train_loss(index: torch.Tensor) -> torch.Tensor:
        logp = network.log_prob(text[index], image[index], targets[index])
        return -(w[index] * logp).sum() / w[index].sum()

    valid_loss = None
    if valid is not None:
        valid_text, valid_image = model.condition_tensors(valid.product_ids)
        valid_targets = pad_targets(model.encode(valid.prompts))
        valid_w = torch.as_tensor(valid.weights, dtype=torch.float32)

        def valid_loss() -> float:
            logp = network.log_prob(valid_text, valid_image, valid_targets)
            return float(-(valid_w * logp).sum() / valid_w.sum())

    train = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                        weight_decay=0.0, patience=config.patience, seed=config.seed)
    settings = {k: v for k, v in asdict(config).items() if k != "num_threads"}
    data = {"settings": settings, "train": array_digest(all_rows, w, *(np.asarray(s) for s in sequences)),
            "valid": None if valid is None else array_digest(valid_text, valid_image, valid_targets, valid_w)}
    with torch_threads(config.num_threads):
        return fit(network, len(all_rows), train_loss, valid_loss, train, progress,
                   "fitting the prompt model to the logged backgrounds", checkpoint=checkpoint, fingerprint=data,
                   on_epoch=on_epoch, before_epoch=before_epoch, row_weights=w)


__all__ = [
    "BackgroundPromptModel",
    "COLOUR_WORDS",
    "ProductConditions",
    "PromptExamples",
    "PromptModelConfig",
    "PromptNetwork",
    "PromptTrainer",
    "PromptVocabulary",
    "background_prompts",
    "detokenize",
    "encode_products",
    "fit_prompts",
    "is_word_prompt",
    "logged_backgrounds",
    "normalize_prompt",
    "pad_targets",
    "product_image_encoder",
    "product_text",
    "prompt_key",
    "recoloured",
    "repeats_a_word",
    "tokenize",
]
