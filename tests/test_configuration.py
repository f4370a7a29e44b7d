from dataclasses import dataclass, field

import pytest

from adcraft.configuration import from_mapping, load_config, to_mapping
from adcraft.errors import InputError


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
