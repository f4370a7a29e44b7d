"""A small UA-InfoNCE model shared by the selection and editing tests (trained once per session)."""

from __future__ import annotations

import pytest

from adcraft.features.image_encoder import ImageEncoderConfig
from adcraft.features.text_encoder import TextEncoderConfig
from adcraft.rewards.contrastive import ContrastiveConfig, ContrastiveTrainConfig, ContrastiveTrainer
from adcraft.rewards.utility import UtilityConfig


@pytest.fixture(scope="session")
def ua_model(generator_market):
    """A contrastive model with tiny encoders on the generator market (CTR-based demand utility)."""
    market, _ = generator_market
    config = ContrastiveConfig(
        image=ImageEncoderConfig(backbone="tiny"), text=TextEncoderConfig(backbone="tiny"),
        demand=UtilityConfig(target="logit_ctr"), alpha=0.5, retrieval_tolerance=None, validation_share=0.3,
        train=ContrastiveTrainConfig(epochs=20),
    )
    return ContrastiveTrainer(config).fit(market)
