"""Config dataclasses from YAML files and dicts: a file's keys are the dataclass's fields.

Nested dataclass fields take nested mappings (``train: {epochs: 10}``); tuples take lists; unknown keys
are refused with the list of valid ones, so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from adcraft.errors import InputError

T = TypeVar("T")


def from_mapping(cls: type[T], data: dict[str, Any] | None, where: str = "config") -> T:
    """Build the dataclass ``cls`` from ``data`` (missing keys keep their defaults)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown setting(s) {unknown}; valid: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        kind = hints.get(name)
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = from_mapping(kind, value, f"{where}.{name}")
        elif typing.get_origin(kind) is tuple and isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        values[name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from exc


def load_config(cls: type[T], path: Path | None) -> T:
    """The dataclass ``cls`` from a YAML file (``None``: all defaults)."""
    if path is None:
        return cls()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"config {path} is not valid YAML: {exc}") from exc
    return from_mapping(cls, data, where=str(path))


def to_mapping(config: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON/YAML-ready data (tuples become lists)."""
    return dataclasses.asdict(config)
