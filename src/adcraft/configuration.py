"""Config dataclasses from YAML files and dicts: a file's keys are the dataclass's fields.

Nested dataclass fields take nested mappings (``train: {epochs: 10}``); tuples take lists; unknown keys
are refused with the list of valid ones, so a typo never passes silently. Every value is checked
against its field's type hint when the config is built (``check_value``): a bool is not an int, an int
field takes an integral number only, a float field a finite one, a ``Literal[...]`` field one of its
choices, a nested config a mapping. Fields named in ``FIELD_LIMITS`` are range-checked too, so a seed of
2**70 or a million threads is refused here, not as an overflow or a crash minutes later. Every config
dataclass runs the same checks on itself (``check_config``, first thing in its ``__post_init__``), so a
config built in Python is refused exactly as one read from a file (``tests/test_config_conformance.py``
holds every config of the package to this).

YAML files are read by ``load_config``: a regular UTF-8 file of at most ``MAX_CONFIG_BYTES``, without
anchors or aliases (``*name``: a few lines of them expand to gigabytes) and without duplicate keys
(where the last one would silently win).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import numbers
import os
import stat
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from adcraft.errors import InputError

T = TypeVar("T")

MAX_INT = 2**63 - 1  # no whole-number setting goes beyond 64 bits (most have a FIELD_LIMITS range)
MAX_CONFIG_BYTES = 1 << 20  # a config file is a few hundred bytes; anything near a megabyte is not a config

# The accepted range of every config field of these names, in whichever config it appears: generous for
# real use, small enough that no setting makes adcraft allocate terabytes, overflow or spawn a million threads.
FIELD_LIMITS: dict[str, tuple[int, int]] = {
    "seed": (0, 2**32 - 1),
    "top_k": (1, 100),
    "n_bootstrap": (2, 100_000),  # an interval needs two draws
    "threads": (1, 256),
    "num_threads": (1, 256),
    "embedding_dim": (1, 4096),
    "condition_dim": (1, 4096),
    "tiny_dim": (1, 4096),
    "hidden": (1, 4096),
    "interaction_rank": (1, 4096),
    "max_context_tokens": (0, 4096),
    "max_tokens": (1, 4096),
    "epochs": (0, 100_000),
    "steps": (0, 1_000_000),
    "rounds": (0, 10_000),  # an edit may run no round; preference rounds need one (their own check)
    "batch_size": (1, 1_000_000),
    "samples": (0, 100_000),  # proposals may come from the beam and neighbours alone
    "samples_per_product": (1, 100_000),
    "products_per_step": (1, 1_000_000),
    "beam_width": (1, 10_000),
    "per_product": (1, 10_000),
    "resample": (1, 10_000),
    "patience": (0, 100_000),
    "checkpoint_every": (1, 1_000_000),
    "image_size": (1, 4096),
    "resolution": (32, 4096),
    "prior_impressions": (0, 1_000_000_000),
    "neighbours_per_slot": (1, 100_000),
    "judged": (0, 10_000),
    "patch": (1, 4096),
    "mask_grow_px": (0, 4096),
    "min_font_px": (1, 4096),
    "max_title_px": (1, 4096),
    "max_badge_px": (1, 4096),
    "text_padding_px": (0, 4096),
    "num_workers": (1, 1024),
    "max_concurrent": (1, 1024),
    # the simulator's world: every one of these sizes arrays, images or rendering time
    "n_products": (2, 100_000),
    "n_impressions": (1, 20_000_000),
    "creatives_per_product": (2, 1_000),
    "titles_per_product": (1, 100),
    "days": (1, 36_500),
    "start_ts": (0, 4_102_444_800),  # up to 2100-01-01
    "photo_size": (32, 4096),
    "render_workers": (1, 256),
}


def from_mapping(cls: type[T], data: dict[str, Any] | None, where: str = "config", *, nested: bool = False) -> T:
    """Build the dataclass ``cls`` from ``data`` (missing keys keep their defaults); ``InputError`` naming the
    setting (``where: reward.train.seed``) for any value its field does not accept."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    strange = [key for key in data if not isinstance(key, str)]
    if strange:
        raise InputError(f"{where}: setting names must be text, got {strange[0]!r}; valid: {sorted(fields)}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown setting(s) {unknown}; valid: {sorted(fields)}")
    hints = _type_hints(cls)
    label = {name: f"{where}.{name}" if nested else f"{where}: {name}" for name in data}
    values = {name: check_value(hints[name], value, label[name]) for name, value in data.items()}
    for name, value in values.items():
        _check_limit(name, value, label[name])
    try:
        return cls(**values)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{where}: {exc}") from exc


def check_value(kind: Any, value: Any, where: str) -> Any:
    """``value`` as a value of the type hint ``kind`` (a list becomes a tuple, an integral float an int, a
    mapping a nested config), or ``InputError`` naming ``where``, what was given and what is accepted."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any or kind is object:
        return value
    if dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            return value
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping of settings, got {_shown(value)}")
        return from_mapping(kind, value, where, nested=True)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):  # a member, or its value as a file gives it
        for member in kind:
            if value is member or (type(value) is type(member.value) and value == member.value):
                return member
        raise InputError(f"{where}: {_shown(value)} is not one of {', '.join(repr(m.value) for m in kind)}")
    if origin is Literal:
        for choice in args:
            if type(value) is type(choice) and value == choice:
                return value
        raise InputError(f"{where}: {_shown(value)} is not one of {', '.join(repr(c) for c in args)}")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = []
        for member in (a for a in args if a is not type(None)):
            try:
                return check_value(member, value, where)
            except InputError as exc:
                problems.append(str(exc))
        raise InputError(problems[0] if len(problems) == 1 else
                         f"{where}: {_shown(value)} is none of {' | '.join(_name(a) for a in args)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {_shown(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(check_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise InputError(f"{where}: expected a list of {len(args)} values, got {len(value)}")
        return tuple(check_value(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value))) if args \
            else tuple(value)
    if kind is dict or origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping, got {_shown(value)}")
        return value  # free-form settings carried as given (a market's extra keys)
    if origin is not None:
        return value  # no config field uses other generic types today; their values pass as given
    if kind is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true or false, got {_shown(value)}")
        return value
    if kind is int:  # numpy's integers pass too (a config built in Python from an array's values)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise InputError(f"{where}: expected a whole number, got {_shown(value)}")
        value = int(value)
        if not -MAX_INT <= value <= MAX_INT:
            raise InputError(f"{where}: {_shown(value)} is too large (at most {MAX_INT})")
        return value
    if kind is float:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise InputError(f"{where}: expected a number, got {_shown(value)}")
        try:
            value = float(value)
        except OverflowError:
            raise InputError(f"{where}: {_shown(value)} is too large for a number") from None
        if not math.isfinite(value):
            raise InputError(f"{where}: expected a finite number, got {value}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise InputError(f"{where}: expected text, got {_shown(value)}")
        return value
    if kind is Path:
        if not isinstance(value, (str, os.PathLike)):
            raise InputError(f"{where}: expected a path, got {_shown(value)}")
        return Path(value)
    return value


def _check_limit(name: str, value: Any, where: str) -> None:
    """Refuse a number outside ``FIELD_LIMITS[name]`` (other fields and non-numbers pass)."""
    if name not in FIELD_LIMITS or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high = FIELD_LIMITS[name]
    if not low <= value <= high:
        raise InputError(f"{where}: {_shown(value)} is outside the accepted range [{low}, {high}]")


def check_config(config: Any) -> None:
    """The first step of every config's ``__post_init__``, so that a config built in Python is refused
    as one read from YAML is: each field's value against its type hint (``check_value``) and
    ``FIELD_LIMITS``, with ``InputError`` naming ``Class.field``. Values are stored as ``check_value``
    returns them (a list as a tuple, a mapping as the nested config, ``3.0`` for an int as ``3``), so
    the same settings make equal configs however they were given."""
    owner = type(config).__name__
    hints = _type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        where = f"{owner}.{field.name}"
        checked = check_value(hints[field.name], value, where)
        _check_limit(field.name, checked, where)
        if checked is not value:
            object.__setattr__(config, field.name, checked)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """A config class's evaluated field types (computed once per class: configs are built often)."""
    return typing.get_type_hints(cls)


def _shown(value: Any) -> str:
    """A value as a message shows it: its repr cut short, with its YAML-ish type."""
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({_name(type(value))})"


def _name(kind: Any) -> str:
    if typing.get_origin(kind) is Literal:
        return " | ".join(repr(choice) for choice in typing.get_args(kind))
    names = {bool: "true/false", int: "whole number", float: "number", str: "text", type(None): "null",
             list: "list", dict: "mapping", tuple: "list"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


class _ConfigLoader(yaml.SafeLoader):
    """The safe YAML loader without anchors and aliases, and refusing a key given twice in one mapping."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, f"anchors and aliases (&{event.anchor}, *{event.anchor}) are not allowed in a config; "
                "write the values out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is given twice (the first one would be ignored)",
                        key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> Any:
    """The data of a YAML config file; ``InputError`` for a file that is not a regular UTF-8 file of at most
    ``MAX_CONFIG_BYTES``, not valid YAML, or uses anchors, aliases or a key twice. A FIFO or a device is
    refused from its metadata, never opened."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"config {path} is not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise InputError(f"config {path} has {info.st_size} bytes; a config has at most {MAX_CONFIG_BYTES}")
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # never blocks, even if swapped
        with os.fdopen(descriptor, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise InputError(f"config {path} is not a regular file")
            raw = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise InputError(f"config {path} has more than {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"config {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InputError(f"config {path}{at} is not valid YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"config {path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    except RecursionError as exc:
        raise InputError(f"config {path} nests too deeply") from exc


def load_config(cls: type[T], path: Path | None) -> T:
    """The dataclass ``cls`` from a YAML file (``None``: all defaults); see ``read_yaml``."""
    if path is None:
        return cls()
    return from_mapping(cls, read_yaml(Path(path)), where=str(path))


def to_mapping(config: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON/YAML-ready data (tuples become lists)."""
    return dataclasses.asdict(config)
