"""A trained tiny CTR model and the tiny encoders shared by the batch tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from adcraft.batch import FeaturesConfig
from adcraft.features.image_encoder import ImageEncoderConfig
from adcraft.features.text_encoder import TextEncoderConfig
from adcraft.pipeline import train_reward_model

TINY_FEATURES = FeaturesConfig(image=ImageEncoderConfig(backbone="tiny", image_size=64),
                               text=TextEncoderConfig(backbone="tiny"))


@pytest.fixture(scope="session")
def ctr_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_market_dir: Path) -> Path:
    """A point-wise CTR model reading tiny text and image features, trained for two epochs."""
    root = tmp_path_factory.mktemp("batch-model")
    config = root / "ctr.yaml"
    config.write_text("encoding: {text_backbone: tiny, image_backbone: tiny, embedding_dim: 8}\ntrain: {epochs: 2}\n")
    train_reward_model("ctr", tiny_market_dir, root / "model", config)
    return root / "model"
