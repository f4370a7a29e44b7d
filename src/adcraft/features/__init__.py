"""Image and text features: offline pretrained encoders (and tiny stand-ins), visual attributes,
and a content-addressed feature cache.

Names are imported from their modules on first use, so ``import adcraft.features`` stays cheap
(torch is imported only with an encoder, sentence-transformers only when MiniLM is built).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ImageEncoder": "image_encoder",
    "ImageEncoderConfig": "image_encoder",
    "build_image_encoder": "image_encoder",
    "TextEncoder": "text_encoder",
    "TextEncoderConfig": "text_encoder",
    "build_text_encoder": "text_encoder",
    "FeatureCache": "cache",
    "encode_image_files": "cache",
    "encode_texts": "cache",
    "ATTRIBUTE_NAMES": "attributes",
    "attribute_matrix": "attributes",
    "compute_attributes": "attributes",
    "uniqueness": "attributes",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from adcraft.features.attributes import (
        ATTRIBUTE_NAMES,
        attribute_matrix,
        compute_attributes,
        uniqueness,
    )
    from adcraft.features.cache import FeatureCache, encode_image_files, encode_texts
    from adcraft.features.image_encoder import ImageEncoder, ImageEncoderConfig, build_image_encoder
    from adcraft.features.text_encoder import TextEncoder, TextEncoderConfig, build_text_encoder


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'adcraft.features' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"adcraft.features.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
