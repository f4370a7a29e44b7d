"""Checkpoints of a training run, so that a killed run continues exactly where it stopped.

A checkpoint is one safetensors file: its tensors are the model's state, the optimiser's moments, the
best weights so far and the random generators' states (as uint8 tensors); its header's metadata holds
the JSON rest (epoch or step counters, early-stopping counters, the loss history) under
``"adcraft_checkpoint"``. Nothing is pickled, and the file is written through a temporary file renamed
into place, so a run killed while writing leaves the previous checkpoint whole.

Every checkpoint records the fingerprint of its run: a digest of the settings, the data's sizes and
content and the freshly initialised weights. A checkpoint whose fingerprint differs from the current
run's belongs to another run (other settings or data): it is ignored, with a warning, and training
starts afresh, so a stale checkpoint can never leak into a result.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from adcraft.atomic import write_bytes

logger = logging.getLogger(__name__)

METADATA_KEY = "adcraft_checkpoint"
FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the JSON ``state`` and the named ``tensors``."""

    state: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    def module_state(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors saved under ``prefix`` (a module's ``state_dict``), with the prefix removed."""
        return {k.removeprefix(prefix): v for k, v in self.tensors.items() if k.startswith(prefix)}


def fingerprint(*parts: Any) -> str:
    """sha256 of ``parts`` as canonical JSON (settings, sizes, digests): the identity of a run."""
    text = json.dumps(parts, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tensor_digest(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 of named tensors' names, dtypes, shapes and bytes (e.g. a model's initial weights)."""
    digest = hashlib.sha256()
    for name, tensor in tensors:
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def array_digest(*arrays: np.ndarray | torch.Tensor) -> str:
    """sha256 of arrays' dtypes, shapes and bytes (training data that a fingerprint must cover)."""
    return tensor_digest((str(i), torch.as_tensor(np.asarray(a))) for i, a in enumerate(arrays))


def save_checkpoint(path: Path, run: str, state: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
    """Write a checkpoint of the run with fingerprint ``run`` to ``path`` atomically."""
    header = json.dumps({"format": FORMAT, "fingerprint": run, "state": dict(state)}, allow_nan=True)
    copies = {name: value.detach().cpu().contiguous().clone() for name, value in tensors.items()}
    write_bytes(Path(path), safetensors_bytes(copies, metadata={METADATA_KEY: header}))


def read_state(path: Path) -> tuple[str, dict[str, Any]] | None:
    """(fingerprint, JSON state) of the checkpoint at ``path``; None when there is none or it is unreadable."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = json.loads((handle.metadata() or {})[METADATA_KEY])
        return str(header["fingerprint"]), dict(header["state"])
    except (OSError, SafetensorError, KeyError, TypeError, ValueError):
        return None


def load_checkpoint(path: Path, run: str, what: str) -> Checkpoint | None:
    """The checkpoint at ``path`` if it belongs to the run with fingerprint ``run``, else None.

    An unreadable checkpoint, or one of another run, is reported with a warning and ignored.
    """
    path = Path(path)
    if not path.is_file():
        return None
    header = read_state(path)
    if header is None:
        logger.warning("%s: unreadable checkpoint, ignored; %s starts afresh", path, what)
        return None
    if header[0] != run:
        logger.warning("%s: checkpoint of another %s run (other settings or data), ignored; training starts afresh",
                       path, what)
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (OSError, SafetensorError) as error:
        logger.warning("%s: unreadable checkpoint (%s), ignored; %s starts afresh", path, error, what)
        return None
    return Checkpoint(header[1], tensors)


def position(path: Path) -> str | None:
    """Where the checkpoint at ``path`` stands (its state's ``position``, e.g. "epoch 3 of 40"), or None."""
    header = read_state(path) if Path(path).is_file() else None
    return None if header is None else str(header[1].get("position", "unknown position"))


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's ``state_dict`` under ``prefix``."""
    return {f"{prefix}{k}": v for k, v in module.state_dict().items()}


def optimiser_tensors(prefix: str, optimiser: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimiser's per-parameter state (Adam's step, exp_avg, exp_avg_sq) as ``prefix{param}.{key}``.

    The parameter groups (learning rate, betas) come from the config, which the fingerprint pins.
    """
    out = {}
    for index, values in optimiser.state_dict()["state"].items():
        for key, value in values.items():
            out[f"{prefix}{index}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return out


def restore_optimiser(optimiser: torch.optim.Optimizer, checkpoint: Checkpoint, prefix: str) -> None:
    """Load the state written by :func:`optimiser_tensors` into ``optimiser`` (same parameters)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in checkpoint.module_state(prefix).items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimiser.load_state_dict({"state": state, "param_groups": optimiser.state_dict()["param_groups"]})
