"""Batch feature extraction: image and text feature vectors of a market, on either backend.

- ``OUT/image_features.parquet``: every distinct image the market names (products, elements, past
  creatives): ``image`` (its path in the market), ``key`` (its feature-cache key: encoder identity and
  file content), ``vector`` (``list<float32>``); sorted by ``image``.
- ``OUT/text_features.parquet``: every distinct text (product titles, and the words of elements as
  the reward models read them, ``element_text``): ``text``, ``key``, ``vector``; sorted by ``text``.

Each worker builds each encoder once, on its first chunk of that kind (a chunk holds images or texts,
never both), and encodes chunks with ``encode_image_files`` / ``encode_texts``, through the feature
cache when one is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from adcraft.atomic import check_output_folder, write_parquet
from adcraft.batch.backend import run_batch
from adcraft.batch.chunks import BatchConfig, ChunkFunction
from adcraft.configuration import check_config
from adcraft.features.image_encoder import ImageEncoderConfig
from adcraft.features.text_encoder import TextEncoderConfig
from adcraft.market import Market

IMAGE_FEATURES = "image_features.parquet"
TEXT_FEATURES = "text_features.parquet"


@dataclass(frozen=True)
class FeaturesConfig:
    """Which encoders to run and where to cache their vectors (``cache_dir=None``: no cache)."""

    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        check_config(self)


@dataclass(frozen=True)
class FeatureJob:
    """Encode a market's images and texts (items: ``kind`` "image" or "text", ``id`` the market path or the
    text, ``path`` the image file); each encoder is built on a worker's first chunk of its kind."""

    image: ImageEncoderConfig
    text: TextEncoderConfig
    cache_dir: str | None = None

    def load(self) -> ChunkFunction:
        from adcraft.features.cache import FeatureCache, encode_image_files, encode_texts
        from adcraft.features.image_encoder import build_image_encoder
        from adcraft.features.text_encoder import build_text_encoder

        cache = FeatureCache(self.cache_dir) if self.cache_dir is not None else None
        builders = {"image": lambda: build_image_encoder(self.image), "text": lambda: build_text_encoder(self.text)}
        encoders: dict[str, Any] = {}

        def encode(items: pa.Table) -> pa.Table:
            kind = items.column("kind")[0].as_py()
            if kind not in encoders:
                encoders[kind] = builders[kind]()
            encoder = encoders[kind]
            keys: list[str] = []  # each item's cache key, from the one read and hash of its content
            if kind == "image":
                vectors = encode_image_files(encoder, items.column("path").to_pylist(), cache, keys=keys)
            else:
                vectors = encode_texts(encoder, items.column("id").to_pylist(), cache, keys=keys)
            return pa.table({"key": pa.array(keys, pa.string()), "vector": vector_array(vectors)})

        return encode


def vector_array(vectors: np.ndarray) -> pa.ListArray:
    """An ``(n, dim)`` array as n ``list<float32>`` values."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    offsets = pa.array(np.arange(len(vectors) + 1, dtype=np.int64) * vectors.shape[1], pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(vectors.ravel(), pa.float32()))


def market_images(market: Market) -> list[str]:
    """Distinct images a market names (products, elements, past creatives), by market path, sorted."""
    names: set[str] = set(market.products["image"])
    for table in (market.elements, market.creatives):
        if table is not None and "image" in table:
            names.update(name for name in table["image"] if isinstance(name, str))
    return sorted(names)


def market_texts(market: Market) -> list[str]:
    """Distinct non-blank texts of a market (product titles, elements' words), sorted."""
    from adcraft.rewards.encoding import element_text

    elements = market.elements
    blank = [None] * len(elements)
    texts = set(market.products["title"])
    texts.update(
        element_text(slot, text, value)
        for slot, text, value in zip(elements["slot"], elements.get("text", blank), elements.get("value", blank))
    )
    return sorted(text for text in texts if isinstance(text, str) and text.strip())


def extract_features(
    market_dir: Path, out: Path, features: FeaturesConfig | None = None, config: BatchConfig | None = None
) -> tuple[Path, Path]:
    """Write ``OUT/image_features.parquet`` and ``OUT/text_features.parquet`` of a market; return their paths."""
    from adcraft.market import load_market

    features, config = features or FeaturesConfig(), config or BatchConfig()
    check_output_folder(Path(out), "features", inputs=[Path(market_dir)], replaces=False)
    market = load_market(market_dir)
    images, texts = market_images(market), market_texts(market)
    items = pa.table({
        "kind": pa.array(["image"] * len(images) + ["text"] * len(texts), pa.string()),
        "id": pa.array(images + texts, pa.string()),
        "path": pa.array([str(market.resolve(name)) for name in images] + [None] * len(texts), pa.string()),
    })
    cache_dir = str(Path(features.cache_dir).resolve()) if features.cache_dir is not None else None
    vectors = run_batch(FeatureJob(features.image, features.text, cache_dir), items, config, by="kind")
    out = Path(out)
    image_table = pa.table({"image": items.column("id").slice(0, len(images)),
                            **{name: vectors.column(name).slice(0, len(images)) for name in ("key", "vector")}})
    text_table = pa.table({"text": items.column("id").slice(len(images)),
                           **{name: vectors.column(name).slice(len(images)) for name in ("key", "vector")}})
    return write_parquet(out / IMAGE_FEATURES, image_table), write_parquet(out / TEXT_FEATURES, text_table)
