"""Every kind of reward model, in one table: the only place a kind's name leads to its classes.

``KINDS`` maps a kind (the name ``adcraft train`` takes and an artifact's ``config.json`` records) to its
:class:`KindSpec`. The CLI, the reward-model jobs, batch scoring and the HTTP API all go through it: to list
the kinds, to load a saved model by the kind its header names (:func:`load`), and to refuse, with the kinds
that can, a model that lacks a capability a command needs (:func:`check`, :func:`require`). Adding a kind
means adding its row here; ``tests/rewards/test_registry.py`` then runs it through the shared contract.

A kind's module is imported on first use, so listing the kinds (``adcraft --help``) imports no network code.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

from adcraft.errors import InputError
from adcraft.rewards.judge import Capabilities, Capability, Judge, capability_does, declared_capabilities


@dataclass(frozen=True)
class KindSpec:
    """One kind of judge: its name, a line saying what it learns, and where its model class lives
    (``module:Class``); the config class and the capabilities are the model class's own declarations."""

    kind: str
    description: str
    model: str

    @property
    def model_class(self) -> type[Judge]:
        module, _, name = self.model.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def config_class(self) -> type:
        return self.model_class.config_class

    @property
    def capabilities(self) -> Capabilities:
        return self.model_class.capabilities


KINDS: dict[str, KindSpec] = {spec.kind: spec for spec in (
    KindSpec("ctr", "point-wise CTR of a creative in its context", "adcraft.rewards.ctr:PointwiseCTRModel"),
    KindSpec("pairwise", "which of two creatives is better, with a point CTR head (CAIG)",
             "adcraft.rewards.pairwise:PairwiseModel"),
    KindSpec("mil", "multi-instance CTR with per-element credit (GenCO)", "adcraft.rewards.mil:MILModel"),
    KindSpec("utility", "demand utility h(v) of an image's visual attributes (UA)",
             "adcraft.rewards.utility:DemandUtilityModel"),
    KindSpec("contrastive", "utility-aware image-text encoder (UA-InfoNCE)",
             "adcraft.rewards.contrastive:ContrastiveModel"),
)}


def spec(kind: str) -> KindSpec:
    """The spec of ``kind``; ``InputError`` naming the known kinds otherwise."""
    if kind not in KINDS:
        raise InputError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
    return KINDS[kind]


def kinds_with(capability: Capability) -> tuple[str, ...]:
    """The kinds that declare ``capability``, in registry order."""
    return tuple(kind for kind, entry in KINDS.items() if entry.capabilities.has(capability))


def refusal(subject: str, capability: Capability) -> InputError:
    """The error for a model (``subject``, such as "MODEL holds a 'utility' model, which") that lacks
    ``capability``: what it does not do and which kinds do."""
    return InputError(f"{subject} does not {capability_does(capability)}; "
                      f"use a {', '.join(kinds_with(capability))} model")


def check(folder: str | os.PathLike[str], *needs: Capability) -> KindSpec:
    """The spec of the saved model at ``folder``, read from its header (no tensors loaded); ``InputError`` when
    the folder holds no model, a kind this version does not know, or a kind without each of ``needs``."""
    from adcraft.learning.artifacts import read_artifact_header

    kind = read_artifact_header(folder)["kind"]
    if kind not in KINDS:
        raise InputError(f"{folder} holds a '{kind}' model, which is not a reward model "
                         f"(known kinds: {', '.join(KINDS)})")
    found = KINDS[kind]
    for capability in needs:
        if not found.capabilities.has(capability):
            raise refusal(f"{folder} holds a '{kind}' model, which", capability)
    return found


def load(folder: str | os.PathLike[str], *needs: Capability) -> Any:
    """The saved model at ``folder``, loaded by the class of the kind its header names, once :func:`check`
    has found that kind declares each of ``needs``."""
    return check(folder, *needs).model_class.load(folder)


def require(model: Any, needs: Capability, holder: str = "the model") -> Any:
    """``model`` itself when its class declares ``needs``; ``InputError`` naming the kinds that do otherwise
    (``holder`` says what the model is for, as "the model judging prompts")."""
    declared = declared_capabilities(model)
    if declared is None:
        raise InputError(f"{holder}, a {type(model).__name__}, is not a reward model that can "
                         f"{capability_does(needs)}; use a {', '.join(kinds_with(needs))} model")
    if not declared.has(needs):
        raise refusal(f"{holder}, a {type(model).__name__},", needs)
    return model
