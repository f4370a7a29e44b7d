"""Saving and loading model artifacts: round trip, atomic replacement, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from adcraft.errors import InputError
from adcraft.learning import artifacts
from adcraft.learning.artifacts import load_artifact, save_artifact


def test_round_trip_keeps_kind_config_extra_and_tensors(tmp_path: Path) -> None:
    weight = torch.randn(3, 4)
    shared = {"weight": weight, "tied": weight, "counts": np.arange(5, dtype=np.int64),
              "mask": torch.tensor([True, False])}
    folder = save_artifact(tmp_path / "model", "pairwise", {"hidden": 8, "names": ["a", "b"]},
                           shared, extra={"accuracy": 0.57})
    loaded = load_artifact(folder, expected_kind="pairwise")
    assert (loaded.kind, loaded.config, loaded.extra) == (
        "pairwise", {"hidden": 8, "names": ["a", "b"]}, {"accuracy": 0.57})
    assert torch.equal(loaded.tensors["weight"], weight) and torch.equal(loaded.tensors["tied"], weight)
    assert loaded.tensors["counts"].dtype == torch.int64
    assert loaded.tensors["mask"].tolist() == [True, False]
    header = json.loads((folder / "config.json").read_text())
    assert set(header) == {"kind", "adcraft_version", "config", "extra"}


def test_numpy_only_artifact_loads_as_numpy_with_dtype_kept(tmp_path: Path) -> None:
    coef = np.array([0.1, -2.5, 1e-12])
    save_artifact(tmp_path / "m", "utility", {}, {"coef": coef})
    loaded = load_artifact(tmp_path / "m", tensor_format="numpy")
    assert isinstance(loaded.tensors["coef"], np.ndarray) and loaded.extra is None
    np.testing.assert_array_equal(loaded.tensors["coef"], coef)


def test_failed_write_leaves_the_old_artifact_intact(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "model"
    save_artifact(folder, "ctr", {"version": 1}, {"w": np.ones(2)})

    def broken_writer(path, tensors):
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(artifacts, "_write_tensors", broken_writer)
    with pytest.raises(OSError, match="disk full"):
        save_artifact(folder, "ctr", {"version": 2}, {"w": np.zeros(2)})
    loaded = load_artifact(folder, "ctr", tensor_format="numpy")
    assert loaded.config == {"version": 1}
    np.testing.assert_array_equal(loaded.tensors["w"], np.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging folder left


def test_save_replaces_an_existing_artifact(tmp_path: Path) -> None:
    save_artifact(tmp_path / "m", "ctr", {"version": 1}, {"w": np.ones(2)})
    save_artifact(tmp_path / "m", "ctr", {"version": 2}, {"w": np.zeros(3)})
    loaded = load_artifact(tmp_path / "m", tensor_format="numpy")
    assert loaded.config == {"version": 2} and loaded.tensors["w"].shape == (3,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_save_refuses_to_replace_a_folder_that_is_not_an_artifact(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "keep.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match="not a model artifact"):
        save_artifact(tmp_path / "photos", "ctr", {}, {"w": np.ones(1)})
    assert (tmp_path / "photos" / "keep.jpg").read_bytes() == b"x"


def test_kind_mismatch_is_refused_naming_both_kinds(tmp_path: Path) -> None:
    save_artifact(tmp_path / "m", "utility", {}, {"w": np.ones(1)})
    with pytest.raises(InputError, match="'utility'.*'pairwise'"):
        load_artifact(tmp_path / "m", expected_kind="pairwise")


def test_corrupt_or_missing_files_are_refused_naming_the_layout(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no model artifact at .*config.json"):
        load_artifact(tmp_path / "absent")
    save_artifact(tmp_path / "m", "ctr", {}, {"w": np.ones(1)})
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(InputError, match=r"cannot read .*config.json.*model.safetensors"):
        load_artifact(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({"weights": 1}))
    with pytest.raises(InputError, match="not an artifact header"):
        load_artifact(tmp_path / "m")
    save_artifact(tmp_path / "n", "ctr", {}, {"w": np.ones(1)})
    (tmp_path / "n" / "model.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(InputError, match="cannot read .*model.safetensors"):
        load_artifact(tmp_path / "n")


def test_non_json_config_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not plain JSON"):
        save_artifact(tmp_path / "m", "ctr", {"lr": float("nan")}, {"w": np.ones(1)})
    assert not any(tmp_path.iterdir())
