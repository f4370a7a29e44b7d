"""``--backend ray`` on a local two-worker Ray instance writes exactly what ``local`` writes.

One Ray instance (2 CPUs, 200 MiB object store) serves the whole module; every job starts two actors,
so each test costs a few seconds of actor start-up.
"""

from __future__ import annotations

import dataclasses
import filecmp

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from adcraft.batch import BatchConfig, extract_features, render_creatives, score_market_batch
from adcraft.cli import app
from adcraft.errors import InputError
from adcraft.features.image_encoder import ImageEncoderConfig
from adcraft.market import load_market

from .conftest import TINY_FEATURES

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow
runner = CliRunner()

LOCAL = BatchConfig(backend="local", batch_size=4)
RAY = BatchConfig(backend="ray", num_workers=2, batch_size=4)


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    yield
    ray.shutdown()


def test_features_on_ray_equal_local_with_the_pretrained_image_encoder(tiny_market_dir, tmp_path):
    # EfficientNet-Lite0 (the real image encoder) and the tiny text encoder; vectors may differ in the last
    # float32 bits because a Ray actor runs torch on one thread and this process on two (measured: 5e-6 on
    # features of size ~4); the tiny encoders agree bitwise.
    settings = dataclasses.replace(TINY_FEATURES, image=ImageEncoderConfig())
    local = extract_features(tiny_market_dir, tmp_path / "local", settings, LOCAL)
    remote = extract_features(tiny_market_dir, tmp_path / "ray", settings, RAY)
    for left, right, tolerance in zip(local, remote, (1e-5, 0.0)):
        left, right = pd.read_parquet(left), pd.read_parquet(right)
        assert left.drop(columns="vector").equals(right.drop(columns="vector"))
        assert len(left["vector"].iloc[0]) == (1280 if tolerance else TINY_FEATURES.text.tiny_dim)
        np.testing.assert_allclose(np.stack(left["vector"]), np.stack(right["vector"]), rtol=0, atol=tolerance)


def test_cli_score_on_ray_equals_local_bitwise(ctr_model_dir, tiny_market_dir, tmp_path):
    local = pd.read_parquet(score_market_batch(ctr_model_dir, tiny_market_dir, tmp_path / "local", LOCAL))
    result = runner.invoke(app, ["score", "--model", str(ctr_model_dir), "--market", str(tiny_market_dir),
                                 "--out", str(tmp_path / "ray"), "--backend", "ray", "--num-workers", "2",
                                 "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    remote = pd.read_parquet(tmp_path / "ray" / "scores.parquet")
    assert remote["creative_id"].tolist() == local["creative_id"].tolist()
    assert remote["predicted_ctr"].to_numpy().tobytes() == local["predicted_ctr"].to_numpy().tobytes()


def test_render_on_ray_writes_the_same_files(tiny_market_dir, tmp_path):
    local = render_creatives(tiny_market_dir, tmp_path / "local", None, LOCAL)
    remote = render_creatives(tiny_market_dir, tmp_path / "ray", None, RAY)
    index = pd.read_parquet(local)
    assert pd.read_parquet(remote).equals(index)
    assert len(index) == len(load_market(tiny_market_dir).creatives)
    for name in index["image"]:
        assert filecmp.cmp(tmp_path / "local" / name, tmp_path / "ray" / name, shallow=False)


def test_a_workers_input_error_reaches_the_caller_and_nothing_is_written(tiny_market_dir, tmp_path):
    creatives = load_market(tiny_market_dir).creatives.copy()
    creatives.at[creatives.index[0], "elements"] = ["no-such-element"] * len(creatives["elements"].iloc[0])
    with pytest.raises(InputError, match="unknown element 'no-such-element'"):
        render_creatives(tiny_market_dir, tmp_path / "r", creatives, BatchConfig(backend="ray", num_workers=1))
    assert list(tmp_path.iterdir()) == []
