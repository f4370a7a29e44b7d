"""Turning a table as read (Arrow) into the one in-memory form every part of adcraft works with.

The in-memory form of a market table:

- columns of the spec first, in the spec's order, then extra columns in the order they came;
- strings: object dtype holding ``str``, ``None`` for null;
- integers: int64 (a left-out optional integer column: nullable ``Int64``, all ``<NA>``);
- floats: float64 (a left-out optional float column: all NaN);
- ``list<string>``: object dtype holding Python lists of ``str``;
- optional or nullable columns the file left out are present and all null.

Types are read loosely (market-format.md): ``string``/``large_string``/dictionary strings,
any integer width, float16/32/64, ``list``/``large_list``. A float column is accepted where an
integer is expected when every value is whole, and an integer column where a float is. CSV
tables arrive as text and are parsed here. Every value that cannot be typed becomes a
``Problem`` naming its rows; a column whose type is wrong as a whole is "unusable" and the
rules that need it are skipped.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from adcraft.market.problems import Problem, examples
from adcraft.market.schema import ColumnSpec, Kind, Presence, TableSpec

Source = Literal["parquet", "csv", "frame"]
"""Where a table came from: a Parquet file, a CSV file (all text) or a DataFrame in memory."""


@dataclass
class TypedTable:
    """A table in the in-memory form, the problems met while typing it, and its unusable columns."""

    spec: TableSpec
    file: str
    frame: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    unusable: set[str] = field(default_factory=set)

    def usable(self, *columns: str) -> bool:
        """Whether rules may read these columns (present, typed, not missing)."""
        return all(name in self.frame.columns and name not in self.unusable for name in columns)


def typed_table(spec: TableSpec, table: pa.Table, file: str, source: Source) -> TypedTable:
    """Type every column of ``table`` against ``spec``; never raises for bad data."""
    return _typed(spec, table, file, source, TypedTable(spec, file, pd.DataFrame()))


def typed_frame(spec: TableSpec, frame: pd.DataFrame, file: str) -> TypedTable:
    """Type a DataFrame built in memory against ``spec``, as if it had been read from ``file``.

    The frame is converted column by column, so a column Arrow cannot hold (mixed types) becomes
    a problem naming that column. An optional column that is entirely null counts as left out.
    """
    result = TypedTable(spec, file, pd.DataFrame())
    arrays, names = [], []
    for position, name in enumerate(frame.columns):
        if not isinstance(name, str):
            result.problems.append(Problem(file, (), str(name), "column names must be strings"))
            continue
        try:
            arrays.append(pa.array(frame.iloc[:, position], from_pandas=True))
        except (pa.ArrowException, TypeError, ValueError) as error:
            result.problems.append(Problem(file, (), name,
                                           f"holds values of mixed types ({error})"))
            result.unusable.add(name)
            arrays.append(pa.nulls(len(frame)))
        names.append(name)
    return _typed(spec, pa.table(arrays, names=names), file, "frame", result)


def _typed(spec: TableSpec, table: pa.Table, file: str, source: Source,
           result: TypedTable) -> TypedTable:
    names = table.column_names
    for name in sorted({n for n in names if names.count(n) > 1}):
        result.problems.append(Problem(file, (), name, "column appears more than once"))
        result.unusable.add(name)
    rows = table.num_rows
    columns: dict[str, object] = {}
    for spec_column in spec.columns:
        name = spec_column.name
        columns[name] = _spec_column(spec_column, table, file, source, result)
    for position, name in enumerate(names):
        if name not in spec.names and name not in result.unusable:
            columns[name] = plain_values(table.column(position))
    result.problems += _nul_problems(table, file)
    result.frame = pd.DataFrame(columns, index=pd.RangeIndex(rows))
    return result


def _nul_problems(table: pa.Table, file: str) -> list[Problem]:
    """Text cells holding a NUL character: C libraries and file formats cut text there."""
    problems = []
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        found = pc.fill_null(pc.match_substring(column, "\x00"), False)
        if pc.any(found).as_py():
            rows = np.flatnonzero(found.to_numpy(zero_copy_only=False))
            problems.append(Problem.at_rows(file, rows, name, "holds a NUL character"))
    return problems


def _spec_column(spec: ColumnSpec, table: pa.Table, file: str, source: Source,
                 result: TypedTable) -> object:
    """One spec column in the in-memory form; its problems go to ``result``."""
    names = table.column_names
    if spec.name in result.unusable:
        return _nulls(spec.kind, table.num_rows)  # duplicated or not convertible: reported
    if spec.name not in names:
        if spec.presence is Presence.REQUIRED:
            result.problems.append(Problem(file, (), spec.name, "required column is missing"))
            result.unusable.add(spec.name)
        return _nulls(spec.kind, table.num_rows)
    column = table.column(names.index(spec.name))
    if (source == "frame" and spec.presence is Presence.OPTIONAL and table.num_rows
            and column.null_count == table.num_rows):
        return _nulls(spec.kind, table.num_rows)  # all null in memory: "left out"
    values, problems = _typed_column(spec, column, file, source == "csv")
    result.problems += problems
    if values is None:
        result.unusable.add(spec.name)
        return _nulls(spec.kind, table.num_rows)
    return values


def _nulls(kind: Kind, rows: int) -> object:
    """An all-null column of ``kind`` in the in-memory form."""
    if kind is Kind.INTEGER:
        return pd.arrays.IntegerArray(np.zeros(rows, dtype=np.int64), np.ones(rows, dtype=bool))
    if kind is Kind.FLOAT:
        return np.full(rows, np.nan)
    return pd.Series(np.full(rows, None, dtype=object), dtype=object)


@dataclass
class _Read:
    """One column as read: values, which cells are null, which hold a value already reported as
    bad (they become null so that no later rule reports them again), and the problems."""

    values: np.ndarray
    null: np.ndarray
    invalid: np.ndarray
    problems: list[Problem]


def _typed_column(spec: ColumnSpec, column: pa.ChunkedArray, file: str,
                  from_text: bool) -> tuple[object | None, list[Problem]]:
    """Values of one spec column in the in-memory form (None if its type is wrong), and problems."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    read = _READERS[spec.kind](spec, column, file, from_text)
    if isinstance(read, Problem):
        return None, [read]
    problems = read.problems
    if spec.presence is not Presence.NULLABLE and read.null.any():
        rule = ("must have a value in every row" if spec.presence is Presence.REQUIRED
                else "is an optional column that is present, so it must have a value in every row")
        if spec.kind in (Kind.INTEGER, Kind.FLOAT):
            rule += "; found null/NaN"
        problems.append(Problem.at_rows(file, np.flatnonzero(read.null), spec.name, rule))
    missing = read.null | read.invalid
    if spec.kind is Kind.INTEGER:
        if missing.any():
            return pd.arrays.IntegerArray(read.values.astype(np.int64), missing), problems
        return read.values.astype(np.int64), problems
    if spec.kind is Kind.FLOAT:
        return np.where(missing, np.nan, read.values.astype(np.float64)), problems
    values = read.values
    if read.invalid.any():
        values = values.copy()
        values[read.invalid] = None
    if spec.identifier:
        values, collisions = _nfc_ids(values, spec.unique, file, spec.name)
        problems += collisions
    elif spec.kind is Kind.STRING_LIST:
        values = _objects([None if items is None else [_nfc(item) for item in items]
                           for items in values])
    return pd.Series(values, dtype=object), problems


def _objects(items: list[object]) -> np.ndarray:
    """A 1-d object array of ``items`` (lists stay cells, not a second dimension)."""
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _nfc(text: str) -> str:
    """``text`` in Unicode normal form C (composed), so that ids typed on different systems match."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _nfc_ids(values: np.ndarray, unique: bool, file: str,
             column: str) -> tuple[np.ndarray, list[Problem]]:
    """Ids in NFC; for a column of unique ids, a problem naming ids that differ only in their
    normalisation (they would become one id). Of such ids only the first row keeps it; the others
    become null, so that no later rule reports the same clash again."""
    texts = [value for value in values if value is not None]
    if "".join(texts).isascii():  # the common case: nothing to normalise
        return values, []
    normal = _objects([value if value is None else _nfc(value) for value in values])
    if not unique:
        return normal, []
    changed = np.flatnonzero(normal != values)
    if not len(changed):
        return normal, []
    written: dict[str, set[str]] = {}
    for value, raw in zip(normal, values):
        if value is not None:
            written.setdefault(value, set()).add(raw)
    clashing = {value for value in normal[changed] if len(written[value]) > 1}
    if not clashing:
        return normal, []
    rows = np.flatnonzero(np.fromiter((value in clashing for value in normal), dtype=bool,
                                      count=len(normal)))
    repeated = pd.Series(normal[rows]).duplicated().to_numpy()
    normal[rows[repeated]] = None
    pairs = "; ".join(" and ".join(ascii(raw) for raw in sorted(written[value]))
                      for value in sorted(clashing)[:3])
    return normal, [Problem.at_rows(file, rows, column,
                                    "ids differ only in Unicode normalisation, so they name the "
                                    f"same id once normalised (NFC): {pairs}")]


def _wrong_type(spec: ColumnSpec, column: pa.ChunkedArray, file: str) -> Problem:
    expected = {Kind.STRING: "text (string)", Kind.INTEGER: "whole numbers (integer)",
                Kind.FLOAT: "numbers (float)", Kind.STRING_LIST: "lists of strings (list<string>)"}
    return Problem(file, (), spec.name,
                   f"must hold {expected[spec.kind]}, but its type is {column.type}")


def _is_string(data_type: pa.DataType) -> bool:
    return (pa.types.is_string(data_type) or pa.types.is_large_string(data_type)
            or pa.types.is_null(data_type) or getattr(pa.types, "is_string_view",
                                                        lambda _: False)(data_type))


def _strings(column: pa.ChunkedArray) -> np.ndarray:
    """A string (or all-null) column as an object array of ``str`` with ``None`` for null."""
    if pa.types.is_null(column.type):
        return np.full(len(column), None, dtype=object)
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def _null_mask(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _at_rows(file: str, column: str, mask: np.ndarray, rule: str) -> list[Problem]:
    return [Problem.at_rows(file, np.flatnonzero(mask), column, rule)] if mask.any() else []


def _read_strings(spec: ColumnSpec, column: pa.ChunkedArray, file: str,
                  from_text: bool) -> _Read | Problem:
    if not _is_string(column.type):
        return _wrong_type(spec, column, file)
    null = _null_mask(column)
    return _Read(_strings(column), null, np.zeros_like(null), [])


def _read_numbers(spec: ColumnSpec, column: pa.ChunkedArray, file: str,
                  from_text: bool) -> _Read | Problem:
    """Any numeric column (or, from CSV, text) as float64 or int64 values; text that is not a
    number, NaN and infinite values are reported and marked invalid."""
    data_type = column.type
    null = _null_mask(column)
    invalid = np.zeros_like(null)
    problems: list[Problem] = []
    if pa.types.is_null(data_type):
        return _Read(np.zeros(len(column), dtype=np.int64), null, invalid, problems)
    if pa.types.is_integer(data_type) or pa.types.is_boolean(data_type):
        try:
            values = np.asarray(column.cast(pa.int64()).fill_null(0).to_numpy(), dtype=np.int64)
        except pa.ArrowInvalid as error:
            return Problem(file, (), spec.name, f"holds integers too large for int64 ({error})")
        return _Read(values, null, invalid, problems)
    if pa.types.is_floating(data_type):
        values = np.asarray(column.cast(pa.float64()).fill_null(0.0).to_numpy(), dtype=np.float64)
    elif from_text and _is_string(data_type):
        whole = _cast_or_none(column, pa.int64())
        if whole is not None:  # exact, even beyond 2**53
            return _Read(np.asarray(whole.fill_null(0).to_numpy(), dtype=np.int64), null,
                         invalid, problems)
        floats = _cast_or_none(column, pa.float64())
        if floats is not None:
            values = np.asarray(floats.fill_null(0.0).to_numpy(), dtype=np.float64)
        else:
            values, garbage = _parse_numbers(column, null)
            text = _strings(column)
            problems += _at_rows(file, spec.name, garbage,
                               f"must be a number, found {_shown(text[garbage])}")
            invalid |= garbage
    else:
        return _wrong_type(spec, column, file)
    nan = np.isnan(values) & ~null & ~invalid
    infinite = np.isinf(values)
    problems += _at_rows(file, spec.name, nan, "NaN is not a value")
    problems += _at_rows(file, spec.name, infinite, "must be a finite number")
    invalid |= nan | infinite
    return _Read(np.where(invalid, 0.0, values), null, invalid, problems)


def _parse_numbers(column: pa.ChunkedArray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Text that Arrow could not parse as numbers: the values that can be parsed (more loosely,
    e.g. with spaces around), and which cells are not numbers at all (NaN text is a number)."""
    text = _strings(column)
    parsed = pd.to_numeric(pd.Series(text, dtype=object), errors="coerce")
    values = np.asarray(parsed, dtype=np.float64)
    unparsed = np.isnan(values) & ~null
    nan_text = np.array([unparsed[row] and str(cell).strip().lstrip("+-").lower() == "nan"
                         for row, cell in enumerate(text)], dtype=bool)
    garbage = unparsed & ~nan_text
    return np.where(garbage | null, 0.0, values), garbage


def _cast_or_none(column: pa.ChunkedArray, data_type: pa.DataType) -> pa.ChunkedArray | None:
    try:
        return column.cast(data_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _shown(values: np.ndarray) -> str:
    """The first few distinct values, for a message."""
    return examples(values.tolist())


def _read_integers(spec: ColumnSpec, column: pa.ChunkedArray, file: str,
                   from_text: bool) -> _Read | Problem:
    read = _read_numbers(spec, column, file, from_text)
    if isinstance(read, Problem) or read.values.dtype.kind == "i":
        return read
    values = read.values
    fractional = (values != np.floor(values)) & ~read.null
    too_large = (np.abs(values) >= 2.0 ** 63) & ~fractional
    read.problems += _at_rows(file, spec.name, fractional,
                            f"must be a whole number, found {_shown(values[fractional])}")
    read.problems += _at_rows(file, spec.name, too_large,
                            "holds a number too large for a 64-bit integer")
    read.invalid |= fractional | too_large
    read.values = np.where(read.invalid, 0.0, values).astype(np.int64)
    return read


def _read_string_lists(spec: ColumnSpec, column: pa.ChunkedArray, file: str,
                       from_text: bool) -> _Read | Problem:
    data_type = column.type
    null = _null_mask(column)
    invalid = np.zeros_like(null)
    if pa.types.is_null(data_type):
        return _Read(np.full(len(column), None, dtype=object), null, invalid, [])
    if from_text and _is_string(data_type):
        return _parse_json_lists(spec, _strings(column), null, file)
    is_list = (pa.types.is_list(data_type) or pa.types.is_large_list(data_type)
               or pa.types.is_fixed_size_list(data_type))
    if not is_list or not _is_string(data_type.value_type):
        return _wrong_type(spec, column, file)
    values = np.empty(len(column), dtype=object)
    values[:] = column.to_pylist()
    invalid = np.array([items is not None and None in items for items in values], dtype=bool)
    problems = _at_rows(file, spec.name, invalid, "a list holds a null id")
    return _Read(values, null, invalid, problems)


def _parse_json_lists(spec: ColumnSpec, text: np.ndarray, null: np.ndarray, file: str) -> _Read:
    """CSV list cells: JSON arrays of strings such as ``["e1","e7"]``."""
    values = np.full(len(text), None, dtype=object)
    invalid = np.zeros(len(text), dtype=bool)
    for row, cell in enumerate(text):
        if cell is None:
            continue
        try:
            items = json.loads(cell)
        except (ValueError, RecursionError):  # not JSON, too long an integer, nested too deeply
            items = None
        if isinstance(items, list) and all(isinstance(item, str) for item in items):
            values[row] = items
        else:
            invalid[row] = True
    rule = f'must be a JSON array of strings such as ["e1","e7"], found {_shown(text[invalid])}'
    return _Read(values, null, invalid, _at_rows(file, spec.name, invalid, rule))


_READERS: dict[Kind, Callable[[ColumnSpec, pa.ChunkedArray, str, bool], _Read | Problem]] = {
    Kind.STRING: _read_strings,
    Kind.INTEGER: _read_integers,
    Kind.FLOAT: _read_numbers,
    Kind.STRING_LIST: _read_string_lists,
}


def plain_values(column: pa.ChunkedArray) -> object:
    """An extra (non-spec) column in the in-memory form, keeping its own type."""
    data_type = column.type
    if pa.types.is_dictionary(data_type):
        column = column.cast(data_type.value_type)
        data_type = column.type
    if _is_string(data_type):
        return pd.Series(_strings(column), dtype=object)
    if pa.types.is_integer(data_type):
        if column.null_count:
            return pd.array(column.to_pylist(), dtype="Int64")
        return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)
    if pa.types.is_floating(data_type):
        return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False),
                          dtype=np.float64)
    if pa.types.is_boolean(data_type):
        if column.null_count:
            return pd.array(column.to_pylist(), dtype="boolean")
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        values = np.empty(len(column), dtype=object)
        values[:] = column.to_pylist()
        return pd.Series(values, dtype=object)
    return column.to_pandas()
