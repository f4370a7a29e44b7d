"""Atomic replacement of output folders and files: a reader sees the old version or the new one, never half.

JSON outputs go through ``write_json``, which writes strict JSON (no ``NaN`` or ``Infinity`` tokens).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


def move_into_place(staging: Path, out: Path) -> None:
    """Rename the finished folder ``staging`` to ``out``; an old ``out`` is moved aside first, then removed."""
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old)
        try:
            os.replace(staging, out)
        except OSError:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A new folder beside ``out`` for the block to fill; moved into place as ``out`` (``move_into_place``)
    when the block ends, removed when it raises."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        staging.chmod(0o777 & ~_UMASK)  # mkdtemp makes it private; an output is an ordinary folder
        yield staging
        move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp's file is private; an output is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    """``write_bytes`` of UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"))


NOT_FINITE_FIELD = "not_finite"
"""Key under which ``write_json`` lists the numbers it wrote as null, each with what it was (``NaN``, ...)."""


def finite_json(data: Any) -> tuple[Any, dict[str, str]]:
    """``data`` with every non-finite float (NaN, +-inf, NumPy's too) replaced by ``None``, and where.

    Returns the cleaned copy and ``{path: what}``, e.g. ``{"ope.lift": "NaN"}`` (paths join keys and
    list positions with dots). NumPy scalars and arrays become Python numbers and lists; other objects
    are left for ``json.dumps``' ``default``.
    """
    replaced: dict[str, str] = {}

    def clean(value: Any, path: str) -> Any:
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            replaced[path or "."] = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            return None
        if isinstance(value, Mapping):
            return {key: clean(item, f"{path}.{key}" if path else str(key)) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(item, f"{path}.{k}" if path else str(k)) for k, item in enumerate(value)]
        return value

    return clean(data, ""), replaced


def json_text(data: Any, *, indent: int | None = 1, sort_keys: bool = False,
              default: Callable[[Any], Any] | None = None) -> str:
    """Strict JSON (RFC 8259) for ``data``: non-finite numbers are written as ``null``, and when ``data`` is
    a mapping its ``not_finite`` field says which ones and what they were. ``allow_nan=False`` then makes
    any NaN that still slipped through (say, from ``default``) an error instead of invalid JSON."""
    cleaned, replaced = finite_json(data)
    if replaced and isinstance(cleaned, dict):
        cleaned[NOT_FINITE_FIELD] = {**cleaned.get(NOT_FINITE_FIELD, {}), **replaced}
    return json.dumps(cleaned, indent=indent, sort_keys=sort_keys, default=default, allow_nan=False)


def write_json(path: Path, data: Any, *, indent: int | None = 1, sort_keys: bool = False,
               default: Callable[[Any], Any] | None = None) -> Path:
    """``write_text`` of ``json_text(data)``: every JSON output adcraft writes parses with a strict parser."""
    return write_text(path, json_text(data, indent=indent, sort_keys=sort_keys, default=default))


def write_png(path: Path, image) -> Path:
    """Save a PIL image as PNG at ``path`` atomically."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return write_bytes(path, buffer.getvalue())
