"""Reading and writing one market table as Parquet or CSV.

Parquet files are written with the spec's Arrow types exactly (``ts`` int64, ``click`` int8,
``position`` int32, ``elements`` list<string>, ...). CSV files hold the same columns; list cells
are JSON arrays (``["e1","e7"]``) and an empty field is null. CSV is read as text and typed by
``coerce.py``; extra CSV columns stay text.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from adcraft.errors import InputError
from adcraft.market.coerce import TypedTable, typed_table
from adcraft.market.images import resolve_inside
from adcraft.market.limits import MAX_TABLE_BYTES
from adcraft.market.problems import Problem
from adcraft.market.schema import TABLE_FORMATS, Kind, Presence, TableSpec


@dataclass(frozen=True)
class TableFile:
    """Where a table is stored and as what (``parquet`` or ``csv``)."""

    path: Path
    format: str

    @property
    def name(self) -> str:
        return self.path.name


def find_table(root: Path, spec: TableSpec) -> tuple[TableFile | None, list[Problem]]:
    """The file holding table ``spec`` in ``root``; a problem if it is missing (and required)
    or given both as ``.parquet`` and ``.csv``."""
    found = [TableFile(root / f"{spec.name}.{fmt}", fmt) for fmt in TABLE_FORMATS
             if (root / f"{spec.name}.{fmt}").exists()]
    if len(found) > 1:
        names = " and ".join(table.name for table in found)
        return None, [Problem(found[0].name, (), None,
                              f"table {spec.name} is given twice ({names}); keep one of them")]
    if not found:
        if spec.required:
            return None, [Problem(f"{spec.name}.parquet", (), None,
                                  f"required table is missing (give {spec.name}.parquet "
                                  f"or {spec.name}.csv)")]
        return None, []
    problem = file_problem(root, found[0].name, MAX_TABLE_BYTES)
    if problem is not None:
        return None, [Problem(found[0].name, (), None, problem)]
    return found[0], []


def file_problem(root: Path, relpath: str, max_bytes: int) -> str | None:
    """Why the file ``relpath`` of the market ``root`` may not be read, or None if it may.

    Refused without opening the file: a path or symbolic link that leads outside the market, anything
    but a regular file (a FIFO would block the reader forever, a device such as /dev/zero never ends)
    and a file over ``max_bytes``.
    """
    try:
        path = resolve_inside(root, relpath)
    except InputError as error:
        return "cannot be read: " + str(error).removeprefix(f"{relpath!r}: ")
    try:
        status = os.stat(path)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if stat.S_ISDIR(status.st_mode):
        return "cannot be read: it is a folder, not a file"
    if not stat.S_ISREG(status.st_mode):
        return "cannot be read: it is not a regular file (a pipe, device or socket)"
    if status.st_size > max_bytes:
        return (f"cannot be read: the file is {status.st_size:,} bytes, over the limit of "
                f"{max_bytes:,} bytes")
    return None


def read_table(table_file: TableFile, spec: TableSpec) -> TypedTable | Problem:
    """Read and type a table file; a ``Problem`` if the file cannot be read at all."""
    try:
        if table_file.format == "parquet":
            # One file, read as written: pq.read_table would also read a folder as a dataset and
            # refuses a file with a repeated column name, which typing reports by name instead.
            with pq.ParquetFile(table_file.path) as parquet:
                rows = parquet.metadata.num_rows
                if rows > spec.max_rows:  # refused before any row is read
                    return Problem(table_file.name, (), None,
                                   f"has {rows:,} rows, over the limit of {spec.max_rows:,}")
                table = parquet.read()
        else:
            table = _read_csv_text(table_file.path)
    except (OSError, pa.ArrowException, csv.Error, UnicodeDecodeError, ValueError) as error:
        return Problem(table_file.name, (), None,
                       f"cannot be read as {table_file.format.upper()}: {error}")
    for name, column in zip(table.column_names, table.columns):
        try:  # Parquet readers do not check that text is UTF-8; typing it would fail later
            column.validate(full=True)
        except pa.ArrowInvalid as error:
            return Problem(table_file.name, (), name, f"holds malformed data ({error})")
    if table.num_rows > spec.max_rows:
        return Problem(table_file.name, (), None,
                       f"has {table.num_rows:,} rows, over the limit of {spec.max_rows:,}")
    return typed_table(spec, table, table_file.name, table_file.format)


def _read_csv_text(path: Path) -> pa.Table:
    """A CSV file with every column as text and empty fields as null."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise ValueError("the file is empty; the first line must name the columns")
    return pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, null_values=[""],
            strings_can_be_null=True, quoted_strings_can_be_null=True),
    )


def to_arrow(frame: pd.DataFrame, spec: TableSpec) -> pa.Table:
    """A table in the in-memory form as Arrow with the spec's exact types.

    Optional columns that are entirely null are left out (the format reads them back as null);
    extra columns keep their own types.
    """
    arrays, names = [], []
    rows = len(frame)
    for name in frame.columns:
        series = frame[name]
        if name in spec.names:
            column = spec.column(name)
            if column.presence is Presence.OPTIONAL and rows and series.isna().all():
                continue
            values: object = series
            if column.kind is Kind.STRING_LIST:
                values = [None if items is None else list(items) for items in series]
            arrays.append(pa.array(values, type=column.arrow_type, from_pandas=True))
        else:
            arrays.append(pa.array(series, from_pandas=True))
        names.append(name)
    return pa.table(arrays, names=names)


def write_table(table: pa.Table, path: Path, table_format: str) -> None:
    """Write an Arrow table as Parquet, or as CSV with list (and other nested) cells as JSON."""
    if table_format == "parquet":
        pq.write_table(table, path)
        return
    columns = []
    for column in table.columns:
        if pa.types.is_nested(column.type):  # lists (and nested extra columns) as JSON
            text = [None if value is None else json.dumps(value, ensure_ascii=False, default=str)
                    for value in column.to_pylist()]
            column = pa.chunked_array([pa.array(text, type=pa.string())])
        columns.append(column)
    pacsv.write_csv(pa.table(columns, names=table.column_names), path)
