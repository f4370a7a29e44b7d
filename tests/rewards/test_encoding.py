from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adcraft.errors import InputError
from adcraft.learning.training import TrainConfig
from adcraft.rewards.ctr import CTRConfig, CTRTrainer, PointwiseCTRModel
from adcraft.rewards.encoding import EncodingConfig
from adcraft.rewards.mil import MILConfig, MILModel, MILTrainer
from adcraft.rewards.pairwise import PairConfig, PairwiseConfig, PairwiseModel, PairwiseTrainer

ENCODING = EncodingConfig(text_backbone="tiny", embedding_dim=8)
SHORT = TrainConfig(epochs=2, batch_size=512, learning_rate=0.02)
TRAINERS = {
    "ctr": (lambda: CTRTrainer(CTRConfig(encoding=ENCODING, train=SHORT)), PointwiseCTRModel),
    "mil": (lambda: MILTrainer(MILConfig(encoding=ENCODING, train=SHORT)), MILModel),
    "pairwise": (
        lambda: PairwiseTrainer(
            PairwiseConfig(encoding=ENCODING, pairs=PairConfig(min_impressions="auto", max_ratio=None), train=SHORT)
        ),
        PairwiseModel,
    ),
}


@pytest.fixture(scope="module", params=sorted(TRAINERS))
def model(request, logged_market):
    return TRAINERS[request.param][0]().fit(logged_market[0])


def score(model, product_ids, combos) -> np.ndarray:
    return model.predict_ctr(product_ids, combos)


def new_backgrounds(market, texts: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "element_id": [f"new-bg-{i}" for i in range(len(texts))],
            "slot": "background",
            "product_id": market.products["product_id"].iloc[0],
            "text": None,
            "value": texts,
            "image": None,
        }
    )


def with_background(market, element_id: str) -> tuple[list[str], list[list[str]]]:
    creatives = market.creatives.iloc[:4]
    slot = market.config.slots.index("background")
    combos = [list(c) for c in creatives["elements"]]
    for combo in combos:
        combo[slot] = element_id
    return creatives["product_id"].tolist(), combos


def test_known_elements_score_exactly_as_before(model, logged_market):
    market = logged_market[0]
    grown = model.with_elements(new_backgrounds(market, ["deep ocean blue studio, spotlight"]))
    products, combos = market.creatives["product_id"].tolist(), [list(c) for c in market.creatives["elements"]]
    np.testing.assert_array_equal(score(grown, products, combos), score(model, products, combos))
    assert len(grown.vocab.elements) == len(model.vocab.elements) + 1
    assert len(model.vocab.elements) == len(grown.vocab.elements) - 1  # the original is untouched


def test_new_elements_are_scored_by_their_words(model, logged_market):
    market = logged_market[0]
    grown = model.with_elements(new_backgrounds(market, ["deep ocean blue studio, spotlight", "#123456"]))
    products, worded = with_background(market, "new-bg-0")
    _, wordless = with_background(market, "new-bg-1")
    _, unknown = with_background(market, "never-seen")
    # a wordless new element is exactly an unknown id; one with words is not
    np.testing.assert_allclose(score(grown, products, wordless), score(grown, products, unknown), rtol=1e-6)
    assert not np.allclose(score(grown, products, worded), score(grown, products, unknown))


def test_a_grown_model_saves_and_loads(model, logged_market, tmp_path):
    market = logged_market[0]
    grown = model.with_elements(new_backgrounds(market, ["warm sand dunes, soft shadow"]))
    grown.save(tmp_path / "m")
    loaded = type(grown).load(tmp_path / "m")
    products, combos = with_background(market, "new-bg-0")
    np.testing.assert_allclose(score(loaded, products, combos), score(grown, products, combos), rtol=1e-6)


def test_new_elements_of_an_unknown_slot_are_refused(model, logged_market):
    frame = new_backgrounds(logged_market[0], ["plain grey"]).assign(slot="sticker")
    with pytest.raises(InputError, match="sticker"):
        model.with_elements(frame)


def test_the_image_runtime_is_checked_with_the_backbone():
    assert EncodingConfig(image_backbone="efficientnet-lite0", image_runtime="onnx").image_runtime == "onnx"
    with pytest.raises(InputError, match="image_runtime"):
        EncodingConfig(image_runtime="tensorrt")
    with pytest.raises(InputError, match="efficientnet-lite0"):
        EncodingConfig(image_backbone="tiny", image_runtime="onnx")
