"""Strict JSON outputs: ``atomic.write_json`` never writes NaN or Infinity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from adcraft.atomic import json_text, write_json


def strict(text: str):
    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_and_are_listed():
    data = {"lift": math.nan, "ci": [0.1, math.inf], "nested": {"x": np.float32("-inf"), "n": np.int64(3)},
            "array": np.array([1.0, np.nan])}
    with pytest.raises(ValueError):
        strict(json.dumps(data, default=lambda v: v.tolist()))  # what json.dumps writes by default
    parsed = strict(json_text(data))
    assert parsed["lift"] is None and parsed["ci"] == [0.1, None] and parsed["nested"] == {"x": None, "n": 3}
    assert parsed["array"] == [1.0, None]
    assert parsed["not_finite"] == {"lift": "NaN", "ci.1": "Infinity", "nested.x": "-Infinity", "array.1": "NaN"}


def test_finite_data_is_written_unchanged(tmp_path):
    data = {"a": 1.5, "b": [1, 2], "c": None, "d": "text"}
    path = write_json(tmp_path / "out" / "data.json", data)
    assert strict(path.read_text()) == data  # no not_finite field when nothing was replaced


def test_a_nan_from_default_is_an_error_not_invalid_json(tmp_path):
    class Odd:
        pass

    with pytest.raises(ValueError):
        write_json(tmp_path / "odd.json", {"odd": Odd()}, default=lambda value: math.nan)
    assert not (tmp_path / "odd.json").exists()
