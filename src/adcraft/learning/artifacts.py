"""How every trainable model is saved: a folder holding ``config.json`` and ``model.safetensors``.

``config.json`` is ``{"kind": ..., "adcraft_version": ..., "config": {...}, "extra": {...} | null}``:
``kind`` names the model class that wrote it ("utility", "pairwise", ...), ``config`` holds its
config dataclass's fields and ``extra`` anything else the model needs that is not a tensor (fit
statistics, vocabularies). Tensors go to ``model.safetensors``; nothing is ever pickled, so loading
an artifact cannot run code.

Writing is atomic: both files are written into a hidden folder beside the target, which is then
renamed into place; an existing artifact is moved aside first and removed only once the new one is
in place, so a failure at any point leaves the old artifact (or no folder) behind, never a mix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from safetensors import SafetensorError

import adcraft
from adcraft.atomic import staged_folder, write_bytes
from adcraft.errors import InputError

if TYPE_CHECKING:
    import torch

CONFIG_FILE = "config.json"
TENSORS_FILE = "model.safetensors"
LAYOUT = (f"a folder holding {CONFIG_FILE} (with 'kind', 'adcraft_version', 'config', 'extra') "
          f"and {TENSORS_FILE}, as written by save_artifact")

TensorFormat = Literal["torch", "numpy"]


@dataclass(frozen=True)
class Artifact:
    """A loaded artifact: ``tensors`` are torch tensors or NumPy arrays, as asked of
    :func:`load_artifact`."""

    kind: str
    config: dict[str, Any]
    extra: dict[str, Any] | None
    tensors: dict[str, Any]
    adcraft_version: str


def save_artifact(
    folder: str | os.PathLike[str],
    kind: str,
    config: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor | np.ndarray],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` to ``folder`` atomically; returns the folder.

    ``config`` and ``extra`` must be JSON-serialisable (no NaN or infinity: the file stays strict
    JSON). An existing ``folder`` is replaced only when it is empty or is itself an artifact, so a
    mistyped path never wipes an unrelated folder.
    """
    target = Path(folder).absolute()
    if not kind or not isinstance(kind, str):
        raise InputError(f"an artifact's kind must be a non-empty string, got {kind!r}")
    _check_replaceable(target)
    try:
        header = json.dumps(
            {"kind": kind, "adcraft_version": adcraft.__version__, "config": dict(config),
             "extra": None if extra is None else dict(extra)},
            indent=2, allow_nan=False,
        )
    except (TypeError, ValueError) as error:
        raise InputError(f"the config or extra of artifact '{kind}' is not plain JSON: {error}") from None
    with staged_folder(target) as staging:
        (staging / CONFIG_FILE).write_text(header + "\n", encoding="utf-8")
        _write_tensors(staging / TENSORS_FILE, tensors)
    return target


def read_artifact_header(folder: str | os.PathLike[str], expected_kind: str | None = None) -> dict:
    """The ``config.json`` header of an artifact (``kind``, ``config``, ``extra``, ...) without its tensors.

    Raises ``InputError`` naming the folder and the expected layout when it is missing or unreadable, and
    naming both kinds when ``expected_kind`` is given and differs.
    """
    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"no model artifact at {path}: expected {LAYOUT}")
    try:
        header = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read {path / CONFIG_FILE} ({error}): expected {LAYOUT}") from None
    if not (isinstance(header, dict) and isinstance(header.get("kind"), str)
            and isinstance(header.get("config"), dict)
            and isinstance(header.get("extra"), (dict, type(None)))):
        raise InputError(f"{path / CONFIG_FILE} is not an artifact header: expected {LAYOUT}")
    if expected_kind is not None and header["kind"] != expected_kind:
        raise InputError(f"{path} holds a '{header['kind']}' model, not the expected "
                         f"'{expected_kind}' model")
    return header


def load_artifact(
    folder: str | os.PathLike[str],
    expected_kind: str | None = None,
    tensor_format: TensorFormat = "torch",
) -> Artifact:
    """Read an artifact written by :func:`save_artifact` (header checked by :func:`read_artifact_header`)."""
    path = Path(folder)
    if tensor_format not in ("torch", "numpy"):
        raise InputError(f"tensor_format must be 'torch' or 'numpy', got {tensor_format!r}")
    header = read_artifact_header(path, expected_kind)
    try:
        if tensor_format == "torch":
            from safetensors.torch import load_file
        else:
            from safetensors.numpy import load_file
        tensors = load_file(path / TENSORS_FILE)
    except (OSError, SafetensorError, ValueError, TypeError) as error:
        raise InputError(f"cannot read {path / TENSORS_FILE} ({error}): expected {LAYOUT}") from None
    return Artifact(
        kind=header["kind"],
        config=header["config"],
        extra=header["extra"],
        tensors=dict(tensors),
        adcraft_version=str(header.get("adcraft_version", "unknown")),
    )


def _write_tensors(path: Path, tensors: Mapping[str, torch.Tensor | np.ndarray]) -> None:
    """One safetensors file; NumPy arrays go through safetensors' NumPy writer (so a NumPy-only
    model never imports torch), any torch tensor sends every entry through the torch writer. The bytes
    are written by ``atomic.write_bytes`` (safetensors' own file writer leaves the file private, 0600)."""
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise InputError(f"tensor names must be strings, got {name!r}")
        if isinstance(value, np.ndarray) and value.dtype.kind not in "biuf":
            raise InputError(f"tensor '{name}' has dtype {value.dtype}; only bool and numbers are stored")
    if all(isinstance(value, np.ndarray) for value in tensors.values()):
        from safetensors.numpy import save as save_numpy

        write_bytes(path, save_numpy({name: np.ascontiguousarray(value) for name, value in tensors.items()}))
        return
    import torch
    from safetensors.torch import save as save_torch

    converted = {}
    for name, value in tensors.items():
        if isinstance(value, np.ndarray):
            converted[name] = torch.from_numpy(np.array(value))  # a writable, contiguous copy
        elif isinstance(value, torch.Tensor):
            # A copy, so tensors that share storage (tied weights) are stored separately.
            converted[name] = value.detach().to("cpu").contiguous().clone()
        else:
            raise InputError(f"tensor '{name}' is a {type(value).__name__}, not a torch tensor "
                             "or NumPy array")
    write_bytes(path, save_torch(converted))


def is_artifact(folder: Path) -> bool:
    """True when ``folder`` holds a saved model (a readable artifact header), which a new one may replace."""
    try:
        read_artifact_header(folder)
    except InputError:
        return False
    return True


def _check_replaceable(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} exists and is not a folder; choose another artifact folder")
    if target.is_dir() and any(target.iterdir()) and not is_artifact(target):
        raise InputError(f"{target} is a non-empty folder that is not a model artifact; "
                         "choose an empty or new folder")
