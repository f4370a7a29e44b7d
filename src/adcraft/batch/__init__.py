"""Batch jobs over many items (feature extraction, scoring, rendering), run locally or on a Ray cluster.

    from adcraft.batch import BatchConfig, score_market_batch
    score_market_batch("model", "market", "out", BatchConfig(backend="ray", num_workers=4))

The ``local`` backend (the default) never imports Ray; both backends write the same outputs. Names are
imported from their modules on first use, so a Ray worker that renders never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BACKENDS": "chunks",
    "BatchConfig": "chunks",
    "BatchJob": "chunks",
    "batch_session": "backend",
    "map_chunks": "backend",
    "run_batch": "backend",
    "FeaturesConfig": "features_job",
    "extract_features": "features_job",
    "render_creatives": "render_job",
    "score_market_batch": "score_job",
}

__all__ = [
    "BACKENDS", "BatchConfig", "BatchJob", "FeaturesConfig", "batch_session", "extract_features", "map_chunks",
    "render_creatives", "run_batch", "score_market_batch",
]

if TYPE_CHECKING:
    from adcraft.batch.backend import batch_session, map_chunks, run_batch
    from adcraft.batch.chunks import BACKENDS, BatchConfig, BatchJob
    from adcraft.batch.features_job import FeaturesConfig, extract_features
    from adcraft.batch.render_job import render_creatives
    from adcraft.batch.score_job import score_market_batch


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'adcraft.batch' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"adcraft.batch.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
