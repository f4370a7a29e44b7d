import dataclasses
import enum
import os
import tempfile
import typing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adcraft.configuration import (
    FIELD_LIMITS,
    MAX_CONFIG_BYTES,
    check_config,
    check_value,
    from_mapping,
    load_config,
    to_mapping,
)
from adcraft.errors import InputError
from adcraft.pipeline.optimize import OptimizeConfig


@dataclass(frozen=True)
class Inner:
    epochs: int = 3
    sizes: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)


def test_nested_yaml_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: y\ninner:\n  epochs: 7\n  sizes: [4, 5]\n")
    config = load_config(Outer, path)
    assert config == Outer(name="y", inner=Inner(epochs=7, sizes=(4, 5)))
    assert from_mapping(Outer, to_mapping(config)) == config


def test_unknown_keys_and_bad_files_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"unknown setting\(s\) \['epoch'\]"):
        from_mapping(Outer, {"inner": {"epoch": 3}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(Outer, bad)
    with pytest.raises(InputError, match="cannot read"):
        load_config(Outer, tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="expected a mapping"):
        from_mapping(Outer, [1, 2])  # type: ignore[arg-type]
    assert load_config(Outer, None) == Outer()


# --- every value is checked against its field's type hint ------------------------------------------------


@dataclass(frozen=True)
class Typed:
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    cap: int | None = None
    sizes: tuple[int, ...] = (1,)
    pair: tuple[float, str] = (1.0, "x")
    inner: Inner = field(default_factory=Inner)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"count": True}, "count: expected a whole number, got True"),
        ({"count": 2.5}, "count: expected a whole number"),
        ({"count": "3"}, "count: expected a whole number"),
        ({"count": 2**70}, "count: .* is too large"),
        ({"rate": float("nan")}, "rate: expected a finite number"),
        ({"rate": float("inf")}, "rate: expected a finite number"),
        ({"rate": "0.1"}, "rate: expected a number"),
        ({"flag": 1}, "flag: expected true or false"),
        ({"mode": "c"}, "mode: 'c' .* is not one of 'a', 'b'"),
        ({"mode": None}, "mode: None .* is not one of"),
        ({"cap": 1.5}, "cap: expected a whole number"),
        ({"sizes": 3}, "sizes: expected a list"),
        ({"sizes": [1, "x"]}, r"sizes\[1\]: expected a whole number"),
        ({"pair": [1.0]}, "pair: expected a list of 2 values"),
        ({"inner": None}, "inner: expected a mapping of settings, got None"),
        ({"inner": [1]}, "inner: expected a mapping of settings"),
        ({"inner": {"epochs": False}}, r"inner\.epochs: expected a whole number"),
        ({1: 2}, "setting names must be text"),
    ],
)
def test_values_that_do_not_fit_the_type_hint_are_refused(data, message):
    with pytest.raises(InputError, match=message):
        from_mapping(Typed, data, where="t.yaml")


def test_values_that_fit_are_converted_to_the_field_type():
    config = from_mapping(Typed, {"count": 4.0, "rate": 2, "cap": None, "sizes": [3, 4], "pair": [2, "y"],
                                  "mode": "b", "inner": {"sizes": [7]}})
    assert config == Typed(count=4, rate=2.0, cap=None, sizes=(3, 4), pair=(2.0, "y"), mode="b",
                           inner=Inner(sizes=(7,)))
    assert type(config.count) is int and type(config.rate) is float
    assert check_value(int | None, 3, "x") == 3


class Colour(enum.StrEnum):
    red = "red"
    blue = "blue"


def test_enums_mappings_and_choices_in_unions_are_checked_too():
    assert check_value(Colour, "blue", "c") is Colour.blue and check_value(Colour, Colour.red, "c") is Colour.red
    with pytest.raises(InputError, match="c: 'bleu' .* is not one of 'red', 'blue'"):
        check_value(Colour, "bleu", "c")
    assert check_value(dict, {"a": 1}, "extra") == {"a": 1}
    with pytest.raises(InputError, match="extra: expected a mapping, got 'a' "):
        check_value(dict[str, int], "a", "extra")
    with pytest.raises(InputError, match=r"n: 'autox' .* is none of whole number \| 'auto'$"):
        check_value(int | Literal["auto"], "autox", "n")
    assert check_value(int | Literal["auto"], "auto", "n") == "auto"


def test_numpy_numbers_become_python_numbers_and_huge_ones_are_refused():
    value = check_value(int, np.int64(5), "n")
    assert value == 5 and type(value) is int
    value = check_value(float, np.float32(0.5), "x")
    assert value == 0.5 and type(value) is float
    with pytest.raises(InputError, match="x: .* is too large for a number"):
        check_value(float, 10**400, "x")
    with pytest.raises(InputError, match="flag: expected true or false"):
        check_value(bool, np.bool_(True), "flag")


@pytest.mark.parametrize(
    "text, message",
    [
        ("combo: null\n", "combo: expected a mapping"),
        ("reward: 3\n", "reward: expected a mapping"),
        ("render: []\n", "render: expected a mapping"),
        ("combo: {seed: 1180591620717411303424}\n", "combo.seed"),
        ("reward: {train: {seed: -1}}\n", r"reward\.train\.seed: -1 .* outside the accepted range \[0, 4294967295\]"),
        ("n_bootstrap: 1e12\n", "n_bootstrap: expected a whole number"),
        ("n_bootstrap: 1000000000000\n", r"n_bootstrap: .* outside the accepted range \[2, 100000\]"),
        ("n_bootstrap: 2.5\n", "n_bootstrap: expected a whole number"),
        ("reward: {encoding: {embedding_dim: 100000000}}\n", "embedding_dim: .* outside the accepted range"),
        ("combo: {policy: {hidden: 100000000}}\n", r"combo\.policy\.hidden"),
        ("combo: {threads: 1000000}\n", r"combo\.threads: .* outside the accepted range \[1, 256\]"),
        ("backgrounds: {generator: {prompt: {num_threads: 0}}}\n", "num_threads"),
        ("estimator: drr\n", "estimator: 'drr' .* is not one of 'ips', 'snips', 'dr', 'switch-dr', 'dm'"),
        ("policy: best\n", "policy: 'best'"),
        ("reward: {pooling: max}\n", r"reward\.pooling: 'max'"),
        ("render: {backend: gan}\n", r"render\.backend: 'gan'"),
        ("prior_impressions: .nan\n", "prior_impressions: expected a finite number"),
        ("prior_impressions: -5\n", "prior_impressions: .* outside the accepted range"),
        ("top_k: 1e9\n", "top_k: expected a whole number"),
        ("top_k: 1000000000\n", r"top_k: .* outside the accepted range \[1, 100\]"),
        ("top_k: true\n", "top_k: expected a whole number, got True"),
        ("top_k: 2\ntop_k: 3\n", "line 2, column 1 .* 'top_k' is given twice"),
        ("big: &big [1, 2]\nestimator: *big\n", "anchors and aliases"),
        ("combo: {seed: *big}\n", "not valid YAML"),
    ],
)
def test_bad_optimize_configs_are_refused_with_one_line(tmp_path, text, message):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as refused:
        load_config(OptimizeConfig, path)
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nestimator: *a29\n")  # 10 * 5**29 strings if expanded
    with pytest.raises(InputError, match="anchors and aliases"):
        load_config(OptimizeConfig, path)


def test_config_files_must_be_small_regular_utf8_files(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("estimator: 'd\u00e9'\n".encode("latin-1"))
    with pytest.raises(InputError, match="is not UTF-8 text"):
        load_config(OptimizeConfig, latin)
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(InputError, match=f"at most {MAX_CONFIG_BYTES}"):
        load_config(OptimizeConfig, big)
    with pytest.raises(InputError, match="not a regular file"):
        load_config(OptimizeConfig, tmp_path)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.yaml"
        os.mkfifo(fifo)  # opening it for reading would block forever: it must never be opened
        with pytest.raises(InputError, match="not a regular file"):
            load_config(OptimizeConfig, fifo)


def test_a_config_built_directly_is_checked_too():
    with pytest.raises(InputError, match="top_k"):
        OptimizeConfig(top_k=True)
    with pytest.raises(InputError, match="n_bootstrap"):
        OptimizeConfig(n_bootstrap=10**12)
    with pytest.raises(InputError, match="combo: expected a mapping"):
        OptimizeConfig(combo=None)  # type: ignore[arg-type]


def test_the_defaults_and_the_smoke_settings_fit_their_limits():
    def walk(config):
        check_config(config)
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            if dataclasses.is_dataclass(value):
                walk(value)

    for config in (OptimizeConfig(), OptimizeConfig.smoke()):
        walk(config)
        assert from_mapping(OptimizeConfig, to_mapping(config)) == config
    assert FIELD_LIMITS["seed"] == (0, 2**32 - 1)


# --- fuzzing: any data either builds a config or is refused with InputError ----------------------------

CHOICES = ["dr", "snips", "ips", "dm", "switch-dr", "top1", "softmax", "tiny", "none", "minilm", "sum",
           "attention", "compositor", "diffusion", "pcpo", "dpo", "logit", "ctr", "auto", "torch", "onnx"]
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-3, max_value=300)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8) | st.sampled_from(CHOICES))
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6) | st.integers(), inner, max_size=4), max_leaves=10)


def settings_of(cls: type, depth: int = 0) -> st.SearchStrategy[dict]:
    """Mappings with some of ``cls``'s own keys (so deep fields are reached), junk or plausible values."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind) and depth < 4:
            values[f.name] = settings_of(kind, depth + 1) | junk
        else:
            values[f.name] = junk
    return st.fixed_dictionaries({}, optional=values) | st.dictionaries(st.text(max_size=6), junk, max_size=3)


@settings(max_examples=100, deadline=timedelta(seconds=2), derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(settings_of(OptimizeConfig))
def test_fuzzed_optimize_configs_build_or_are_refused_with_input_error(data):
    try:
        config = from_mapping(OptimizeConfig, data)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(config, OptimizeConfig)


YAML_PIECES = ["top_k: ", "estimator: ", "combo:\n  seed: ", "reward: {train: {epochs: ", "&a ", "*a", "[", "]", "{",
               "}", "- ", "\n", "  ", ": ", "null", "1e9", ".nan", "2.5", "true", "'x'", "drr", "!!python/none",
               "\xff", "#", ",", "<<: *a"]


@settings(max_examples=100, deadline=timedelta(seconds=2), derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(YAML_PIECES) | st.text(max_size=4), max_size=30).map("".join))
def test_fuzzed_config_files_build_or_are_refused_with_input_error(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cfg.yaml"
        path.write_bytes(text.encode("utf-8", "surrogateescape") if "\xff" not in text else
                         text.replace("\xff", "").encode("utf-8") + b"\xff")
        try:
            config = load_config(OptimizeConfig, path)
        except InputError as exc:
            assert "\n" not in str(exc)
            return
    assert isinstance(config, OptimizeConfig)
