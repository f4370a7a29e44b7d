"""A market in memory: its ``market.json`` (``MarketConfig``) and its tables (``Market``).

Tables are pandas DataFrames in one fixed form (see ``coerce.py``): strings are Python ``str``
with ``None`` for null, integer columns int64, float columns float64, list columns hold Python
lists of ``str``; optional columns the file left out are present and all null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from adcraft.errors import InputError
from adcraft.market.images import ImageLimits, open_image, resolve_inside
from adcraft.market.schema import CONTENT_FIELDS, DEFAULT_CANVAS, FORMAT, slot_field


@dataclass(frozen=True)
class MarketConfig:
    """The contents of ``market.json``: the ordered slots a creative is made of and the canvas size.

    Keys other than ``format``, ``slots`` and ``canvas`` are kept in ``extra`` and written back.
    """

    slots: tuple[str, ...]
    canvas: tuple[int, int] = DEFAULT_CANVAS
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MarketConfig:
        """Build from a parsed ``market.json`` that ``validate.config_problems`` found correct."""
        extra = {key: value for key, value in data.items()
                 if key not in ("format", "slots", "canvas")}
        canvas = data.get("canvas", DEFAULT_CANVAS)
        return cls(slots=tuple(data["slots"]), canvas=(int(canvas[0]), int(canvas[1])),
                   format=data["format"], extra=extra)

    def to_json(self) -> dict[str, Any]:
        """The ``market.json`` object: format, slots, canvas, then the extra keys."""
        return {"format": self.format, "slots": list(self.slots), "canvas": list(self.canvas),
                **self.extra}


@dataclass(eq=False)
class Market:
    """A loaded market: config, required tables, optional tables (None when absent), image access.

    ``root`` is the market folder that image paths are relative to (None for a market built in
    memory without images).
    """

    root: Path | None
    config: MarketConfig
    products: pd.DataFrame
    elements: pd.DataFrame
    creatives: pd.DataFrame | None = None
    impressions: pd.DataFrame | None = None
    creative_stats: pd.DataFrame | None = None
    demand: pd.DataFrame | None = None
    limits: ImageLimits = field(default_factory=ImageLimits)
    _element_rows: tuple[pd.DataFrame, dict[str, int]] | None = field(
        default=None, init=False, repr=False)

    @property
    def slots(self) -> tuple[str, ...]:
        return self.config.slots

    def resolve(self, relpath: str) -> Path:
        """The file a table's path points to; refuses absolute paths, ``..`` and escaping links."""
        if self.root is None:
            raise InputError(f"{relpath!r}: this market has no folder to read files from")
        return resolve_inside(self.root, relpath)

    def open_image(self, relpath: str) -> Image.Image:
        """Open an image of the market, fully decoded, with the pixel limit enforced."""
        return open_image(self.resolve(relpath), self.limits)

    def usable_elements(self, product_id: str, slot: str) -> pd.DataFrame:
        """Elements of ``slot`` usable for ``product_id``: its own and those for every product."""
        elements = self.elements
        mask = (elements["slot"] == slot) & (
            elements["product_id"].isna() | (elements["product_id"] == product_id))
        return elements[mask]

    def element_content(self, element_id: str) -> str:
        """What an element shows: ``text`` for text slots, ``value`` for value slots, ``image``
        (a path) for ``product_image``; for a market's own slots the first of them that is set."""
        row = self.elements.iloc[self._element_row(element_id)]
        field_name = slot_field(row["slot"])
        names = (field_name,) if field_name is not None else CONTENT_FIELDS
        for name in names:
            content = row.get(name)
            if isinstance(content, str):
                return content
        raise InputError(f"element {element_id!r} (slot {row['slot']}) has no {' or '.join(names)}")

    def _element_row(self, element_id: str) -> int:
        """Row position of an element; the index is rebuilt whenever ``elements`` is replaced."""
        if self._element_rows is None or self._element_rows[0] is not self.elements:
            ids = self.elements["element_id"].tolist()
            self._element_rows = (self.elements, {eid: row for row, eid in enumerate(ids)})
        try:
            return self._element_rows[1][element_id]
        except KeyError:
            raise KeyError(f"no element {element_id!r} in this market") from None
