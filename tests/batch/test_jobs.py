"""The three batch jobs on the local backend: what they write, and that it is what the library computes."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from adcraft.batch import BatchConfig, extract_features, render_creatives, score_market_batch
from adcraft.cli import app
from adcraft.errors import InputError
from adcraft.features.cache import encode_image_files, encode_texts
from adcraft.features.image_encoder import build_image_encoder
from adcraft.features.text_encoder import build_text_encoder
from adcraft.market import load_market
from adcraft.pipeline import score_creatives, train_reward_model
from adcraft.render.compositor import placements_of
from adcraft.render.from_market import MarketRenderer

from .conftest import TINY_FEATURES

runner = CliRunner()


def test_features_are_the_encoders_vectors_of_every_market_image_and_text(tiny_market_dir, tmp_path):
    image_path, text_path = extract_features(tiny_market_dir, tmp_path, TINY_FEATURES, BatchConfig(batch_size=5))
    images, texts = pd.read_parquet(image_path), pd.read_parquet(text_path)
    market = load_market(tiny_market_dir)
    named = set(market.products["image"]) | set(market.creatives["image"].dropna())
    assert images["image"].tolist() == sorted(named)
    assert texts["text"].is_monotonic_increasing and texts["text"].is_unique
    assert set(market.products["title"]) <= set(texts["text"])
    schema = pq.read_schema(image_path)
    assert str(schema.field("vector").type) == "list<element: float>"
    paths = [market.resolve(name) for name in images["image"]]
    expected = encode_image_files(build_image_encoder(TINY_FEATURES.image), paths)
    np.testing.assert_allclose(np.stack(images["vector"]), expected, rtol=0, atol=1e-6)
    expected = encode_texts(build_text_encoder(TINY_FEATURES.text), texts["text"].tolist())
    np.testing.assert_array_equal(np.stack(texts["vector"]), expected)
    assert images["key"].is_unique and texts["key"].str.fullmatch("[0-9a-f]{64}").all()


def test_feature_vectors_do_not_depend_on_the_batch_size(tiny_market_dir, tmp_path):
    a = extract_features(tiny_market_dir, tmp_path / "a", TINY_FEATURES, BatchConfig(batch_size=1))
    b = extract_features(tiny_market_dir, tmp_path / "b", TINY_FEATURES, BatchConfig(batch_size=1000))
    for left, right in zip(a, b):
        left, right = pd.read_parquet(left), pd.read_parquet(right)
        assert left.drop(columns="vector").equals(right.drop(columns="vector"))
        np.testing.assert_allclose(np.stack(left["vector"]), np.stack(right["vector"]), rtol=0, atol=1e-6)


def test_batch_scores_are_the_whole_market_scores(ctr_model_dir, tiny_market_dir, tmp_path):
    whole = pd.read_parquet(score_creatives(ctr_model_dir, tiny_market_dir, tmp_path / "whole"))
    one_chunk = score_market_batch(ctr_model_dir, tiny_market_dir, tmp_path / "one", BatchConfig(batch_size=100))
    assert pd.read_parquet(one_chunk).equals(whole)
    # Smaller batches may round differently in the network's float32 kernels (about 1e-9 here): that is why
    # both backends cut the same chunks.
    chunks = pd.read_parquet(score_market_batch(ctr_model_dir, tiny_market_dir, tmp_path / "chunks",
                                                BatchConfig(batch_size=4)))
    assert chunks["creative_id"].tolist() == load_market(tiny_market_dir).creatives["creative_id"].tolist()
    np.testing.assert_allclose(chunks["predicted_ctr"], whole["predicted_ctr"], rtol=1e-6, atol=0)


def test_scoring_with_a_model_that_predicts_no_ctr_writes_nothing(tiny_market_dir, tmp_path):
    config = tmp_path / "u.yaml"
    config.write_text("target: logit_ctr\nattributes: [brightness]\nmin_rows: 5\n")
    train_reward_model("utility", tiny_market_dir, tmp_path / "utility", config)
    with pytest.raises(InputError, match="does not predict CTR"):
        score_market_batch(tmp_path / "utility", tiny_market_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rendered_pngs_are_the_renderers_pixels_in_item_order(tiny_market_dir, tmp_path):
    market = load_market(tiny_market_dir)
    index = pd.read_parquet(render_creatives(tiny_market_dir, tmp_path / "r", None, BatchConfig(batch_size=4)))
    assert index["creative_id"].tolist() == market.creatives["creative_id"].tolist()
    renderer = MarketRenderer(market)
    for row in index.itertuples():
        expected = renderer.render(row.product_id, list(row.elements))
        with Image.open(tmp_path / "r" / row.image) as image:
            assert np.array_equal(np.asarray(image), np.asarray(expected.image))
        assert list(row.product_bbox) == list(expected.product_bbox)


def test_a_creatives_table_with_placements_renders_each_row_placed_as_it_says(tiny_market_dir, tmp_path):
    market = load_market(tiny_market_dir)
    creatives = market.creatives.head(4).assign(product_scale=[1.0, 0.6, 0.8, 0.5], product_x=[0.5, 0.0, 1.0, 0.5],
                                                product_y=[0.5, 1.0, 0.0, 0.5])
    index = pd.read_parquet(render_creatives(tiny_market_dir, tmp_path / "r", creatives, BatchConfig(batch_size=3)))
    assert index["product_scale"].tolist() == [1.0, 0.6, 0.8, 0.5]
    renderer = MarketRenderer(market)
    for row, placement in zip(index.itertuples(), placements_of(creatives)):
        expected = renderer.render(row.product_id, list(row.elements), placement)
        with Image.open(tmp_path / "r" / row.image) as image:
            assert np.array_equal(np.asarray(image), np.asarray(expected.image))
        assert list(row.product_bbox) == list(expected.product_bbox)
    default = renderer.render(index["product_id"][3], list(index["elements"][3])).product_bbox
    assert index["product_bbox"][3][2] - index["product_bbox"][3][0] < default[2] - default[0]


def test_a_placement_out_of_range_is_refused_before_anything_is_written(tiny_market_dir, tmp_path):
    creatives = load_market(tiny_market_dir).creatives.head(2).assign(product_scale=[1.0, 3.0])
    with pytest.raises(InputError, match="placement"):
        render_creatives(tiny_market_dir, tmp_path / "r", creatives, BatchConfig(batch_size=2))
    assert list(tmp_path.iterdir()) == []


def test_rendering_a_bad_creative_leaves_no_output(tiny_market_dir, tmp_path):
    creatives = load_market(tiny_market_dir).creatives.copy()
    creatives.at[creatives.index[-1], "elements"] = ["no-such-element"] * len(creatives["elements"].iloc[0])
    with pytest.raises(InputError, match="unknown element 'no-such-element'"):
        render_creatives(tiny_market_dir, tmp_path / "r", creatives, BatchConfig(batch_size=2))
    assert list(tmp_path.iterdir()) == []


def test_rendering_refuses_to_replace_a_folder_it_did_not_write(tiny_market_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="choose a new --out"):
        render_creatives(tiny_market_dir, tmp_path, None, BatchConfig())
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_cli_features_render_and_score_on_the_local_backend(ctr_model_dir, tiny_market_dir, tmp_path):
    result = runner.invoke(app, ["features", "--market", str(tiny_market_dir), "--out", str(tmp_path / "f"),
                                 "--image-backbone", "tiny", "--text-backbone", "tiny", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(tmp_path / "f" / "text_features.parquet")) > 0
    proposals = load_market(tiny_market_dir).creatives[["product_id", "elements"]].head(2)
    proposals.to_parquet(tmp_path / "some.parquet")
    result = runner.invoke(app, ["render", "--market", str(tiny_market_dir), "--out", str(tmp_path / "r"),
                                 "--creatives", str(tmp_path / "some.parquet")])
    assert result.exit_code == 0, result.output
    index = pd.read_parquet(tmp_path / "r" / "rendered.parquet")
    assert index["creative_id"].tolist() == ["row-0", "row-1"]
    assert all(Image.open(io.BytesIO((tmp_path / "r" / p).read_bytes())).size == (512, 512) for p in index["image"])
    result = runner.invoke(app, ["score", "--model", str(ctr_model_dir), "--market", str(tiny_market_dir),
                                 "--out", str(tmp_path / "s"), "--batch-size", "5"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(tmp_path / "s" / "scores.parquet")) == 18


@pytest.mark.parametrize("args, message", [
    (["--product", "p", "--elements", "e", "--backend", "ray"], "leave out --product"),
    (["--product", "p"], "both --product and --elements"),
    (["--address", "auto"], "--backend ray"),
])
def test_cli_render_refuses_mixed_modes(tiny_market_dir, tmp_path, args, message):
    result = runner.invoke(app, ["render", "--market", str(tiny_market_dir), "--out", str(tmp_path / "x.png"),
                                 *args])
    assert result.exit_code == 2 and message in result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_render_of_an_unreadable_creatives_file_exits_2(tiny_market_dir, tmp_path):
    (tmp_path / "c.parquet").write_text("not parquet")
    result = runner.invoke(app, ["render", "--market", str(tiny_market_dir), "--out", str(tmp_path / "r"),
                                 "--creatives", str(tmp_path / "c.parquet")])
    assert result.exit_code == 2 and "cannot read" in result.output
    shutil.rmtree(tmp_path / "r", ignore_errors=True)
