"""One conformance suite for every kind of judge in the registry (as scikit-learn's estimator checks).

Each kind is trained briefly on the tiny simulated market through the shared contract (``train``), saved,
loaded back through ``registry.load`` (which reads the kind from the artifact header) and compared with
the model it was saved from, for each capability its class declares. Every capability a kind does not
declare is refused, with the kinds that have it, by the registry and by the callers that need it.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from adcraft.batch import score_market_batch
from adcraft.cli import app
from adcraft.errors import InputError
from adcraft.features import ImageEncoderConfig, TextEncoderConfig
from adcraft.generate.preference import PairwiseJudge
from adcraft.learning.artifacts import save_artifact
from adcraft.learning.training import TrainConfig
from adcraft.market import load_market
from adcraft.pipeline import score_creatives
from adcraft.rewards import registry
from adcraft.rewards.contrastive import ContrastiveConfig, ContrastiveTrainConfig, training_pairs
from adcraft.rewards.ctr import CTRConfig
from adcraft.rewards.encoding import EncodingConfig
from adcraft.rewards.judge import Capabilities
from adcraft.rewards.mil import MILConfig
from adcraft.rewards.pairwise import PairConfig, PairwiseConfig
from adcraft.rewards.registry import KINDS
from adcraft.rewards.utility import UtilityConfig
from adcraft.serve.state import ServedRun

SHORT = TrainConfig(epochs=2, batch_size=256, learning_rate=0.02)
WITH_IMAGES = EncodingConfig(text_backbone="tiny", image_backbone="tiny", embedding_dim=8)
WITHOUT_IMAGES = EncodingConfig(text_backbone="tiny", embedding_dim=8)
FEW_ROWS = UtilityConfig(attributes=("brightness", "colourfulness"), target="logit_ctr", min_rows=5)
# Tiny settings of every kind the registry lists; a kind added to the registry must be added here.
CONFIGS = {
    "ctr": CTRConfig(encoding=WITH_IMAGES, train=SHORT),
    "pairwise": PairwiseConfig(encoding=WITH_IMAGES, train=SHORT,
                               pairs=PairConfig(min_impressions=5, max_ratio=None, min_ratio=1.0)),
    "mil": MILConfig(encoding=WITHOUT_IMAGES, train=SHORT),
    "utility": FEW_ROWS,
    "contrastive": ContrastiveConfig(image=ImageEncoderConfig(backbone="tiny"), text=TextEncoderConfig(backbone="tiny"),
                                     demand=FEW_ROWS, validation_share=0.3, train=ContrastiveTrainConfig(epochs=3)),
}
CAPABILITIES = [field.name for field in dataclasses.fields(Capabilities)]


def test_the_registry_lists_exactly_the_known_kinds():
    assert set(KINDS) == {"ctr", "pairwise", "mil", "utility", "contrastive"} == set(CONFIGS)
    for kind, spec in KINDS.items():
        assert spec.kind == kind and spec.model_class.kind == kind and spec.description
        assert isinstance(spec.capabilities, Capabilities)
        assert isinstance(CONFIGS[kind], spec.config_class)


def test_kinds_that_cannot_score_combinations_say_so():
    assert registry.kinds_with("scores_combinations") == ("ctr", "pairwise", "mil")
    assert not KINDS["utility"].capabilities.scores_combinations
    assert not KINDS["contrastive"].capabilities.scores_combinations
    with pytest.raises(InputError, match="ctr, pairwise, mil, utility, contrastive"):
        registry.spec("svm")
    with pytest.raises(InputError, match="unknown capability"):
        registry.kinds_with("flies")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def market(tiny_market_dir):
    return load_market(tiny_market_dir)


@pytest.fixture(scope="module")
def saved(market, tmp_path_factory):
    """kind -> (the model trained through the contract, the folder it was saved to)."""
    root = tmp_path_factory.mktemp("judges")
    out = {}
    for kind, config in CONFIGS.items():
        model = KINDS[kind].model_class.train(market, config)
        model.save(root / kind)
        out[kind] = (model, root / kind)
    return out


def creatives_of(market) -> tuple[list[str], list[list[str]], list[str]]:
    """Every past creative's product and elements, with a context of the market's logs for each."""
    creatives = market.creatives
    contexts = sorted(set(market.impressions["context"]))
    return (creatives["product_id"].tolist(), [list(c) for c in creatives["elements"]],
            [contexts[i % len(contexts)] for i in range(len(creatives))])


def new_background(market) -> pd.DataFrame:
    return pd.DataFrame({"element_id": ["judged-new"], "slot": "background", "product_id": None, "text": None,
                         "value": ["deep ocean blue studio, spotlight"], "image": None})


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_every_kind_round_trips_through_the_registry(kind, saved, market):
    model, folder = saved[kind]
    spec = KINDS[kind]
    assert type(model) is spec.model_class and model.kind == kind
    assert registry.check(folder) is spec
    loaded = registry.load(folder)
    assert type(loaded) is spec.model_class and loaded.config == model.config
    json.dumps(model.metrics(market))  # the reporting hook gives plain JSON
    declared = spec.capabilities
    products, combos, contexts = creatives_of(market)
    if declared.scores_combinations:  # bitwise the same click probabilities, each in [0, 1]
        for chosen in (None, contexts):
            before = model.predict_ctr(products, combos, chosen)
            assert before.shape == (len(products),) and np.all((before >= 0) & (before <= 1))
            np.testing.assert_array_equal(loaded.predict_ctr(products, combos, chosen), before)
        pd.testing.assert_frame_equal(loaded.score_market(market), model.score_market(market))
    if declared.reads_image_features:
        assert model.mean_image is not None  # these settings train with images
        features = np.random.default_rng(0).normal(size=(len(products), model.mean_image.shape[0]))
        features = features.astype(np.float32)
        moved = model.predict_ctr(products, combos, images=features)
        assert not np.array_equal(moved, model.predict_ctr(products, combos))  # the features count
        np.testing.assert_array_equal(loaded.predict_ctr(products, combos, images=features), moved)
    if declared.adds_elements:  # a grown model scores the new element alike after a round trip (rtol 1e-6)
        grown = model.with_elements(new_background(market))
        slot = market.config.slots.index("background")
        with_new = [[*c[:slot], "judged-new", *c[slot + 1:]] for c in combos]
        grown.save(folder.parent / f"{kind}-grown")
        again = registry.load(folder.parent / f"{kind}-grown")
        np.testing.assert_allclose(again.predict_ctr(products, with_new), grown.predict_ctr(products, with_new),
                                   rtol=1e-6)
    if declared.compares_pairs:
        shuffled = combos[1:] + combos[:1]
        np.testing.assert_array_equal(loaded.prob_first_better(products, combos, shuffled),
                                      model.prob_first_better(products, combos, shuffled))
    if declared.scores_images:
        pairs = training_pairs(market).head(4)
        images = [market.open_image(path) for path in pairs["image"]]
        text = pairs["text"].iloc[0]
        np.testing.assert_array_equal(loaded.score(images, text), model.score(images, text))


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_missing_capability_is_refused_naming_the_kinds_that_have_it(kind, capability, saved):
    model, folder = saved[kind]
    if KINDS[kind].capabilities.has(capability):
        assert registry.check(folder, capability) is KINDS[kind]
        assert registry.require(model, capability) is model
        return
    able = ", ".join(registry.kinds_with(capability))
    with pytest.raises(InputError, match=f"holds a '{kind}' model, which does not .*; use a {able} model"):
        registry.load(folder, capability)
    with pytest.raises(InputError, match=f"use a {able} model"):
        registry.require(model, capability)


def test_predict_ctr_takes_the_same_arguments_for_every_kind_that_scores(saved, market):
    products, combos, contexts = creatives_of(market)
    for kind in registry.kinds_with("scores_combinations"):
        model = saved[kind][0]
        positional = model.predict_ctr(products[:3], combos[:3], contexts[:3], None)
        np.testing.assert_array_equal(positional, model.predict_ctr(products[:3], combos[:3], contexts=contexts[:3]))


def test_scoring_callers_refuse_kinds_that_do_not_score_combinations(saved, tiny_market_dir, tmp_path):
    for kind in ("utility", "contrastive"):
        folder = saved[kind][1]
        with pytest.raises(InputError, match="does not predict CTR.*use a ctr, pairwise, mil model"):
            score_creatives(folder, tiny_market_dir, tmp_path / f"{kind}-scores")
        with pytest.raises(InputError, match="does not predict CTR"):
            score_market_batch(folder, tiny_market_dir, tmp_path / f"{kind}-batch")
        assert not (tmp_path / f"{kind}-scores").exists() and not (tmp_path / f"{kind}-batch").exists()


def test_the_prompt_judge_refuses_a_model_that_cannot_learn_new_elements(saved, market):
    with pytest.raises(InputError, match="with_elements.*use a ctr, pairwise, mil model"):
        PairwiseJudge(saved["utility"][0], market, {})
    judge = PairwiseJudge(saved["ctr"][0], market, {})  # a point-wise model judges by its two CTRs
    assert judge.uses_images


def test_the_api_refuses_an_upload_scorer_that_reads_no_images(saved):
    with pytest.raises(InputError, match="'mil' model, which does not read a creative's image features"):
        ServedRun._optional_model(saved["mil"][1], "reads_image_features", "adds_elements")
    assert type(ServedRun._optional_model(saved["pairwise"][1], "reads_image_features", "adds_elements")) is \
        KINDS["pairwise"].model_class
    with pytest.raises(InputError, match="use a contrastive model"):
        ServedRun._optional_model(saved["ctr"][1], "scores_images")


def test_the_command_line_refuses_a_model_without_the_capability_in_one_line(saved, tmp_path):
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (16, 16), "white").save(image)
    result = CliRunner().invoke(app, ["rank-images", "--model", str(saved["ctr"][1]), "--text", "a shoe", str(image)])
    assert result.exit_code == 2, result.output
    assert "does not score images against a text" in result.output and "use a contrastive model" in result.output
    assert "Traceback" not in result.output


def test_a_saved_artifact_of_no_registered_kind_is_refused(tmp_path):
    save_artifact(tmp_path / "policy", "combo", {}, {"w": np.zeros(2, dtype=np.float32)})
    with pytest.raises(InputError, match="holds a 'combo' model, which is not a reward model"):
        registry.load(tmp_path / "policy")


@pytest.mark.parametrize("kind", ["utility", "contrastive"])
def test_kinds_that_train_in_one_go_refuse_a_checkpoint(kind, market, tmp_path):
    assert not KINDS[kind].capabilities.resumable
    with pytest.raises(InputError, match="trains in one go"):
        KINDS[kind].model_class.train(market, CONFIGS[kind], checkpoint=tmp_path / "checkpoint")
