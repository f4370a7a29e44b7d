"""Property-based fuzzing of the market loader: whatever a market folder holds, ``load_market``
returns a ``Market`` or raises ``InputError``, promptly, and agrees with ``validate_market``.

Each example starts from a copy of a tiny valid market (the simulated one, with fewer rows and
8x8 images) and mutates it: cells, types, columns, rows and ids of the tables; garbage CSV;
random or truncated bytes in any file; random paths; random ``market.json``. Examples are
derandomized, so a failure reproduces on every run; Hypothesis prints the failing draws.
"""

from __future__ import annotations

import io
import json
import math
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from adcraft.errors import InputError
from adcraft.market import FORMAT, Market, load_market, validate_market
from tests.market.market_cases import png_header_only
from tests.market.market_drafts import png_bytes

Draft = dict[str, "pa.Table | bytes"]
"""A market folder in memory: relative path -> Arrow table (written as Parquet) or file bytes."""

SECONDS_PER_LOAD = 20
"""A load that takes longer than this is a hang."""

FUZZ = settings(max_examples=30, deadline=timedelta(seconds=10), derandomize=True, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


# --- the valid market every example starts from ---------------------------------------------

@pytest.fixture(scope="module")
def base_draft(tiny_market_dir: Path) -> Draft:
    """The simulated tiny market in memory, with 8x8 images and fewer log rows."""
    draft: Draft = {}
    for path in sorted(tiny_market_dir.rglob("*")):
        relpath = path.relative_to(tiny_market_dir).as_posix()
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            keep = {"impressions": 60, "creative_stats": 30}.get(path.stem, table.num_rows)
            step = table.num_rows // keep  # rows spread over the log's days, as a time split needs
            draft[relpath] = table.take(list(range(0, step * keep, step)))
        elif path.suffix == ".png":
            buffer = io.BytesIO()
            with Image.open(path) as image:
                image.convert("RGBA").resize((8, 8)).save(buffer, format="PNG")
            draft[relpath] = buffer.getvalue()
        elif path.is_file():
            draft[relpath] = path.read_bytes()
    return draft


def _write(draft: Draft, root: Path) -> None:
    for relpath, content in draft.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, pa.Table):
            pq.write_table(content, path)
        else:
            path.write_bytes(content)


@contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: SIGALRM interrupts a call that runs past ``seconds``."""
    def interrupt(signum, frame):
        raise TimeoutError(f"load_market ran for more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _check_loads_or_refuses(draft: Draft) -> None:
    """The property: a Market or an InputError, never another exception, never a hang; and
    ``validate_market`` finds problems exactly when ``load_market`` refuses."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "market"
        root.mkdir()
        _write(draft, root)
        with _time_limit(SECONDS_PER_LOAD):
            problems = validate_market(root)
            try:
                market = load_market(root)
            except InputError as error:
                assert problems, f"load_market refused ({error}) but validate_market found nothing"
                assert str(error).strip()
                return
    assert isinstance(market, Market)
    assert problems == [], f"load_market accepted a market with problems: {problems}"
    assert market.products["product_id"].map(lambda value: isinstance(value, str)).all()


# --- values and mutations -------------------------------------------------------------------

TRICKY_TEXT = st.sampled_from([
    "", " ", "NaN", "nan", "inf", "-inf", "-1", "1e400", "0x10", "9" * 40, "[]", "{}", '["a"]', "null",
    "../x.png", "/etc/passwd", "images", "images/", "a\x00b", "🛍️", "\u202eevil", "a\nb", '"', "'", ",", ";",
    "2026-13-45", "p0000", "t_p0000_0", "c_p0000_0", "x" * 300, "[" * 3000, '{"n": 1' + "0" * 5000 + "}",
])
TEXT = st.one_of(TRICKY_TEXT, st.text(max_size=16))
VALUES = st.one_of(
    st.none(), st.just(math.nan), st.just(math.inf), st.just(-math.inf), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([0, -1, 1, 2, 2**63 - 1, -(2**63), 2**64]),
    st.floats(allow_nan=True, allow_infinity=True), TEXT, st.lists(TEXT, max_size=8), st.binary(max_size=8),
)
TYPES = [pa.string(), pa.large_string(), pa.binary(), pa.int8(), pa.int32(), pa.int64(), pa.uint64(),
         pa.float16(), pa.float32(), pa.float64(), pa.bool_(), pa.null(), pa.timestamp("s"), pa.date32(),
         pa.list_(pa.string()), pa.large_list(pa.large_string()), pa.list_(pa.int64()),
         pa.dictionary(pa.int32(), pa.string()), pa.decimal128(10, 2)]


def _array(values: list, data_type: pa.DataType) -> pa.Array:
    """``values`` as an array of ``data_type`` if they fit it, else of the type Arrow infers,
    else as text."""
    for make in (lambda: pa.array(values, type=data_type, from_pandas=False),
                 lambda: pa.array(values, from_pandas=False)):
        try:
            return make()
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            continue
    return pa.array([None if value is None else repr(value) for value in values], type=pa.string())


def _cast(column: pa.ChunkedArray, data_type: pa.DataType) -> pa.Array:
    try:
        return column.cast(data_type, safe=False).combine_chunks()
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return _array([None if value is None else str(value) for value in column.to_pylist()], data_type)


def _tables(draft: Draft) -> list[str]:
    return sorted(name for name, content in draft.items() if isinstance(content, pa.Table))


def _pick_table(data: st.DataObject, draft: Draft) -> tuple[str, pa.Table]:
    name = data.draw(st.sampled_from(_tables(draft)), label="table")
    return name, draft[name]  # type: ignore[return-value]


def _pick_column(data: st.DataObject, table: pa.Table) -> int:
    return data.draw(st.integers(0, table.num_columns - 1), label="column")


def set_cells(data: st.DataObject, draft: Draft) -> None:
    """Put odd values (null, NaN, inf, huge or negative numbers, odd text, lists) into cells."""
    name, table = _pick_table(data, draft)
    if table.num_rows == 0:
        return
    position = _pick_column(data, table)
    values = table.column(position).to_pylist()
    for row in data.draw(st.lists(st.integers(0, table.num_rows - 1), min_size=1, max_size=3), label="rows"):
        values[row] = data.draw(VALUES, label="value")
    array = _array(values, table.schema.field(position).type)
    draft[name] = table.set_column(position, table.column_names[position], array)


def change_type(data: st.DataObject, draft: Draft) -> None:
    name, table = _pick_table(data, draft)
    position = _pick_column(data, table)
    data_type = data.draw(st.sampled_from(TYPES), label="type")
    draft[name] = table.set_column(position, table.column_names[position], _cast(table.column(position), data_type))


def drop_or_repeat_column(data: st.DataObject, draft: Draft) -> None:
    name, table = _pick_table(data, draft)
    position = _pick_column(data, table)
    action = data.draw(st.sampled_from(["drop", "repeat", "rename"]), label="action")
    if action == "drop":
        draft[name] = table.remove_column(position)
    elif action == "repeat":
        draft[name] = table.append_column(table.column_names[position], table.column(position))
    else:
        names = list(table.column_names)
        names[position] = data.draw(TEXT, label="new name")
        draft[name] = table.rename_columns(names)


def change_rows(data: st.DataObject, draft: Draft) -> None:
    """Drop, repeat, reorder or empty the rows of a table."""
    name, table = _pick_table(data, draft)
    rows = table.num_rows
    if rows == 0:
        return
    indices = data.draw(st.one_of(st.permutations(range(rows)),
                                  st.lists(st.integers(0, rows - 1), max_size=2 * rows)), label="rows")
    draft[name] = table.take(pa.array(indices, type=pa.int64()))


def shuffle_ids(data: st.DataObject, draft: Draft) -> None:
    """Reorder the values of one column only, breaking the links between rows and tables."""
    name, table = _pick_table(data, draft)
    position = _pick_column(data, table)
    values = table.column(position).to_pylist()
    order = data.draw(st.permutations(range(len(values))), label="order")
    array = _array([values[i] for i in order], table.schema.field(position).type)
    draft[name] = table.set_column(position, table.column_names[position], array)


def set_paths(data: st.DataObject, draft: Draft) -> None:
    """Point an image column at odd paths."""
    name = data.draw(st.sampled_from(["products.parquet", "creatives.parquet"]), label="table")
    table = draft.get(name)
    if not isinstance(table, pa.Table) or "image" not in table.column_names or table.num_rows == 0:
        return
    path = data.draw(st.one_of(TRICKY_TEXT, st.text(alphabet="ab./\\~ \x00", max_size=12),
                               st.sampled_from(sorted(draft))), label="path")
    position = table.column_names.index("image")
    values = table.column(position).to_pylist()
    values[data.draw(st.integers(0, len(values) - 1), label="row")] = path
    draft[name] = table.set_column(position, "image", _array(values, pa.string()))


JSON_TEXT = st.one_of(
    st.sampled_from([1, 2, 990, 1000, 5000]).map(lambda depth: "[" * depth + "]" * depth),
    st.sampled_from([1, 4299, 4300, 6000]).map(lambda digits: '{"n": 1' + "0" * digits + "}"),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
                 lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=4)),
                 max_leaves=10).map(json.dumps),
    TEXT,
)
"""Text for the cells that must hold JSON: nested too deeply, numbers too long, any JSON value."""


JSON_COLUMNS = st.sampled_from([("products.parquet", "attributes"), ("impressions.parquet", "context"),
                                 ("creatives.parquet", "elements")])


def set_json_text(data: st.DataObject, draft: Draft) -> None:
    """Put odd JSON into a column that must hold a JSON object, or a list of ids."""
    _put_json_text(draft, data.draw(JSON_COLUMNS, label="column"), data.draw(st.integers(0, 5), label="row"),
                   data.draw(JSON_TEXT, label="text"))


def _put_json_text(draft: Draft, where: tuple[str, str], row: int, text: str) -> None:
    name, column = where
    table = draft.get(name)
    if not isinstance(table, pa.Table) or column not in table.column_names or table.num_rows <= row:
        return
    position = table.column_names.index(column)
    values = [None if value is None else json.dumps(value) if isinstance(value, list) else value
              for value in table.column(position).to_pylist()]
    values[row] = text
    changed = table.set_column(position, column, pa.array(values, type=pa.string()))
    if column == "elements":  # lists are JSON text only in CSV
        del draft[name]
        draft[name.removesuffix(".parquet") + ".csv"] = _csv_bytes(changed)
    else:
        draft[name] = changed


TABLE_MUTATIONS: list[Callable[[st.DataObject, Draft], None]] = [
    set_cells, change_type, drop_or_repeat_column, change_rows, shuffle_ids, set_paths, set_json_text,
]


def _csv_bytes(table: pa.Table) -> bytes:
    columns = [pa.array([None if v is None else json.dumps(v, default=str) for v in column.to_pylist()],
                        type=pa.string()) if pa.types.is_nested(column.type) else column
               for column in table.columns]
    buffer = io.BytesIO()
    pacsv.write_csv(pa.table(columns, names=table.column_names), buffer)
    return buffer.getvalue()


def _bytes_of(content: pa.Table | bytes) -> bytes:
    if isinstance(content, bytes):
        return content
    buffer = io.BytesIO()
    pq.write_table(content, buffer)
    return buffer.getvalue()


def garbage_csv(data: st.DataObject, draft: Draft) -> None:
    """Give a table as CSV, then insert, delete or replace some of its text."""
    name, table = _pick_table(data, draft)
    text = _csv_bytes(table)
    start = data.draw(st.integers(0, len(text)), label="at")
    end = data.draw(st.integers(start, min(len(text), start + 40)), label="to")
    insert = data.draw(st.one_of(st.text(max_size=20).map(lambda s: s.encode("utf-8")),
                                 st.sampled_from([b'"', b",", b"\n", b"\r", b"\xef\xbb\xbf", b"\xff", b""]),
                                 st.binary(max_size=10)), label="insert")
    del draft[name]
    draft[name.removesuffix(".parquet") + ".csv"] = text[:start] + insert + text[end:]


def damage_file(data: st.DataObject, draft: Draft) -> None:
    """Replace a file (table, market.json or image) with random bytes, cut it short, flip a
    byte in it, or delete it."""
    name = data.draw(st.sampled_from(sorted(draft)), label="file")
    content = _bytes_of(draft[name])
    action = data.draw(st.sampled_from(["random", "truncate", "flip", "delete"]), label="action")
    if action == "delete":
        del draft[name]
    elif action == "random":
        draft[name] = data.draw(st.binary(max_size=300), label="bytes")
    elif action == "truncate":
        draft[name] = content[: data.draw(st.integers(0, len(content)), label="length")]
    elif content:
        at = data.draw(st.integers(0, len(content) - 1), label="at")
        draft[name] = content[:at] + bytes([content[at] ^ data.draw(st.integers(1, 255), label="xor")]) \
            + content[at + 1:]


def odd_image(data: st.DataObject, draft: Draft) -> None:
    """Replace an image with another kind of file: GIF/TIFF/BMP, a huge header, a JPEG cut short."""
    name = data.draw(st.sampled_from(sorted(n for n in draft if n.endswith(".png"))), label="image")
    kind = data.draw(st.sampled_from(["GIF", "TIFF", "BMP", "JPEG", "WEBP", "huge", "cut-jpeg"]), label="kind")
    if kind == "huge":
        draft[name] = png_header_only(50_000, 50_000)
        return
    encoded = png_bytes((8, 8), (200, 10, 10), "JPEG" if kind == "cut-jpeg" else kind)
    draft[name] = encoded[:60] if kind == "cut-jpeg" else encoded


FILE_MUTATIONS: list[Callable[[st.DataObject, Draft], None]] = [garbage_csv, damage_file, odd_image]

SLOTS = ["title", "highlight", "background", "template", "font", "text_color"]
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
CONFIGS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {"format": st.one_of(st.just(FORMAT), JSON_VALUES),
         "slots": st.one_of(st.just(SLOTS), st.lists(st.sampled_from([*SLOTS, "product_image", "sticker", ""]),
                                                      max_size=8), JSON_VALUES)},
        optional={"canvas": st.one_of(st.lists(st.one_of(st.integers(-5, 10**12), st.floats(), TEXT),
                                               max_size=3), JSON_VALUES),
                  "extra": JSON_VALUES}),
)


# --- the properties -------------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_mutated_tables_load_or_are_refused(base_draft: Draft, data: st.DataObject):
    draft = dict(base_draft)
    for mutate in data.draw(st.lists(st.sampled_from(TABLE_MUTATIONS), min_size=1, max_size=3), label="mutations"):
        mutate(data, draft)
    _check_loads_or_refuses(draft)


@settings(FUZZ, max_examples=20)
@given(where=JSON_COLUMNS, row=st.integers(0, 5), text=JSON_TEXT)
def test_odd_json_cells_load_or_are_refused(base_draft: Draft, where: tuple[str, str], row: int, text: str):
    draft = dict(base_draft)
    _put_json_text(draft, where, row, text)
    _check_loads_or_refuses(draft)


@FUZZ
@given(data=st.data())
def test_garbage_files_load_or_are_refused(base_draft: Draft, data: st.DataObject):
    draft = dict(base_draft)
    for mutate in data.draw(st.lists(st.sampled_from(FILE_MUTATIONS), min_size=1, max_size=2), label="mutations"):
        mutate(data, draft)
    _check_loads_or_refuses(draft)


@settings(FUZZ, max_examples=20)
@given(config=st.one_of(CONFIGS.map(lambda value: json.dumps(value).encode()),
                        st.text(max_size=40).map(str.encode), st.binary(max_size=40)))
def test_random_market_json_loads_or_is_refused(base_draft: Draft, config: bytes):
    _check_loads_or_refuses({**base_draft, "market.json": config})


def test_the_unmutated_draft_loads(base_draft: Draft):
    with tempfile.TemporaryDirectory() as folder:
        _write(base_draft, Path(folder))
        assert len(load_market(folder).products) == 6
