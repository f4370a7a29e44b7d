"""The tables of a market directory, their columns, types and per-column rules.

This is ``market-format.md`` (format ``adcraft-market/1``) written down as data: the loader,
the validator and the writers all read these specs, so a rule lives in one place.
Rules that span columns or tables (slot order, references, clicks <= impressions) are in
``validate.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pyarrow as pa

from adcraft.market.limits import (
    MAX_CREATIVES,
    MAX_ELEMENTS,
    MAX_ID_CHARS,
    MAX_JSON_CHARS,
    MAX_LOG_ROWS,
    MAX_PATH_CHARS,
    MAX_PRODUCTS,
    MAX_TEXT_CHARS,
)

FORMAT = "adcraft-market/1"
"""The ``format`` marker every ``market.json`` of this version carries."""

TEXT_SLOTS = frozenset({"title", "highlight"})
"""Slots whose elements are read from the ``text`` field."""
VALUE_SLOTS = frozenset({"background", "template", "font", "text_color"})
"""Slots whose elements are read from the ``value`` field."""
IMAGE_SLOTS = frozenset({"product_image"})
"""Slots whose elements are read from the ``image`` field (a path inside the market)."""
STANDARD_SLOTS = TEXT_SLOTS | VALUE_SLOTS | IMAGE_SLOTS

CONTENT_FIELDS = ("text", "value", "image")
"""Element fields that hold content; a market's own slots use the first non-null of them."""

DEFAULT_CANVAS = (512, 512)


def slot_field(slot: str) -> str | None:
    """The element field a standard slot reads, or None for a slot the market added itself."""
    if slot in TEXT_SLOTS:
        return "text"
    if slot in VALUE_SLOTS:
        return "value"
    if slot in IMAGE_SLOTS:
        return "image"
    return None


class Kind(Enum):
    """How a column's values are held in memory (see ``coerce.py``)."""

    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    STRING_LIST = "list<string>"


class Presence(Enum):
    """Whether a column must be in the file and whether it may hold nulls."""

    REQUIRED = "required"  # in the file, a value in every row
    NULLABLE = "nullable"  # "string or null": may be left out, may hold nulls
    OPTIONAL = "optional"  # may be left out; when present, a value in every row


class TextRule(Enum):
    """What a string column's values must look like."""

    JSON_OBJECT = "a JSON object"
    ISO_DATE = "an ISO date (YYYY-MM-DD)"
    PATH = "a relative path inside the market"


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a market table: its type on disk, and the rules on each value."""

    name: str
    kind: Kind
    arrow_type: pa.DataType
    presence: Presence = Presence.REQUIRED
    unique: bool = False
    non_empty: bool = False
    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None
    choices: tuple[int, ...] | None = None
    text: TextRule | None = None
    identifier: bool = False  # an id: normalised to Unicode NFC on load, no control characters
    max_chars: int | None = None  # longest string value (limits.py)


@dataclass(frozen=True)
class TableSpec:
    """A market table: its name (file stem), whether it must be present, its columns and the most
    rows it may hold (``limits.py``)."""

    name: str
    required: bool
    columns: tuple[ColumnSpec, ...]
    max_rows: int = MAX_LOG_ROWS

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name} has no column {name!r}")


_S = Kind.STRING
_I = Kind.INTEGER
_F = Kind.FLOAT
_L = Kind.STRING_LIST
_NULLABLE = Presence.NULLABLE
_OPTIONAL = Presence.OPTIONAL

PRODUCTS = TableSpec("products", True, max_rows=MAX_PRODUCTS, columns=(
    ColumnSpec("product_id", _S, pa.string(), unique=True, non_empty=True, identifier=True, max_chars=MAX_ID_CHARS),
    ColumnSpec("title", _S, pa.string(), non_empty=True, max_chars=MAX_TEXT_CHARS),
    ColumnSpec("category", _S, pa.string(), non_empty=True, max_chars=MAX_TEXT_CHARS),
    ColumnSpec("image", _S, pa.string(), non_empty=True, text=TextRule.PATH, max_chars=MAX_PATH_CHARS),
    ColumnSpec("price", _F, pa.float64(), _OPTIONAL, minimum=0.0),
    ColumnSpec("attributes", _S, pa.string(), _OPTIONAL, text=TextRule.JSON_OBJECT, max_chars=MAX_JSON_CHARS),
))

ELEMENTS = TableSpec("elements", True, max_rows=MAX_ELEMENTS, columns=(
    ColumnSpec("element_id", _S, pa.string(), unique=True, non_empty=True, identifier=True, max_chars=MAX_ID_CHARS),
    ColumnSpec("slot", _S, pa.string(), non_empty=True, max_chars=MAX_ID_CHARS),
    ColumnSpec("product_id", _S, pa.string(), _NULLABLE, non_empty=True, identifier=True, max_chars=MAX_ID_CHARS),
    ColumnSpec("text", _S, pa.string(), _NULLABLE, max_chars=MAX_TEXT_CHARS),
    ColumnSpec("value", _S, pa.string(), _NULLABLE, max_chars=MAX_TEXT_CHARS),
    ColumnSpec("image", _S, pa.string(), _NULLABLE, non_empty=True, text=TextRule.PATH, max_chars=MAX_PATH_CHARS),
))

CREATIVES = TableSpec("creatives", False, max_rows=MAX_CREATIVES, columns=(
    ColumnSpec("creative_id", _S, pa.string(), unique=True, non_empty=True, identifier=True, max_chars=MAX_ID_CHARS),
    ColumnSpec("product_id", _S, pa.string(), non_empty=True, identifier=True, max_chars=MAX_ID_CHARS),
    ColumnSpec("elements", _L, pa.list_(pa.string())),
    ColumnSpec("image", _S, pa.string(), _NULLABLE, non_empty=True, text=TextRule.PATH, max_chars=MAX_PATH_CHARS),
))

IMPRESSIONS = TableSpec("impressions", False, columns=(
    ColumnSpec("impression_id", _S, pa.string(), unique=True, non_empty=True, identifier=True, max_chars=MAX_ID_CHARS),
    ColumnSpec("ts", _I, pa.int64()),
    ColumnSpec("creative_id", _S, pa.string(), non_empty=True, identifier=True, max_chars=MAX_ID_CHARS),
    ColumnSpec("click", _I, pa.int8(), choices=(0, 1)),
    ColumnSpec("propensity", _F, pa.float64(), _OPTIONAL,
               minimum=0.0, exclusive_minimum=True, maximum=1.0),
    ColumnSpec("position", _I, pa.int32(), _OPTIONAL, minimum=1),
    ColumnSpec("context", _S, pa.string(), _OPTIONAL, text=TextRule.JSON_OBJECT, max_chars=MAX_JSON_CHARS),
))

CREATIVE_STATS = TableSpec("creative_stats", False, columns=(
    ColumnSpec("creative_id", _S, pa.string(), non_empty=True, identifier=True, max_chars=MAX_ID_CHARS),
    ColumnSpec("date", _S, pa.string(), _OPTIONAL, text=TextRule.ISO_DATE),
    ColumnSpec("impressions", _I, pa.int64(), minimum=1),
    ColumnSpec("clicks", _I, pa.int64(), minimum=0),
))

DEMAND = TableSpec("demand", False, columns=(
    ColumnSpec("product_id", _S, pa.string(), non_empty=True, identifier=True, max_chars=MAX_ID_CHARS),
    ColumnSpec("demand", _F, pa.float64(), minimum=0.0),
    ColumnSpec("period", _S, pa.string(), _OPTIONAL, max_chars=MAX_TEXT_CHARS),
))

TABLES: dict[str, TableSpec] = {
    spec.name: spec for spec in (PRODUCTS, ELEMENTS, CREATIVES, IMPRESSIONS, CREATIVE_STATS, DEMAND)
}
"""Every table of the format, in the order they are read, checked and reported."""

TABLE_FORMATS = ("parquet", "csv")
"""File types a table may be given as (``products.parquet`` or ``products.csv``)."""
