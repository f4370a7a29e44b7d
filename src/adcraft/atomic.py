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
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from adcraft.errors import InputError

_UMASK = os.umask(0)
os.umask(_UMASK)


OUTPUT_MARKER = ".adcraft-output"  # in every output folder adcraft writes: the command that wrote it


def mark_output(folder: Path, command: str) -> Path:
    """Write ``OUTPUT_MARKER`` into ``folder``: it is the output of ``command`` and may be replaced by its next run."""
    return write_text(Path(folder) / OUTPUT_MARKER, json.dumps({"command": command}) + "\n")


def written_by(folder: Path, command: str) -> bool:
    """True when ``folder`` holds the ``OUTPUT_MARKER`` of an output of ``command``."""
    try:
        return json.loads((Path(folder) / OUTPUT_MARKER).read_text(encoding="utf-8")).get("command") == command
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False


def check_output_folder(out: Path, command: str, *, inputs: Iterable[Path] = (), scratch: Iterable[Path] = (),
                        previous: Callable[[Path], bool] | None = None, replaces: bool = True) -> Path:
    """Refuse, before any work, an output folder whose writing would destroy what adcraft did not write.

    ``InputError`` when: ``out`` exists and is not a folder; ``out`` is or lies inside one of ``inputs``
    (writing into a market would add outputs to it), or contains one when the command ``replaces`` ``out``
    (replacing it would delete the market); one of ``scratch`` (folders beside ``out`` the command makes
    and removes, e.g. its staging folder) is or contains an input; and, when the command ``replaces`` the
    whole folder, ``out`` is a non-empty folder that is not an earlier output of ``command`` (its
    ``OUTPUT_MARKER``, or ``previous(out)`` for outputs recognised otherwise). Returns ``out``.
    """
    out = Path(out)
    where = out.resolve()
    for source in inputs:
        source_at = Path(source).resolve()
        if where == source_at or (replaces and where in source_at.parents):
            raise InputError(f"--out {out} is or contains the input folder {source}: writing there would "
                             "replace it; choose a new folder outside it")
        if source_at in where.parents:
            raise InputError(f"--out {out} lies inside the input folder {source}: outputs must not be written "
                             "into an input; choose a folder outside it")
        for folder in scratch:
            folder_at = Path(folder).resolve()
            if folder_at == source_at or folder_at in source_at.parents:
                raise InputError(f"the input folder {source} is or lies inside {folder}, which `adcraft {command}` "
                                 f"uses as a scratch folder for --out {out} and removes; choose another --out")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder; choose a new folder")
    if replaces and out.is_dir() and any(out.iterdir()) and not (
        written_by(out, command) or (previous is not None and previous(out))
    ):
        raise InputError(f"--out {out} is not empty and is not an earlier output of `adcraft {command}`; "
                         "it is left untouched: choose a new --out (or an empty folder)")
    return out


def check_scratch_folder(folder: Path, command: str, ours: Callable[[Path], bool]) -> Path:
    """Refuse a scratch folder (the staging folder ``.OUT.partial`` beside an output) that exists and holds
    what ``command`` did not write (``ours(folder)`` is False): the command reuses or removes it. Returns it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} exists and is not a folder; `adcraft {command}` needs that name for its "
                         "staging folder: move it or choose another --out")
    if folder.is_dir() and any(folder.iterdir()) and not ours(folder):
        raise InputError(f"{folder} holds files an interrupted `adcraft {command}` did not write; it is left "
                         "untouched: move it or choose another --out")
    return folder


def check_output_file(out: Path, *, inputs: Iterable[Path] = ()) -> Path:
    """Refuse an output file that is a folder or lies inside one of ``inputs`` (a market's own image, say:
    writing it would change the market). Returns ``out``."""
    out = Path(out)
    where = out.resolve()
    for source in inputs:
        if Path(source).resolve() in where.parents:
            raise InputError(f"--out {out} lies inside the input folder {source}: outputs must not be written "
                             "into an input; choose a file outside it")
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; name a file")
    return out


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


def write_parquet(path: Path, table) -> Path:
    """Write a ``pyarrow.Table`` to ``path`` as Parquet atomically (``write_bytes``: the file gets the
    umask's mode like any other output)."""
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return write_bytes(path, buffer.getvalue())


def write_png(path: Path, image) -> Path:
    """Save a PIL image as PNG at ``path`` atomically."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return write_bytes(path, buffer.getvalue())
