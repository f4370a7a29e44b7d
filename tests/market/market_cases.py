"""Every way a market can break the format, each with the file, column and rule it must be
refused with. Shared by the validation tests (market folders) and the writer tests (markets in
memory)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PIL import Image

from tests.market.market_drafts import SLOTS, MarketDraft, png_bytes


@dataclass(frozen=True)
class Case:
    """A broken market: ``change`` edits a valid draft before it is written, ``after`` edits the
    written folder (file-level breaks, which a market in memory cannot have)."""

    id: str
    change: Callable[[MarketDraft], None]
    file: str
    column: str | None
    rule: str
    after: Callable[[MarketDraft], None] | None = None
    table_format: str = "parquet"
    in_memory: bool = True


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels but whose data is a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def truncated_png() -> bytes:
    noise = Image.frombytes("RGB", (48, 48), np.random.default_rng(0).bytes(48 * 48 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    data = buffer.getvalue()
    return data[: len(data) // 2]


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="GIF")
    return buffer.getvalue()


def _nothing(draft: MarketDraft) -> None:
    return None


def _config(key: str, value: object) -> Callable[[MarketDraft], None]:
    return lambda draft: draft.config.__setitem__(key, value)


def _cell(table: str, column: str, row: int, value: object) -> Callable[[MarketDraft], None]:
    return lambda draft: draft.set(table, column, row, value)


def _arrow(table: str, column: str, array: pa.Array) -> Callable[[MarketDraft], None]:
    return lambda draft: draft.arrow_columns.__setitem__((table, column), array)


def _drop_table(table: str) -> Callable[[MarketDraft], None]:
    return lambda draft: draft.tables.__setitem__(table, None)


def _drop_column(table: str, column: str) -> Callable[[MarketDraft], None]:
    def change(draft: MarketDraft) -> None:
        draft.tables[table] = draft.tables[table].drop(columns=[column])
    return change


def _image_file(relpath: str, data: bytes) -> Callable[[MarketDraft], None]:
    def change(draft: MarketDraft) -> None:
        draft.file(relpath, data)
        draft.set("products", "image", 1, relpath)
    return change


def _symlink_outside(draft: MarketDraft) -> None:
    outside = draft.root.parent / "outside.png"
    outside.write_bytes(png_bytes())
    (draft.root / "images").mkdir(exist_ok=True)
    os.symlink(outside, draft.root / "images" / "link.png")
    draft.set("products", "image", 0, "images/link.png")


def _custom_slot_without_content(draft: MarketDraft) -> None:
    draft.config["slots"] = [*SLOTS, "sticker"]
    elements = draft.tables["elements"]
    elements.loc[len(elements)] = ["s1", "sticker", None, None, None, None]


def _unlink(name: str) -> Callable[[MarketDraft], None]:
    return lambda draft: (draft.root / name).unlink()


def _write(name: str, data: bytes) -> Callable[[MarketDraft], None]:
    return lambda draft: (draft.root / name).write_bytes(data)


def _config_text(text: str) -> Callable[[MarketDraft], None]:
    return lambda draft: setattr(draft, "config_text", text)


def _set_elements(row: int, items: list[str]) -> Callable[[MarketDraft], None]:
    def change(draft: MarketDraft) -> None:
        draft.tables["creatives"].at[row, "elements"] = items
    return change


_C1 = ["img1", "t1", "h1", "b1", "tp1", "f1", "k1"]
_NAN = float("nan")

CASES = [
    # market.json
    Case("market_json_missing", _nothing, "market.json", None, "missing",
         after=_unlink("market.json"), in_memory=False),
    Case("market_json_not_json", _config_text("{not json"), "market.json", None, "not valid JSON",
         in_memory=False),
    Case("market_json_not_object", _config_text("[1, 2]"), "market.json", None, "JSON object",
         in_memory=False),
    Case("format_marker_wrong", _config("format", "adcraft-market/2"), "market.json", "format",
         "adcraft-market/1"),
    Case("format_marker_missing", lambda d: d.config.pop("format"), "market.json", "format",
         "missing", in_memory=False),
    Case("slots_not_a_list", _config("slots", "title"), "market.json", "slots", "non-empty list",
         in_memory=False),
    Case("slots_empty", _config("slots", []), "market.json", "slots", "non-empty list"),
    Case("slots_duplicated", _config("slots", [*SLOTS, "title"]), "market.json", "slots",
         "unique"),
    Case("slot_name_empty", _config("slots", [*SLOTS, ""]), "market.json", "slots",
         "non-empty string"),
    Case("canvas_one_number", _config("canvas", [512]), "market.json", "canvas", "[width, height]"),
    Case("canvas_zero", _config("canvas", [0, 512]), "market.json", "canvas", "positive"),
    Case("canvas_text", _config("canvas", ["512", "512"]), "market.json", "canvas", "positive",
         in_memory=False),
    Case("canvas_over_pixel_limit", _config("canvas", [100_000, 100_000]), "market.json",
         "canvas", "pixel limit"),
    # files
    Case("products_missing", _drop_table("products"), "products.parquet", None,
         "required table is missing"),
    Case("elements_missing", _drop_table("elements"), "elements.parquet", None,
         "required table is missing"),
    Case("table_given_twice", _nothing, "products.parquet", None, "given twice",
         after=_write("products.csv", b"product_id\np1\n"), in_memory=False),
    Case("parquet_unreadable", _nothing, "products.parquet", None, "cannot be read as PARQUET",
         after=_write("products.parquet", b"not parquet at all"), in_memory=False),
    Case("csv_not_utf8", _nothing, "demand.csv", None, "cannot be read as CSV",
         after=_write("demand.csv", b"product_id,demand\n\xff\xfe,1\n"), table_format="csv",
         in_memory=False),
    Case("csv_empty_file", _nothing, "demand.csv", None, "cannot be read as CSV",
         after=_write("demand.csv", b""), table_format="csv", in_memory=False),
    Case("products_empty", lambda d: d.tables.__setitem__("products", d.tables["products"][:0]),
         "products.parquet", None, "at least one product"),
    # columns and types
    Case("required_column_missing", _drop_column("products", "title"), "products.parquet",
         "title", "required column is missing"),
    Case("list_column_missing", _drop_column("creatives", "elements"), "creatives.parquet",
         "elements", "required column is missing"),
    Case("price_not_numeric", _arrow("products", "price", pa.array(["cheap", "1", "2"])),
         "products.parquet", "price", "must hold numbers"),
    Case("price_not_numeric_csv", _cell("products", "price", 0, "cheap"), "products.csv",
         "price", "must be a number", table_format="csv", in_memory=False),
    Case("ts_fractional", _arrow("impressions", "ts", pa.array([1.5, 2.0, 3.0, 4.0])),
         "impressions.parquet", "ts", "whole number"),
    Case("ts_fractional_csv", _cell("impressions", "ts", 2, "1700000000.5"), "impressions.csv",
         "ts", "whole number", table_format="csv", in_memory=False),
    Case("ts_text", _arrow("impressions", "ts", pa.array(["a", "b", "c", "d"])),
         "impressions.parquet", "ts", "must hold whole numbers"),
    Case("click_two", _cell("impressions", "click", 1, 2), "impressions.parquet", "click",
         "must be 0 or 1"),
    Case("required_value_null", _cell("products", "title", 2, None), "products.parquet", "title",
         "must have a value in every row"),
    Case("optional_number_with_null", _cell("products", "price", 1, None), "products.parquet",
         "price", "must have a value in every row"),
    Case("optional_text_with_null", _cell("impressions", "context", 1, None),
         "impressions.parquet", "context", "must have a value in every row"),
    Case("price_nan", _arrow("products", "price", pa.array([1.0, _NAN, 2.0], from_pandas=False)),
         "products.parquet", "price", "NaN"),
    Case("demand_nan", _arrow("demand", "demand", pa.array([_NAN, 1.0, 2.0], from_pandas=False)),
         "demand.parquet", "demand", "NaN"),
    Case("propensity_nan", _arrow("impressions", "propensity",
                                  pa.array([0.5, 0.5, _NAN, 1.0], from_pandas=False)),
         "impressions.parquet", "propensity", "NaN"),
    Case("price_nan_csv", _cell("products", "price", 0, "NaN"), "products.csv", "price", "NaN",
         table_format="csv", in_memory=False),
    Case("price_infinite", _cell("products", "price", 0, float("inf")), "products.parquet",
         "price", "finite"),
    Case("elements_not_lists", _arrow("creatives", "elements", pa.array(["img1", "img2"])),
         "creatives.parquet", "elements", "lists of strings"),
    Case("elements_not_json_csv", _cell("creatives", "elements", 0, "img1;t1"), "creatives.csv",
         "elements", "JSON array", table_format="csv", in_memory=False),
    # ids and required text
    Case("product_id_empty", _cell("products", "product_id", 0, ""), "products.parquet",
         "product_id", "must not be empty"),
    Case("product_id_duplicated", _cell("products", "product_id", 1, "p1"), "products.parquet",
         "product_id", "must be unique"),
    Case("element_id_duplicated", _cell("elements", "element_id", 4, "t1"), "elements.parquet",
         "element_id", "must be unique"),
    Case("creative_id_duplicated", _cell("creatives", "creative_id", 1, "c1"),
         "creatives.parquet", "creative_id", "must be unique"),
    Case("impression_id_duplicated", _cell("impressions", "impression_id", 3, "i1"),
         "impressions.parquet", "impression_id", "must be unique"),
    Case("title_empty", _cell("products", "title", 0, ""), "products.parquet", "title",
         "must not be empty"),
    Case("category_empty", _cell("products", "category", 2, ""), "products.parquet", "category",
         "must not be empty"),
    Case("attributes_not_object", _cell("products", "attributes", 0, '["red"]'),
         "products.parquet", "attributes", "JSON object"),
    Case("attributes_not_json", _cell("products", "attributes", 1, "{color: red"),
         "products.parquet", "attributes", "JSON object"),
    # elements
    Case("element_slot_unknown", _cell("elements", "slot", 8, "sparkle"), "elements.parquet",
         "slot", "market.json's slots"),
    Case("element_product_unknown", _cell("elements", "product_id", 3, "p9"),
         "elements.parquet", "product_id", "must name a product in products.parquet"),
    Case("text_slot_without_text", _cell("elements", "text", 3, None), "elements.parquet",
         "text", "needs a non-empty text"),
    Case("value_slot_without_value", _cell("elements", "value", 10, None), "elements.parquet",
         "value", "needs a non-empty value"),
    Case("image_slot_without_image", _cell("elements", "image", 0, None), "elements.parquet",
         "image", "needs a non-empty image"),
    Case("text_color_not_hex", _cell("elements", "value", 11, "dark grey"), "elements.parquet",
         "value", "#RRGGBB"),
    Case("own_slot_without_content", _custom_slot_without_content, "elements.parquet", "text",
         "needs one of text, value or image"),
    Case("product_without_title_element", _cell("elements", "product_id", 5, "p2"),
         "products.parquet", "product_id", "no usable element for slot title"),
    # creatives
    Case("creative_product_unknown", _cell("creatives", "product_id", 0, "p9"),
         "creatives.parquet", "product_id", "must name a product in products.parquet"),
    Case("creative_elements_wrong_length", _set_elements(0, _C1[:3]), "creatives.parquet",
         "elements", "one element id per slot"),
    Case("creative_element_unknown", _set_elements(0, [*_C1[:2], "h9", *_C1[3:]]),
         "creatives.parquet", "elements", "not in elements"),
    Case("creative_elements_out_of_order", _set_elements(0, ["img1", "h1", "t1", *_C1[3:]]),
         "creatives.parquet", "elements", "slot order"),
    Case("creative_element_of_other_product", _set_elements(1, ["img1", *_C1[1:]]),
         "creatives.parquet", "elements", "not usable for the creative's product"),
    # impressions
    Case("impression_creative_unknown", _cell("impressions", "creative_id", 0, "c9"),
         "impressions.parquet", "creative_id", "must name a creative in creatives.parquet"),
    Case("impressions_without_creatives", _drop_table("creatives"), "impressions.parquet",
         "creative_id", "no creatives table"),
    Case("propensity_zero", _cell("impressions", "propensity", 0, 0.0), "impressions.parquet",
         "propensity", "in (0, 1]"),
    Case("propensity_above_one", _cell("impressions", "propensity", 1, 1.5),
         "impressions.parquet", "propensity", "in (0, 1]"),
    Case("position_zero", _cell("impressions", "position", 0, 0), "impressions.parquet",
         "position", ">= 1"),
    Case("context_not_object", _cell("impressions", "context", 2, "mobile"),
         "impressions.parquet", "context", "JSON object"),
    # creative_stats
    Case("stats_creative_unknown", _cell("creative_stats", "creative_id", 1, "c9"),
         "creative_stats.parquet", "creative_id", "must name a creative in creatives.parquet"),
    Case("stats_impressions_zero", _cell("creative_stats", "impressions", 1, 0),
         "creative_stats.parquet", "impressions", ">= 1"),
    Case("stats_clicks_negative", _cell("creative_stats", "clicks", 1, -1),
         "creative_stats.parquet", "clicks", ">= 0"),
    Case("stats_clicks_over_impressions", _cell("creative_stats", "clicks", 0, 101),
         "creative_stats.parquet", "clicks", "clicks must be <= impressions"),
    Case("stats_date_not_iso", _cell("creative_stats", "date", 0, "yesterday"),
         "creative_stats.parquet", "date", "ISO date"),
    # demand
    Case("demand_product_unknown", _cell("demand", "product_id", 2, "p9"), "demand.parquet",
         "product_id", "must name a product in products.parquet"),
    Case("demand_negative", _cell("demand", "demand", 0, -1.0), "demand.parquet", "demand",
         ">= 0"),
    # images
    Case("image_file_missing", _cell("products", "image", 0, "images/nope.png"),
         "products.parquet", "image", "does not exist"),
    Case("image_is_text", _image_file("images/fake.png", b"just some text\n"),
         "products.parquet", "image", "not an image"),
    Case("image_truncated", _image_file("images/cut.png", truncated_png()), "products.parquet",
         "image", "truncated or corrupt"),
    Case("image_gif", _image_file("images/anim.gif", gif_bytes()), "products.parquet", "image",
         "GIF image; only PNG, JPEG and WebP"),
    Case("image_over_pixel_limit", _image_file("images/bomb.png", png_header_only(7000, 7000)),
         "products.parquet", "image", "over the limit"),
    Case("image_is_folder", _cell("products", "image", 0, "images"), "products.parquet", "image",
         "not a file"),
    Case("image_path_absolute", _cell("products", "image", 0, "/etc/hostname"),
         "products.parquet", "image", "absolute"),
    Case("image_path_dotdot", _cell("products", "image", 0, "images/../../outside.png"),
         "products.parquet", "image", "'..'"),
    Case("image_symlink_outside", _symlink_outside, "products.parquet", "image",
         "symbolic link leads outside"),
    Case("element_image_not_image", lambda d: (d.file("images/e.png", b"<svg/>"),
                                               d.set("elements", "image", 1, "images/e.png")),
         "elements.parquet", "image", "not an image"),
    Case("creative_image_missing", _cell("creatives", "image", 0, "images/gone.jpg"),
         "creatives.parquet", "image", "does not exist"),
    Case("product_photo_transparent", _image_file("images/clear.png", png_bytes((6, 6), (1, 2, 3, 0))),
         "products.parquet", "image", "shows nothing"),
    # text: NUL characters, control characters in ids, Unicode normalisation, limits
    Case("title_with_nul", _cell("products", "title", 0, "Linen\x00shirt"), "products.parquet", "title",
         "NUL character"),
    Case("element_id_with_newline", _cell("elements", "element_id", 6, "h\n1"), "elements.parquet",
         "element_id", "control characters"),
    Case("element_ids_same_in_nfc", lambda d: (d.set("elements", "element_id", 8, "b\u00e9"),
                                               d.set("elements", "element_id", 9, "be\u0301")),
         "elements.parquet", "element_id", "Unicode normalisation"),
    Case("category_over_text_limit", _cell("products", "category", 1, "c" * 1001), "products.parquet",
         "category", "at most 1,000 characters"),
    Case("stats_date_basic_form", _cell("creative_stats", "date", 1, "20240102"), "creative_stats.parquet",
         "date", "ISO date"),
    # what optimize needs
    Case("canvas_under_32_px", _config("canvas", [31, 240]), "market.json", "canvas", "[32, 8192]"),
    Case("impressions_on_one_day", lambda d: d.tables["impressions"].__setitem__("ts", [1_700_000_000] * 4),
         "impressions.parquet", "ts", "single day"),
]
