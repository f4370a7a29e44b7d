"""A corpus of bad markets, each made from a copy of a tiny valid market, each refused with
``InputError`` whose message names the file, row, column and rule; and, for a sample of them,
every command that reads a market exits with status 2, one error line and no output.

Nothing binary is committed: every broken file is made here, from the simulated tiny market.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageFile
from typer.testing import CliRunner

from adcraft.cli import app
from adcraft.errors import InputError
from adcraft.market import load_market
from tests.market.market_cases import truncated_png
from tests.market.market_drafts import png_bytes

Corrupt = Callable[[Path], None]
IMPRESSION_ROWS = 400
"""Impressions kept in the corpus's valid market (the simulated one has thousands)."""
IMAGE_SIDE = 16
"""Side of the images of the corpus's valid market: decoding them stays cheap."""


# --- the valid market every case starts from ------------------------------------------------

@pytest.fixture(scope="module")
def valid_market(tmp_path_factory: pytest.TempPathFactory, tiny_market_dir: Path) -> Path:
    """A copy of the simulated tiny market with small images and fewer impressions."""
    root = tmp_path_factory.mktemp("corpus") / "valid"
    shutil.copytree(tiny_market_dir, root)
    for path in (root / "images").rglob("*.png"):
        with Image.open(path) as image:
            image.convert("RGBA").resize((IMAGE_SIDE, IMAGE_SIDE)).save(path)
    impressions = pq.read_table(root / "impressions.parquet")
    step = impressions.num_rows // IMPRESSION_ROWS  # spread over the log's days, as a time split needs
    pq.write_table(impressions.take(np.arange(0, step * IMPRESSION_ROWS, step)), root / "impressions.parquet")
    return root


@pytest.fixture
def market(valid_market: Path, tmp_path: Path) -> Path:
    """A fresh copy of the valid market, to break."""
    return Path(shutil.copytree(valid_market, tmp_path / "market", symlinks=True))


# --- ways to break a market -----------------------------------------------------------------

def _table(root: Path, name: str) -> pa.Table:
    return pq.read_table(root / f"{name}.parquet")


def _save(root: Path, name: str, table: pa.Table) -> None:
    pq.write_table(table, root / f"{name}.parquet")


def _cells(name: str, column: str, changes: dict[int, object]) -> Corrupt:
    """Set cells of one column, keeping the column's Arrow type."""
    def corrupt(root: Path) -> None:
        table = _table(root, name)
        position = table.column_names.index(column)
        values = table.column(position).to_pylist()
        for row, value in changes.items():
            values[row] = value
        array = pa.array(values, type=table.schema.field(position).type, from_pandas=False)
        _save(root, name, table.set_column(position, column, array))
    return corrupt


def _cell(name: str, column: str, row: int, value: object) -> Corrupt:
    return _cells(name, column, {row: value})


def _column(name: str, column: str, make: Callable[[pa.ChunkedArray], pa.Array]) -> Corrupt:
    """Replace (or add) a column with ``make(old column)`` (the first column when adding)."""
    def corrupt(root: Path) -> None:
        table = _table(root, name)
        if column in table.column_names:
            position = table.column_names.index(column)
            table = table.set_column(position, column, make(table.column(position)))
        else:
            table = table.append_column(column, make(table.column(0)))
        _save(root, name, table)
    return corrupt


def _drop_column(name: str, column: str) -> Corrupt:
    return lambda root: _save(root, name, _table(root, name).drop_columns([column]))


def _text_array(texts: list[str]) -> pa.Array:
    """A string array whose bytes are not checked (so it may hold invalid UTF-8)."""
    raw = pa.array([text.encode("utf-8", "surrogateescape") for text in texts], type=pa.binary())
    return pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())


def _as_csv(name: str, edit: Callable[[bytes], bytes] = lambda data: data) -> Corrupt:
    """Give a table as CSV instead of Parquet (list cells as JSON), then edit the CSV's bytes."""
    def corrupt(root: Path) -> None:
        table = _table(root, name)
        columns = [pa.array([None if v is None else json.dumps(v) for v in column.to_pylist()],
                            type=pa.string())
                   if pa.types.is_list(column.type) else column for column in table.columns]
        buffer = io.BytesIO()
        pacsv.write_csv(pa.table(columns, names=table.column_names), buffer)
        (root / f"{name}.parquet").unlink()
        (root / f"{name}.csv").write_bytes(edit(buffer.getvalue()))
    return corrupt


def _csv_cell(row: int, column: int, text: bytes) -> Callable[[bytes], bytes]:
    """Replace one field of a CSV (``row`` 0 is the first data line; fields without commas)."""
    def edit(data: bytes) -> bytes:
        lines = data.split(b"\n")
        fields = lines[row + 1].split(b",")
        fields[column] = text
        lines[row + 1] = b",".join(fields)
        return b"\n".join(lines)
    return edit


def _write(relpath: str, data: bytes | str) -> Corrupt:
    def corrupt(root: Path) -> None:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return corrupt


def _replace_file(relpath: str, edit: Callable[[bytes], bytes]) -> Corrupt:
    return lambda root: (root / relpath).write_bytes(edit((root / relpath).read_bytes()))


def _make_folder(relpath: str) -> Corrupt:
    def corrupt(root: Path) -> None:
        (root / relpath).unlink()
        (root / relpath).mkdir()
    return corrupt


def _config(**changes: object) -> Corrupt:
    def corrupt(root: Path) -> None:
        config = json.loads((root / "market.json").read_text())
        config.update(changes)
        (root / "market.json").write_text(json.dumps(config))
    return corrupt


def _product_image(relpath: str, data: bytes | None = None) -> Corrupt:
    """Point product row 0's image at ``relpath``, writing ``data`` there first if given."""
    def corrupt(root: Path) -> None:
        if data is not None:
            _write(relpath, data)(root)
        _cell("products", "image", 0, relpath)(root)
    return corrupt


def _both(*steps: Corrupt) -> Corrupt:
    def corrupt(root: Path) -> None:
        for step in steps:
            step(root)
    return corrupt


def _creative_elements(row: int, edit: Callable[[list[str], Path], list[str]]) -> Corrupt:
    def corrupt(root: Path) -> None:
        items = _table(root, "creatives").column("elements").to_pylist()[row]
        _cell("creatives", "elements", row, edit(list(items), root))(root)
    return corrupt


def _other_products_title(items: list[str], root: Path) -> list[str]:
    elements = _table(root, "elements").to_pylist()
    owner = {e["element_id"]: e["product_id"] for e in elements}
    mine = owner[items[0]]
    items[0] = next(e["element_id"] for e in elements
                    if e["slot"] == "title" and e["product_id"] not in (None, mine))
    return items


def _symlink(relpath: str, target: Callable[[Path], Path | str]) -> Corrupt:
    def corrupt(root: Path) -> None:
        os.symlink(target(root), root / relpath)
        _cell("products", "image", 0, relpath)(root)
    return corrupt


def _outside_png(root: Path) -> Path:
    outside = root.parent / "outside.png"
    outside.write_bytes(png_bytes((4, 4), (0, 0, 0)))
    return outside


def _symlink_loop(root: Path) -> None:
    os.symlink("loop_b.png", root / "images" / "loop_a.png")
    os.symlink("loop_a.png", root / "images" / "loop_b.png")
    _cell("products", "image", 0, "images/loop_a.png")(root)


def _rename(column: str, old: str, new: str) -> Corrupt:
    """Rename an id everywhere ``column`` names it (a valid change)."""
    def corrupt(root: Path) -> None:
        for name in ("products", "elements", "creatives", "impressions", "creative_stats", "demand"):
            table = _table(root, name)
            if column not in table.column_names:
                continue
            ids = [new if value == old else value for value in table.column(column).to_pylist()]
            _save(root, name, table.set_column(table.column_names.index(column), column,
                                               pa.array(ids, type=pa.string())))
    return corrupt


def _table_link(name: str, target: Callable[[Path], Path | str]) -> Corrupt:
    """Replace table ``name`` (a file name such as ``demand.csv``) by a symbolic link to ``target``."""
    def corrupt(root: Path) -> None:
        stem, link = name.split(".")[0], target(root)
        for old in (root / f"{stem}.parquet", root / f"{stem}.csv"):
            old.unlink(missing_ok=True)
        os.symlink(link, root / name)
    return corrupt


SECRET = "do-not-quote-me-4711"


def _outside_table(root: Path) -> Path:
    """A readable Parquet table outside the market, holding a value no message may quote."""
    outside = root.parent / "outside-products.parquet"
    products = _table(root, "products")
    titles = pa.array([SECRET] * products.num_rows)
    pq.write_table(products.set_column(products.column_names.index("title"), "title", titles), outside)
    return outside


def _all_cells(name: str, column: str, value: Callable[[object], object]) -> Corrupt:
    """Set every cell of one column to ``value(old cell)``, keeping the column's Arrow type."""
    def corrupt(root: Path) -> None:
        table = _table(root, name)
        position = table.column_names.index(column)
        values = [value(old) for old in table.column(position).to_pylist()]
        _save(root, name, table.set_column(position, column,
                                           pa.array(values, type=table.schema.field(position).type)))
    return corrupt


def _only_stats(*steps: Corrupt) -> Corrupt:
    """Keep creative_stats as the only log, then apply ``steps``."""
    return _both(lambda root: (root / "impressions.parquet").unlink(), *steps)


def _json_with_keys(count: int) -> str:
    return json.dumps({f"k{key}": 0 for key in range(count)})


_COMPOSED, _DECOMPOSED = "caf\u00e9", "cafe\u0301"


def _clicks_equal_impressions(root: Path) -> None:
    stats = _table(root, "creative_stats")
    _save(root, "creative_stats", stats.set_column(stats.column_names.index("clicks"), "clicks",
                                                   stats.column("impressions")))


def _every_first_creative(root: Path) -> None:
    """Point every impression at one creative."""
    _all_cells("impressions", "creative_id", lambda old: "c_p0000_0")(root)


# --- image files ----------------------------------------------------------------------------

def bomb_png(width: int, height: int) -> bytes:
    """A real, complete 1-bit PNG of ``width`` x ``height`` black pixels: a few kilobytes that
    would take ``width * height`` bytes of memory to decode."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    squeeze = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the packed bits
    pixels = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


BOMB_SIDE = 20_000
_RANDOM = np.random.default_rng(7).bytes(512)


# --- the corpus -----------------------------------------------------------------------------

@dataclass(frozen=True)
class BadInput:
    """A way to break the valid market, and the fragments its refusal must name."""

    id: str
    corrupt: Corrupt
    expect: tuple[str, ...]


def _case(case_id: str, corrupt: Corrupt, *expect: str) -> BadInput:
    return BadInput(case_id, corrupt, expect)


_NAN, _INF = float("nan"), float("inf")
_ISO_TIMESTAMP = b"2026-01-01T10:00:00"

CORPUS = [
    # market.json
    _case("market_json_missing", lambda root: (root / "market.json").unlink(),
          "market.json", "file is missing"),
    _case("market_json_malformed", _write("market.json", '{"format": "adcraft-market/1", "slots": ['),
          "market.json", "not valid JSON"),
    _case("market_json_empty", _write("market.json", b""), "market.json", "not valid JSON"),
    _case("market_json_not_utf8", _write("market.json", b'{"format": "\xff\xfe"}'),
          "market.json", "not valid JSON"),
    _case("market_json_nested_too_deep", _write("market.json", "[" * 100_000),
          "market.json", "not valid JSON"),
    _case("market_json_integer_too_long",
          _write("market.json", '{"format": "adcraft-market/1", "slots": ["title"], "canvas": [1'
                 + "0" * 5000 + ", 1]}"),
          "market.json", "not valid JSON"),
    _case("market_json_is_a_folder", _make_folder("market.json"), "market.json", "is not a file"),
    _case("market_json_an_array", _write("market.json", "[]"), "market.json", "JSON object"),
    _case("format_version_wrong", _config(format="adcraft-market/2"),
          "market.json", "column format", '"adcraft-market/1"', "adcraft-market/2"),
    _case("slots_not_a_list", _config(slots="title"), "market.json", "column slots", "non-empty list"),
    _case("canvas_over_pixel_limit", _config(canvas=[10**30, 10**30]),
          "market.json", "column canvas", "pixel limit"),
    _case("slot_without_elements",
          _config(slots=["title", "highlight", "background", "template", "font", "text_color", "sticker"]),
          "products.parquet", "column product_id", "no usable element for slot sticker"),
    _case("element_of_unknown_slot", _cell("elements", "slot", 0, "sparkle"),
          "elements.parquet row 0", "column slot", "market.json's slots", "'sparkle'"),
    # table files
    _case("products_missing", lambda root: (root / "products.parquet").unlink(),
          "products.parquet", "required table is missing"),
    _case("elements_missing", lambda root: (root / "elements.parquet").unlink(),
          "elements.parquet", "required table is missing"),
    _case("table_both_parquet_and_csv", _write("demand.csv", "product_id,demand\np0000,1\n"),
          "demand.parquet", "given twice", "demand.csv"),
    _case("parquet_truncated", _replace_file("products.parquet", lambda data: data[: len(data) // 2]),
          "products.parquet", "cannot be read as PARQUET"),
    _case("parquet_random_bytes", _write("impressions.parquet", _RANDOM),
          "impressions.parquet", "cannot be read as PARQUET"),
    _case("parquet_zero_bytes", _write("elements.parquet", b""),
          "elements.parquet", "cannot be read as PARQUET"),
    _case("parquet_is_a_folder", _make_folder("demand.parquet"), "demand.parquet", "cannot be read"),
    _case("parquet_text_not_utf8", _column("products", "title", lambda old: _text_array(
        ["ok"] + ["caf\udce9"] * (len(old) - 1))), "products.parquet", "column title", "UTF8"),
    _case("parquet_column_twice", lambda root: _save(root, "demand", _table(root, "demand").append_column(
        "demand", _table(root, "demand").column("demand"))),
          "demand.parquet", "column demand", "more than once"),
    _case("csv_bad_quoting", _as_csv("demand", lambda data: data.replace(b'"p0001"', b'"p0001', 1)),
          "demand.csv", "cannot be read as CSV"),
    _case("csv_wrong_delimiter", _as_csv("products", lambda data: data.replace(b",", b";")),
          "products.csv", "column product_id", "required column is missing"),
    _case("csv_missing_header", _as_csv("demand", lambda data: data.split(b"\n", 1)[1]),
          "demand.csv", "column product_id", "required column is missing"),
    _case("csv_ragged_row", _as_csv("demand", lambda data: data + b'"p0000",1,"x","extra"\n'),
          "demand.csv", "cannot be read as CSV"),
    _case("csv_not_utf8", _as_csv("demand", lambda data: data.replace(b"p0001", b"p\xff\xfe1")),
          "demand.csv", "cannot be read as CSV"),
    _case("csv_empty", _as_csv("demand", lambda data: b""), "demand.csv", "cannot be read as CSV"),
    # columns and types
    _case("required_column_missing", _drop_column("products", "title"),
          "products.parquet", "column title", "required column is missing"),
    _case("click_column_missing", _drop_column("impressions", "click"),
          "impressions.parquet", "column click", "required column is missing"),
    _case("string_in_int_column", _column("impressions", "ts", lambda old: pa.array(["soon"] * len(old))),
          "impressions.parquet", "column ts", "must hold whole numbers", "string"),
    _case("string_in_int_column_csv", _as_csv("creative_stats", _csv_cell(3, 2, b"many")),
          "creative_stats.csv row 3", "column impressions", "must be a number", "'many'"),
    _case("timestamp_unparsable_csv", _as_csv("impressions", _csv_cell(2, 1, _ISO_TIMESTAMP)),
          "impressions.csv row 2", "column ts", "must be a number", "2026-01-01T10:00:00"),
    _case("timestamp_of_date_type", _column("impressions", "ts", lambda old: old.cast(pa.timestamp("s"))),
          "impressions.parquet", "column ts", "must hold whole numbers", "timestamp"),
    _case("string_in_float_column", _column("products", "price", lambda old: pa.array(["9.99"] * len(old))),
          "products.parquet", "column price", "must hold numbers"),
    _case("list_column_as_string", _column("creatives", "elements", lambda old: pa.array(
        [json.dumps(items) for items in old.to_pylist()])),
          "creatives.parquet", "column elements", "lists of strings", "string"),
    _case("list_column_of_numbers", _column("creatives", "elements", lambda old: pa.array(
        [[1, 2]] * len(old))), "creatives.parquet", "column elements", "lists of strings"),
    _case("list_cell_not_json_csv", _as_csv("creatives", lambda data: data.replace(b'"[', b'"t_[', 1)),
          "creatives.csv row 0", "column elements", "JSON array"),
    _case("list_cell_nested_too_deep_csv", _as_csv("creatives", lambda data: data.replace(
        b'"[', b'"' + b"[" * 100_000, 1)), "creatives.csv row 0", "column elements", "JSON array"),
    _case("null_in_required_column", _cell("products", "title", 2, None),
          "products.parquet row 2", "column title", "must have a value in every row"),
    _case("null_id", _cell("impressions", "impression_id", 5, None),
          "impressions.parquet row 5", "column impression_id", "must have a value in every row"),
    _case("null_click", _cell("impressions", "click", 7, None),
          "impressions.parquet row 7", "column click", "must have a value in every row"),
    _case("nan_price", _cell("products", "price", 1, _NAN), "products.parquet row 1", "column price", "NaN"),
    _case("nan_price_csv", _as_csv("products", _csv_cell(1, 4, b"nan")),
          "products.csv row 1", "column price", "NaN"),
    _case("inf_demand", _cell("demand", "demand", 0, _INF), "demand.parquet row 0", "column demand", "finite"),
    _case("minus_inf_propensity", _cell("impressions", "propensity", 3, -_INF),
          "impressions.parquet row 3", "column propensity", "finite"),
    _case("integer_too_large_csv", _as_csv("impressions", _csv_cell(0, 1, b"9" * 30)),
          "impressions.csv row 0", "column ts", "too large"),
    _case("integer_too_large_uint64", _column("creative_stats", "clicks", lambda old: pa.array(
        [2**64 - 1] * len(old), type=pa.uint64())), "creative_stats.parquet", "column clicks", "too large"),
    _case("json_object_nested_too_deep", _cell("products", "attributes", 0, "[" * 100_000),
          "products.parquet row 0", "column attributes", "JSON object"),
    _case("json_object_integer_too_long", _cell("impressions", "context", 4, '{"n": 1' + "0" * 5000 + "}"),
          "impressions.parquet row 4", "column context", "JSON object"),
    _case("context_not_an_object", _cell("impressions", "context", 1, "mobile"),
          "impressions.parquet row 1", "column context", "JSON object", "'mobile'"),
    # ids
    _case("duplicated_product_id", _cell("products", "product_id", 1, "p0000"),
          "products.parquet rows 0, 1", "column product_id", "must be unique", "'p0000'"),
    _case("duplicated_element_id", _cells("elements", "element_id", {1: "dup", 2: "dup"}),
          "elements.parquet rows 1, 2", "column element_id", "must be unique"),
    _case("duplicated_creative_id", _cell("creatives", "creative_id", 1, "c_p0000_0"),
          "creatives.parquet rows 0, 1", "column creative_id", "must be unique"),
    _case("duplicated_impression_id", _cell("impressions", "impression_id", 9, "i0000000"),
          "impressions.parquet rows 0, 9", "column impression_id", "must be unique"),
    _case("empty_product_id", _cell("products", "product_id", 3, ""),
          "products.parquet row 3", "column product_id", "must not be empty"),
    # references
    _case("creative_of_unknown_product", _cell("creatives", "product_id", 0, "p9999"),
          "creatives.parquet row 0", "column product_id", "must name a product", "'p9999'"),
    _case("creative_with_unknown_element", _creative_elements(0, lambda items, root: [*items[:-1], "tc99"]),
          "creatives.parquet row 0", "column elements", "not in elements.parquet", "'tc99'"),
    _case("creative_element_of_wrong_slot", _creative_elements(1, lambda items, root: [items[1], items[0],
                                                                                       *items[2:]]),
          "creatives.parquet row 1", "column elements", "slot order"),
    _case("creative_element_of_other_product", _creative_elements(2, _other_products_title),
          "creatives.parquet row 2", "column elements", "not usable for the creative's product"),
    _case("element_of_unknown_product", _cell("elements", "product_id", 0, "p9999"),
          "elements.parquet row 0", "column product_id", "must name a product"),
    _case("impression_of_unknown_creative", _cell("impressions", "creative_id", 2, "c_nope"),
          "impressions.parquet row 2", "column creative_id", "must name a creative", "'c_nope'"),
    _case("stats_of_unknown_creative", _cell("creative_stats", "creative_id", 0, "c_nope"),
          "creative_stats.parquet row 0", "column creative_id", "must name a creative"),
    _case("demand_of_unknown_product", _cell("demand", "product_id", 5, "p9999"),
          "demand.parquet row 5", "column product_id", "must name a product"),
    # counts and probabilities
    _case("clicks_over_impressions", _cell("creative_stats", "clicks", 0, 10_000),
          "creative_stats.parquet row 0", "column clicks", "clicks must be <= impressions"),
    _case("negative_clicks", _cell("creative_stats", "clicks", 1, -3),
          "creative_stats.parquet row 1", "column clicks", ">= 0"),
    _case("negative_impressions", _cell("creative_stats", "impressions", 2, -5),
          "creative_stats.parquet row 2", "column impressions", ">= 1"),
    _case("negative_demand", _cell("demand", "demand", 3, -1.0), "demand.parquet row 3", "column demand", ">= 0"),
    _case("negative_price", _cell("products", "price", 0, -0.01), "products.parquet row 0", "column price", ">= 0"),
    _case("click_not_binary", _cell("impressions", "click", 0, 2),
          "impressions.parquet row 0", "column click", "must be 0 or 1"),
    _case("position_zero", _column("impressions", "position", lambda old: pa.array(
        [0] * len(old), type=pa.int32())), "impressions.parquet rows 0", "column position", ">= 1"),
    _case("propensity_zero", _cell("impressions", "propensity", 0, 0.0),
          "impressions.parquet row 0", "column propensity", "in (0, 1]"),
    _case("propensity_over_one", _cell("impressions", "propensity", 1, 1.5),
          "impressions.parquet row 1", "column propensity", "in (0, 1]"),
    _case("propensity_nan", _cell("impressions", "propensity", 2, _NAN),
          "impressions.parquet row 2", "column propensity", "NaN"),
    _case("date_not_iso", _cell("creative_stats", "date", 0, "yesterday"),
          "creative_stats.parquet row 0", "column date", "ISO date"),
    # images
    _case("image_missing", _product_image("images/products/gone.png"),
          "products.parquet row 0", "column image", "images/products/gone.png", "does not exist"),
    _case("image_zero_bytes", _product_image("images/zero.png", b""),
          "products.parquet row 0", "column image", "not an image file"),
    _case("image_truncated_png", _product_image("images/cut.png", truncated_png()),
          "products.parquet row 0", "column image", "truncated or corrupt"),
    _case("image_random_bytes", _product_image("images/noise.png", _RANDOM),
          "products.parquet row 0", "column image", "not an image file"),
    _case("image_text_named_jpg", _product_image("images/note.jpg", b"a text file, not a photo\n"),
          "products.parquet row 0", "column image", "not an image file"),
    _case("image_decompression_bomb", _product_image("images/bomb.png", bomb_png(BOMB_SIDE, BOMB_SIDE)),
          "products.parquet row 0", "column image", "images/bomb.png", "over the"),
    _case("image_over_pixel_limit", _product_image("images/big.png", bomb_png(8000, 8000)),
          "products.parquet row 0", "column image", "8000x8000", "over the limit of 40,000,000"),
    _case("image_tiff", _product_image("images/scan.png", png_bytes((8, 8), (10, 20, 30), "TIFF")),
          "products.parquet row 0", "column image", "TIFF image; only PNG, JPEG and WebP"),
    _case("image_bmp", _product_image("images/scan.bmp", png_bytes((8, 8), (10, 20, 30), "BMP")),
          "products.parquet row 0", "column image", "BMP image"),
    _case("image_path_leaves_market", _product_image("../x.png"),
          "products.parquet row 0", "column image", "'..'"),
    _case("image_path_absolute", lambda root: _cell("products", "image", 0, str(_outside_png(root)))(root),
          "products.parquet row 0", "column image", "absolute"),
    _case("image_symlink_outside", _symlink("images/link.png", _outside_png),
          "products.parquet row 0", "column image", "symbolic link leads outside"),
    _case("image_symlink_loop", _symlink_loop, "products.parquet row 0", "column image", "cannot be followed"),
    _case("image_path_is_a_folder", _product_image("images/products"),
          "products.parquet row 0", "column image", "not a file"),
    _case("image_name_too_long", _product_image("images/" + "x" * 300 + ".png"),
          "products.parquet row 0", "column image", "cannot be read"),
    _case("image_path_with_backslash", _product_image("images\\products\\p0000.png"),
          "products.parquet row 0", "column image", "backslash"),
    _case("image_path_empty", _product_image(""), "products.parquet row 0", "column image", "must not be empty"),
    _case("creative_image_truncated", _replace_file("images/creatives/c_p0001_0.png", lambda data: data[:40]),
          "creatives.parquet row 3", "column image", "c_p0001_0.png"),
    # special and outside files: refused without being opened
    _case("table_symlink_to_dev_zero", _table_link("demand.csv", lambda root: "/dev/zero"),
          "demand.csv", "cannot be read", "outside the market folder"),
    _case("table_symlink_outside", _table_link("products.parquet", _outside_table),
          "products.parquet", "cannot be read", "outside the market folder"),
    _case("market_json_symlink_outside", _both(
        lambda root: (root.parent / "outside.json").write_text((root / "market.json").read_text()),
        lambda root: (root / "market.json").unlink(),
        lambda root: os.symlink(root.parent / "outside.json", root / "market.json")),
          "market.json", "outside the market folder"),
    _case("market_json_over_size_limit", lambda root: (root / "market.json").write_text(
        (root / "market.json").read_text() + " " * 1024**2), "market.json", "over the limit of 1,048,576 bytes"),
    # dates: YYYY-MM-DD only
    _case("date_in_week_form", _cell("creative_stats", "date", 0, "2026-W01-3"),
          "creative_stats.parquet row 0", "column date", "ISO date", "'2026-W01-3'"),
    _case("date_in_basic_form", _cell("creative_stats", "date", 3, "20260104"),
          "creative_stats.parquet row 3", "column date", "ISO date", "'20260104'"),
    # limits (market/limits.py)
    _case("title_over_text_limit", _cell("products", "title", 1, "x" * 1_000_000),
          "products.parquet row 1", "column title", "at most 1,000 characters", "1,000,000"),
    _case("element_text_over_text_limit", _cell("elements", "text", 0, "long " * 300),
          "elements.parquet row 0", "column text", "at most 1,000 characters"),
    _case("id_over_id_limit", _rename("product_id", "p0003", "p" * 300),
          "products.parquet row 3", "column product_id", "at most 256 characters"),
    _case("image_path_over_path_limit", _product_image("images/" + "d/" * 600 + "p.png"),
          "products.parquet row 0", "column image", "at most 1,024 characters"),
    _case("context_of_20000_keys", _cells("impressions", "context", {row: _json_with_keys(20_000)
                                                                    for row in range(0, IMPRESSION_ROWS, 50)}),
          "impressions.parquet rows 0, 50", "column context", "JSON object of at most 10,000 characters"),
    _case("context_over_key_limit", _cells("impressions", "context", {2: _json_with_keys(101),
                                                                     7: _json_with_keys(140)}),
          "impressions.parquet rows 2, 7", "column context", "at most 100 keys", "found 140"),
    _case("context_nested_too_deep", _cell("impressions", "context", 3, '{"a": {"b": {"c": {"d": [1]}}}}'),
          "impressions.parquet row 3", "column context", "at most 4 levels deep", "found 5"),
    _case("attributes_over_key_limit", _cell("products", "attributes", 0, _json_with_keys(150)),
          "products.parquet row 0", "column attributes", "at most 100 keys"),
    _case("slots_over_limit", _config(slots=[f"s{slot}" for slot in range(65)]),
          "market.json", "column slots", "over the limit of 64"),
    # Unicode and control characters
    _case("ids_differ_only_in_normalisation", _both(_rename("product_id", "p0001", _COMPOSED),
                                                    _rename("product_id", "p0002", _DECOMPOSED)),
          "products.parquet rows 1, 2", "column product_id", "Unicode normalisation",
          ascii(_COMPOSED), ascii(_DECOMPOSED)),
    _case("element_ids_differ_only_in_normalisation",
          _cells("elements", "element_id", {0: "\u00c5ngstr\u00f6m", 1: "A\u030angstro\u0308m"}),
          "elements.parquet rows 0, 1", "column element_id", "Unicode normalisation"),
    _case("id_with_control_character", _rename("creative_id", "c_p0001_0", "c\x07bell"),
          "creatives.parquet row 3", "column creative_id", "control characters"),
    _case("id_with_nul", _rename("product_id", "p0004", "p\x00004"),
          "products.parquet row 4", "column product_id", "NUL"),
    _case("nul_in_csv_cell", _as_csv("products", lambda data: data.replace(b"sneaker", b"snea\x00ker", 1)),
          "products.csv row 0", "column category", "NUL character"),
    # what optimize needs: validation refuses it first
    _case("canvas_under_32_px", _config(canvas=[16, 512]), "market.json", "column canvas", "[32, 8192]", "16x512"),
    _case("canvas_over_8192_px", _config(canvas=[9000, 100]), "market.json", "column canvas", "[32, 8192]"),
    _case("product_photo_fully_transparent", _product_image("images/clear.png", png_bytes((8, 8), (9, 9, 9, 0))),
          "products.parquet row 0", "column image", "images/clear.png", "shows nothing", "fully transparent"),
    _case("product_photo_one_plain_colour", _product_image("images/plain.png", png_bytes((8, 8), (240, 240, 240))),
          "products.parquet row 0", "column image", "images/plain.png", "shows nothing", "one plain colour"),
    _case("logs_on_a_single_day", _all_cells("impressions", "ts", lambda old: 1_767_225_810 + int(old) % 3600),
          "impressions.parquet", "column ts", "the logs span a single day"),
    _case("logs_of_a_single_creative", _every_first_creative,
          "impressions.parquet", "column creative_id", "the logs cover a single creative"),
    _case("logs_without_clicks", _all_cells("impressions", "click", lambda old: 0),
          "impressions.parquet", "column click", "no clicks at all"),
    _case("stats_every_impression_clicked", _only_stats(_clicks_equal_impressions),
          "creative_stats.parquet", "column clicks", "every logged impression was clicked"),
    _case("stats_on_a_single_day", _only_stats(_all_cells("creative_stats", "date", lambda old: "2026-01-05")),
          "creative_stats.parquet", "column date", "the logs span a single day"),
]

GOOD = [
    pytest.param(lambda root: None, id="unchanged"),
    pytest.param(_rename("product_id", "p0002", "p☕ 🛍️ ünï"), id="unicode_and_emoji_product_id"),
    pytest.param(_rename("creative_id", "c_p0000_1", "c-💡 日本\u200d"), id="unicode_creative_id"),
    pytest.param(_as_csv("products", lambda data: b"\xef\xbb\xbf" + data), id="csv_with_byte_order_mark"),
    pytest.param(_both(*(_as_csv(name) for name in ("products", "elements", "creatives", "impressions",
                                                   "creative_stats", "demand"))), id="every_table_as_csv"),
    pytest.param(_column("demand", "demand", lambda old: old.cast(pa.float32())), id="float32_column"),
    pytest.param(_column("demand", "note", lambda old: pa.array([{"a": 1}] * len(old))), id="extra_struct_column"),
]


def test_corpus_is_large_and_ids_are_distinct():
    assert len(CORPUS) >= 40
    assert len({case.id for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_bad_market_is_refused_with_input_error_naming_the_problem(case: BadInput, market: Path):
    case.corrupt(market)
    with pytest.raises(InputError) as caught:
        load_market(market)
    message = str(caught.value)
    for fragment in case.expect:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert len(message) < 5000  # bad values are quoted, not dumped


@pytest.mark.parametrize("corrupt", GOOD)
def test_unusual_but_valid_market_loads(corrupt: Corrupt, market: Path):
    corrupt(market)
    loaded = load_market(market)
    assert len(loaded.products) == 6 and len(loaded.creatives) == 18


def test_unicode_ids_are_kept(market: Path):
    _rename("product_id", "p0002", "p☕ 🛍️ ünï")(market)
    loaded = load_market(market)
    assert "p☕ 🛍️ ünï" in set(loaded.products["product_id"])
    assert (loaded.creatives["product_id"] == "p☕ 🛍️ ünï").sum() == 3


def test_decompression_bomb_is_refused_from_its_header_without_decoding(market: Path, monkeypatch):
    data = bomb_png(BOMB_SIDE, BOMB_SIDE)
    assert len(data) < 200_000  # small in bytes, 400 megapixels
    decoded: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def spy(image: ImageFile.ImageFile):
        decoded.append(image.size)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    for side in (BOMB_SIDE, 8000):  # over Pillow's own bomb limit, and over only adcraft's
        _product_image(f"images/bomb{side}.png", bomb_png(side, side))(market)
        started = time.perf_counter()
        with pytest.raises(InputError, match="over the"):
            load_market(market)
        assert time.perf_counter() - started < 10
        assert (side, side) not in decoded


def test_decompression_bomb_is_refused_in_little_memory(market: Path):
    _product_image("images/bomb.png", bomb_png(BOMB_SIDE, BOMB_SIDE))(market)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over execve, so it would report the (large) test process.
    probe = ("import re, sys\n"
             "from adcraft.errors import InputError\n"
             "from adcraft.market import load_market\n"
             "try:\n    load_market(sys.argv[1])\nexcept InputError:\n"
             "    status = open('/proc/self/status').read()\n"
             "    print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n")
    result = subprocess.run([sys.executable, "-c", probe, str(market)], capture_output=True, text=True,
                            timeout=120, check=True)
    peak_mib = int(result.stdout.strip()) / 1024  # Linux: kilobytes
    assert peak_mib < 350, f"peak memory {peak_mib:.0f} MiB: the 400-megapixel image was decoded"


# --- the commands ---------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture(scope="module")
def ctr_model(tiny_market_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny click model for ``adcraft score``, trained on the simulated market."""
    folder = tmp_path_factory.mktemp("corpus-model")
    config = folder / "ctr.yaml"
    config.write_text("encoding: {text_backbone: tiny, image_backbone: none}\ntrain: {epochs: 1}\n")
    result = runner.invoke(app, ["train", "ctr", "--market", str(tiny_market_dir), "--out", str(folder / "model"),
                                 "--config", str(config)])
    assert result.exit_code == 0, result.output
    return folder / "model"


def _command(verb: str, market: Path, out: Path, model: Path | None) -> list[str]:
    """The arguments of ``verb`` on ``market``, writing to ``out``."""
    if verb == "validate":
        return ["validate", str(market)]
    if verb.startswith("train-"):
        return ["train", verb.removeprefix("train-"), "--market", str(market), "--out", str(out)]
    if verb == "score":
        return ["score", "--model", str(model), "--market", str(market), "--out", str(out)]
    if verb == "render":
        return ["render", "--market", str(market), "--product", "p0000",
                "--elements", "t_p0000_0,h01,bg01,tpl01,font01,tc01", "--out", str(out / "creative.png")]
    if verb == "optimize":
        return ["optimize", "--market", str(market), "--out", str(out)]
    if verb == "ope":
        return ["ope", "--market", str(market), "--proposals", str(out)]
    raise AssertionError(verb)


CLI_CASES = [
    ("market_json_nested_too_deep", "validate"),
    ("table_symlink_to_dev_zero", "validate"),
    ("date_in_week_form", "validate"),
    ("title_over_text_limit", "validate"),
    ("context_of_20000_keys", "validate"),
    ("ids_differ_only_in_normalisation", "validate"),
    ("nul_in_csv_cell", "validate"),
    ("canvas_under_32_px", "validate"),
    ("product_photo_fully_transparent", "validate"),
    ("product_photo_one_plain_colour", "optimize"),
    ("logs_on_a_single_day", "validate"),
    ("stats_every_impression_clicked", "validate"),
    ("canvas_over_8192_px", "optimize"),
    ("stats_on_a_single_day", "optimize"),
    ("logs_without_clicks", "train-mil"),
    ("image_decompression_bomb", "validate"),
    ("csv_bad_quoting", "train-ctr"),
    ("clicks_over_impressions", "train-pairwise"),
    ("creative_element_of_wrong_slot", "train-mil"),
    ("image_symlink_outside", "train-utility"),
    ("propensity_zero", "score"),
    ("duplicated_impression_id", "score"),
    ("parquet_truncated", "render"),
    ("image_truncated_png", "render"),
    ("format_version_wrong", "optimize"),
    ("nan_price", "optimize"),
    ("json_object_integer_too_long", "optimize"),
    ("propensity_nan", "ope"),
    ("list_cell_not_json_csv", "ope"),
]
_BY_ID = {case.id: case for case in CORPUS}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


@pytest.mark.parametrize("case_id, verb", CLI_CASES, ids=[f"{v}-{c}" for c, v in CLI_CASES])
def test_commands_refuse_a_bad_market_with_status_2_one_line_and_no_output(
        case_id: str, verb: str, market: Path, tmp_path: Path, request: pytest.FixtureRequest):
    case = _BY_ID[case_id]
    case.corrupt(market)
    model = request.getfixturevalue("ctr_model") if verb == "score" else None
    out = tmp_path / "out"
    if verb in ("ope", "render"):  # these write into a folder that exists
        out.mkdir()
        (out / "keep.txt").write_text("untouched")
    before = sorted(tmp_path.iterdir())
    contents = _snapshot(out) if out.exists() else None

    result = runner.invoke(app, _command(verb, market, out, model))

    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.output
    problem_lines = [line for line in lines if case.expect[0] in line]
    assert len(problem_lines) == 1, lines
    if verb == "validate":  # one line per problem, then the count
        assert len(lines) == 2 and "1 problem" in lines[1], lines
    else:
        assert len(lines) == 1 and lines[0].startswith("error:"), lines
    for fragment in case.expect:
        assert fragment in problem_lines[0], f"{fragment!r} not in {problem_lines[0]!r}"
    assert sorted(tmp_path.iterdir()) == before  # no new folder, no .partial staging folder
    assert (_snapshot(out) if out.exists() else None) == contents


def test_command_sample_covers_every_command_group():
    verbs = {verb for _, verb in CLI_CASES}
    assert {"validate", "train-ctr", "train-pairwise", "train-mil", "train-utility", "score", "render",
            "optimize", "ope"} <= verbs
    assert len(CLI_CASES) >= 10


def test_a_table_outside_the_market_is_not_quoted(market: Path):
    _table_link("products.parquet", _outside_table)(market)
    with pytest.raises(InputError) as caught:
        load_market(market)
    assert "outside the market folder" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_validate_refuses_a_fifo_table_without_opening_it(market: Path):
    # A reader that opens the FIFO blocks until a writer comes; the timeout only stops a hung run.
    (market / "demand.parquet").unlink()
    os.mkfifo(market / "demand.csv")
    result = subprocess.run([sys.executable, "-m", "adcraft.cli", "validate", str(market)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "demand.csv: cannot be read: it is not a regular file" in result.stderr
    assert "Traceback" not in result.stderr


def test_table_over_the_size_limit_is_refused_before_reading(market: Path, monkeypatch: pytest.MonkeyPatch):
    size = (market / "demand.parquet").stat().st_size
    monkeypatch.setattr("adcraft.market.tables.MAX_TABLE_BYTES", size - 1)
    read: list[object] = []
    monkeypatch.setattr(pq, "ParquetFile", lambda *args, **kwargs: read.append(args))
    with pytest.raises(InputError, match=f"demand.parquet: cannot be read: the file is {size:,} bytes, over the "
                                         f"limit of {size - 1:,} bytes"):
        load_market(market, check_images=False)
    assert not any("demand" in str(args[0]) for args in read)


def test_table_over_the_row_limit_is_refused(market: Path, monkeypatch: pytest.MonkeyPatch):
    from adcraft.market.schema import TABLES

    monkeypatch.setitem(TABLES, "demand", dataclasses.replace(TABLES["demand"], max_rows=3))
    rows = _table(market, "demand").num_rows
    with pytest.raises(InputError, match=f"demand.parquet: has {rows} rows, over the limit of 3"):
        load_market(market, check_images=False)


def test_ids_are_normalised_to_nfc_so_references_match(market: Path):
    _rename("product_id", "p0002", _DECOMPOSED)(market)
    _cells("products", "product_id", {2: _COMPOSED})(market)  # the catalogue spells it composed
    loaded = load_market(market)
    assert _COMPOSED in set(loaded.products["product_id"])
    assert (loaded.creatives["product_id"] == _COMPOSED).sum() == 3
    assert _DECOMPOSED not in set(loaded.elements["product_id"])


def test_validate_notes_a_market_without_logs(market: Path):
    for name in ("impressions", "creative_stats"):
        (market / f"{name}.parquet").unlink()
    result = runner.invoke(app, ["validate", str(market)])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.stdout.split())
    assert "valid market" in printed and "note: the market has no logs" in printed
