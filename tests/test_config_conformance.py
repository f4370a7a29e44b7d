"""One conformance suite for every config dataclass of adcraft, found by walking the package.

A config is a dataclass named ``*Config`` or one nested in such a config's fields (``BackgroundStep``).
Each must check itself when it is built, in Python as from YAML: its default builds; a wrong-typed value
of any field is refused; a ``Literal`` field refuses a typo and names its choices; a field named in
``FIELD_LIMITS`` refuses a value outside its range; and any JSON-like mapping through ``from_mapping``
either builds it or is refused with ``InputError``, never another exception.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
import types
import typing
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adcraft
from adcraft.configuration import FIELD_LIMITS, from_mapping, to_mapping
from adcraft.errors import InputError

# Fields without a default, per config: what a test gives them.
REQUIRED: dict[str, dict[str, Any]] = {
    "ServeConfig": {"run_dir": Path("run"), "market_dir": Path("market")},
    "BundleConfig": {"run_dir": Path("run"), "out": Path("bundle")},
}
# MarketConfig is market.json's content, not a setting: a market in memory may hold a broken one, which
# market validation reports with the file, key and rule among the market's other problems.
NOT_SETTINGS = {"MarketConfig"}


def _members(kind: Any) -> tuple[Any, ...]:
    """The types a hint allows: the members of a union, else the hint itself."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return typing.get_args(kind)
    return (kind,)


def _discover() -> list[type]:
    found: set[type] = set()
    for info in pkgutil.walk_packages(adcraft.__path__, "adcraft."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__
                    and obj.__name__.endswith("Config") and obj.__name__ not in NOT_SETTINGS):
                found.add(obj)
    queue = list(found)
    while queue:  # a dataclass held by a config's field is a config too
        for kind in typing.get_type_hints(queue.pop()).values():
            for member in _members(kind):
                if isinstance(member, type) and dataclasses.is_dataclass(member) and member not in found:
                    found.add(member)
                    queue.append(member)
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


CONFIGS = _discover()
FIELDS = [(cls, f.name) for cls in CONFIGS for f in dataclasses.fields(cls) if f.init]


def _params(pairs: list[tuple[type, str]]) -> list[Any]:
    return [pytest.param(cls, name, id=f"{cls.__name__}.{name}") for cls, name in pairs]


def _build(cls: type, **changes: Any) -> Any:
    return cls(**{**REQUIRED.get(cls.__name__, {}), **changes})


def _accepts(kind: Any, value: Any) -> bool:
    """Whether ``value`` has a type a field of hint ``kind`` takes (this test's own reading of the hints)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(value is None if a is type(None) else _accepts(a, value) for a in args)
    if origin is Literal:
        return any(type(value) is type(choice) and value == choice for choice in args)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if kind is Path:
        return isinstance(value, (str, os.PathLike))
    if kind is tuple or origin is tuple:
        return isinstance(value, (list, tuple))
    if kind is dict or origin is dict or dataclasses.is_dataclass(kind):
        return isinstance(value, dict)
    raise AssertionError(f"the conformance test does not know the field type {kind!r}")


WRONG_VALUES = ("not a setting", 2.5, True, [1], {"unknown_setting": 1})


def _wrong_value(kind: Any) -> Any:
    return next(value for value in WRONG_VALUES if not _accepts(kind, value))


def _literal(kind: Any) -> tuple[Any, Any] | None:
    """The ``Literal`` a hint holds, directly, in a union or as a tuple's items, and how to wrap a value
    for the field (``(value,)`` for a tuple)."""
    for member in _members(kind):
        if typing.get_origin(member) is Literal:
            return member, lambda value: value
        if typing.get_origin(member) is tuple:
            item = typing.get_args(member)[0]
            if typing.get_origin(item) is Literal:
                return item, lambda value: (value,)
    return None


def _typo(choices: tuple[Any, ...]) -> str:
    """A near miss of the first choice that is none of the choices."""
    word = str(choices[0])
    for typo in (word[:-1], word + "x", word.upper(), "x" + word):
        if typo not in choices:
            return typo
    raise AssertionError(choices)


def test_every_config_of_the_package_is_found():
    names = {cls.__name__ for cls in CONFIGS}
    assert {"OptimizeConfig", "BackgroundStep", "MILConfig", "TrainConfig", "ContrastiveTrainConfig",
            "SimulatorConfig", "ServeConfig", "RenderConfig", "DiffusionConfig", "ComboConfig",
            "PromptModelConfig", "BatchConfig", "ABTestConfig", "DemoConfig", "FeaturesConfig"} <= names
    assert len(CONFIGS) >= 34


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda cls: cls.__name__)
def test_the_default_builds_and_round_trips(cls):
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING and f.name not in REQUIRED.get(cls.__name__, {})]
    assert not missing, f"give {cls.__name__}'s required fields {missing} a value in REQUIRED"
    config = _build(cls)
    assert from_mapping(cls, to_mapping(config)) == config


@pytest.mark.parametrize("cls, name", _params(FIELDS))
def test_a_wrong_typed_value_is_refused(cls, name):
    kind = typing.get_type_hints(cls)[name]
    wrong = _wrong_value(kind)
    with pytest.raises((InputError, ValueError), match=name):
        _build(cls, **{name: wrong})
    with pytest.raises(InputError, match=name):
        from_mapping(cls, {**REQUIRED.get(cls.__name__, {}), name: wrong})


LITERAL_FIELDS = [(cls, name) for cls, name in FIELDS if _literal(typing.get_type_hints(cls)[name])]


@pytest.mark.parametrize("cls, name", _params(LITERAL_FIELDS))
def test_a_choice_refuses_a_typo_and_lists_the_choices(cls, name):
    literal, wrap = _literal(typing.get_type_hints(cls)[name])
    choices = typing.get_args(literal)
    typo = wrap(_typo(choices))
    required = REQUIRED.get(cls.__name__, {})
    for build in (lambda: _build(cls, **{name: typo}), lambda: from_mapping(cls, {**required, name: typo})):
        with pytest.raises((InputError, ValueError), match=name) as refused:
            build()
        message = str(refused.value)
        assert all(repr(choice) in message for choice in choices), message
        assert "\n" not in message


def test_the_choices_include_the_option_fields_that_were_plain_text():
    literal_fields = {f"{cls.__name__}.{name}" for cls, name in LITERAL_FIELDS}
    assert {"OptimizeConfig.estimator", "OptimizeConfig.policy", "MILConfig.pooling", "PairwiseConfig.point_target",
            "PairConfig.min_impressions", "PreferenceConfig.method", "EncodingConfig.text_backbone",
            "EncodingConfig.image_backbone", "ImageEncoderConfig.backbone", "TextEncoderConfig.backbone",
            "RenderConfig.backend", "DiffusionConfig.dtype", "BatchConfig.backend",
            "ContrastiveConfig.utility", "UtilityConfig.controls"} <= literal_fields


LIMITED_FIELDS = [(cls, name) for cls, name in FIELDS if name in FIELD_LIMITS
                  and {int, float} & set(_members(typing.get_type_hints(cls)[name]))]


@pytest.mark.parametrize("cls, name", _params(LIMITED_FIELDS))
def test_a_limited_field_refuses_a_value_outside_its_range(cls, name):
    low, high = FIELD_LIMITS[name]
    for value in (high + 1, low - 1):
        with pytest.raises(InputError, match=rf"{cls.__name__}.{name}: .*outside the accepted range \[{low}, {high}\]"):
            _build(cls, **{name: value})
        with pytest.raises(InputError, match=rf"config: {name}: .*outside the accepted range \[{low}, {high}\]"):
            from_mapping(cls, {**REQUIRED.get(cls.__name__, {}), name: value})


def test_the_settings_that_once_passed_unchecked_are_refused():
    from adcraft.learning.training import TrainConfig
    from adcraft.rewards.encoding import EncodingConfig
    from adcraft.rewards.mil import MILConfig
    from adcraft.rewards.pairwise import PairConfig, PairwiseConfig
    from adcraft.simulator.config import SimulatorConfig

    with pytest.raises(InputError, match=r"EncodingConfig.embedding_dim: 1000000000 .*\[1, 4096\]"):
        MILConfig(encoding=EncodingConfig(text_backbone="tiny", embedding_dim=10**9))
    with pytest.raises(InputError, match=r"PairConfig.seed: .* is too large"):
        PairwiseConfig(pairs=PairConfig(seed=2**70))
    with pytest.raises(InputError, match=r"TrainConfig.epochs: -1 .*\[0, 100000\]"):
        TrainConfig(epochs=-1)
    with pytest.raises(InputError, match="SimulatorConfig.n_products: expected a whole number"):
        SimulatorConfig(n_products="20")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"SimulatorConfig.n_impressions: .*outside the accepted range"):
        SimulatorConfig(n_impressions=10**12)
    with pytest.raises(InputError, match="MILConfig.pooling: 'max' .*'sum', 'attention', 'noisy_or'"):
        MILConfig(pooling="max")  # type: ignore[arg-type]


def test_a_config_built_in_python_equals_the_same_settings_from_a_mapping():
    from adcraft.learning.training import TrainConfig
    from adcraft.rewards.utility import UtilityConfig

    built = TrainConfig(epochs=3.0, seed=np.int64(7), learning_rate=1)  # type: ignore[arg-type]
    assert built == from_mapping(TrainConfig, {"epochs": 3, "seed": 7, "learning_rate": 1.0})
    assert type(built.epochs) is int and type(built.seed) is int and type(built.learning_rate) is float
    utility = UtilityConfig(attributes=["brightness", "clutter"])  # type: ignore[arg-type]
    assert utility.attributes == ("brightness", "clutter") and hash(utility) == hash(UtilityConfig(
        attributes=("brightness", "clutter")))


# --- fuzzing: any JSON-like mapping builds a config or is refused with InputError ------------------------

CHOICES = ["dr", "drr", "top1", "tiny", "none", "minilm", "sum", "compositor", "diffusion", "pcpo", "logit",
           "auto", "torch", "onnx", "local", "ray", "fixed", "product", "title", "#FFFFFF", "{prompt}"]
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-3, max_value=300)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8) | st.sampled_from(CHOICES))
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=10)


def settings_of(cls: type, depth: int = 0) -> st.SearchStrategy[dict]:
    """Mappings with some of ``cls``'s own keys (so that nested fields are reached), junk or plausible values."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        nested = [m for m in _members(hints[f.name]) if dataclasses.is_dataclass(m)]
        values[f.name] = settings_of(nested[0], depth + 1) | junk if nested and depth < 4 else junk
    return st.fixed_dictionaries({}, optional=values) | st.dictionaries(st.text(max_size=6), junk, max_size=3)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda cls: cls.__name__)
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzzed_settings_build_or_are_refused_with_input_error(cls, data):
    mapping = data.draw(settings_of(cls))
    try:
        config = from_mapping(cls, mapping)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(config, cls)
