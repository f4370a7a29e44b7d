"""The one contract every reward model (judge) keeps, and the capabilities each kind declares.

Every kind (``ctr``, ``pairwise``, ``mil``, ``utility``, ``contrastive``; listed in
:mod:`adcraft.rewards.registry`) offers the same surface, as scikit-learn's estimators share
``fit``/``predict``:

- ``kind``, ``config_class`` and ``capabilities``: class attributes naming the kind, its config
  dataclass and what it can do;
- ``Model.train(market, config, progress=..., checkpoint=..., world=...)``: fit a model on a market;
- ``model.metrics(market)``: what ``metrics.json`` records about a fitted model (validation, history);
- ``model.save(folder)`` / ``Model.load(folder)``: the artifact folder of :mod:`adcraft.learning.artifacts`.

What a kind can do beyond that is declared, never probed: callers read ``capabilities`` (through the
registry, which names the kinds that can when one cannot). The methods behind each capability are listed
in :class:`Capabilities`; ``predict_ctr`` means the same for every kind that scores combinations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from adcraft.errors import InputError

if TYPE_CHECKING:
    from typing import Self

    import numpy as np
    import pandas as pd

    from adcraft.learning.distributed import DataParallel
    from adcraft.market import Market
    from adcraft.market.click_log import SplitConfig

Capability = Literal[
    "scores_combinations", "reads_image_features", "adds_elements", "compares_pairs", "scores_images", "resumable"
]


def _flag(does: str) -> Any:
    """A capability flag (False unless declared); ``does`` completes "the model does not ..." in refusals."""
    return field(default=False, metadata={"does": does})


@dataclass(frozen=True)
class Capabilities:
    """What a kind of judge can do beyond the shared contract; each flag names the methods it promises.

    - ``scores_combinations``: ``predict_ctr(product_ids, combos, contexts=None, images=None)`` gives the
      click probability (in [0, 1]) of each (product, combination[, context]), averaged over the traffic's
      contexts without ``contexts``; ``score_market(market)`` gives every past creative's
      (``creative_id``, ``predicted_ctr``).
    - ``reads_image_features``: ``predict_ctr``'s ``images`` (the rendered creatives' image features) count
      when the model was trained with images (``mean_image`` is then set; rows without one get it).
    - ``adds_elements``: ``with_elements(elements)`` is a copy that also scores elements it never saw, by
      their words.
    - ``compares_pairs``: ``prob_first_better(product_ids, combos_a, combos_b, images_a, images_b)``.
    - ``scores_images``: ``score(images, text)``, ``score_parts`` and ``utility`` score pictures against a
      text (best-of-N ranking and editing).
    - ``resumable``: ``train`` takes a ``checkpoint`` folder to resume a killed run from and a ``world``
      to train data-parallel.
    """

    scores_combinations: bool = _flag("predict CTR (predict_ctr, score_market)")
    reads_image_features: bool = _flag("read a creative's image features (predict_ctr's images)")
    adds_elements: bool = _flag("learn new elements by their words (with_elements)")
    compares_pairs: bool = _flag("compare two combinations (prob_first_better)")
    scores_images: bool = _flag("score images against a text (score, utility)")
    resumable: bool = _flag("resume training from a checkpoint or train data-parallel")

    def has(self, capability: Capability) -> bool:
        """Whether the flag named ``capability`` is declared true."""
        return bool(getattr(self, _check_capability(capability)))


def capability_does(capability: Capability) -> str:
    """What a model with ``capability`` does, as a phrase after "does not" (for messages)."""
    name = _check_capability(capability)
    return next(f.metadata["does"] for f in fields(Capabilities) if f.name == name)


def _check_capability(capability: str) -> str:
    names = [f.name for f in fields(Capabilities)]
    if capability not in names:
        raise InputError(f"unknown capability {capability!r}; known: {', '.join(names)}")
    return capability


def declared_capabilities(model: object) -> Capabilities | None:
    """The capabilities ``model``'s class declares (the contract's ``capabilities``); None for an object that
    declares none, such as a plain function."""
    declared = getattr(type(model), "capabilities", None)
    return declared if isinstance(declared, Capabilities) else None


class Judge(Protocol):
    """The surface every reward-model kind offers (module docstring); see :class:`Capabilities` for the rest."""

    kind: ClassVar[str]
    config_class: ClassVar[type]
    capabilities: ClassVar[Capabilities]
    config: Any

    @classmethod
    def train(
        cls, market: Market, config: Any, *, progress: bool = False, checkpoint: Path | None = None,
        world: DataParallel | None = None,
    ) -> Self:
        """A model fitted on ``market``; ``checkpoint`` and ``world`` only for ``resumable`` kinds."""
        ...

    def metrics(self, market: Market) -> dict[str, Any]:
        """What ``metrics.json`` records about the fitted model (JSON-ready), ``market`` being the one it
        was trained on (click models validate on its latest logs)."""
        ...

    def save(self, folder: Path) -> Any:
        """Write the model's artifact folder (``config.json`` + ``model.safetensors``)."""
        ...

    @classmethod
    def load(cls, folder: Path) -> Self:
        """Read an artifact folder written by ``save``; ``InputError`` if it holds another kind."""
        ...


class CombinationScorer(Judge, Protocol):
    """A judge with ``scores_combinations``: the same ``predict_ctr`` for every such kind."""

    def predict_ctr(
        self, product_ids: Sequence[str], combos: Sequence[Sequence[str]], contexts: Sequence[str] | None = None,
        images: np.ndarray | None = None,
    ) -> np.ndarray:
        """Click probability in [0, 1] of each (product, combination[, context])."""
        ...

    def score_market(self, market: Market) -> pd.DataFrame:
        """``creative_id``, ``predicted_ctr`` of every past creative of ``market``."""
        ...


def refuse_resuming(kind: str, checkpoint: Path | None, world: DataParallel | None) -> None:
    """``InputError`` when a kind that trains in one go is given a checkpoint folder or a data-parallel world."""
    if checkpoint is not None or world is not None:
        raise InputError(f"a {kind} model trains in one go: it takes no checkpoint and no data-parallel world")


def click_validation(model: CombinationScorer, market: Market, split: SplitConfig) -> dict[str, float]:
    """Click metrics (``learning.metrics.click_metrics``) of a click model on the held-out, latest part of the
    market's logs (``time_split``), each row scored in its own context."""
    from adcraft.learning.metrics import click_metrics
    from adcraft.market.click_log import click_log, time_split

    _, valid = time_split(click_log(market), split)
    probs = model.predict_ctr(valid["product_id"].tolist(), valid["elements"].tolist(), valid["context"].tolist())
    return click_metrics(valid["clicks"], valid["trials"], probs, valid["product_id"])
