"""Loading and writing market folders: in-memory types, loose types on read, exact types on
write, round trips through Parquet and CSV, and a writer that refuses bad markets without
leaving anything behind."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import adcraft.market.io as market_io
from adcraft.errors import InputError
from adcraft.market import (
    Market,
    MarketConfig,
    MarketValidationError,
    load_market,
    validate_market,
    write_market,
)
from tests.market.market_cases import CASES, Case
from tests.market.market_drafts import SLOTS

TABLE_NAMES = ("products", "elements", "creatives", "impressions", "creative_stats", "demand")


def _with_extras(draft):
    """Extra market.json keys and extra (string) columns, which must be carried through."""
    draft.config["currency"] = "EUR"
    draft.tables["products"]["brand"] = ["Nordic", None, "Oakly"]
    draft.tables["impressions"]["session"] = ["s1", "s1", "s2", "s3"]
    return draft


def _assert_same_market(left: Market, right: Market) -> None:
    assert left.config == right.config
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(getattr(left, name), getattr(right, name))


def test_loaded_tables_use_the_in_memory_types(make_draft):
    market = load_market(_with_extras(make_draft()).write())
    impressions = market.impressions
    assert impressions["ts"].dtype == np.int64 and impressions["click"].dtype == np.int64
    assert impressions["propensity"].dtype == np.float64
    assert impressions["impression_id"].dtype == object
    assert market.products["brand"].tolist() == ["Nordic", None, "Oakly"]
    assert market.elements["product_id"].tolist()[5:7] == [None, None]
    assert market.creatives["elements"][0] == ["img1", "t1", "h1", "b1", "tp1", "f1", "k1"]
    assert market.creatives["image"].tolist() == ["images/c1.jpg", None]
    assert market.config.canvas == (320, 240) and market.config.extra == {"currency": "EUR"}


def test_loose_arrow_types_are_accepted(make_draft):
    draft = make_draft()
    root = draft.write()
    products = pq.read_table(root / "products.parquet")
    products = products.set_column(0, "product_id", products["product_id"].cast(pa.large_string()))
    products = products.set_column(1, "title", products["title"].dictionary_encode())
    products = products.set_column(4, "price", products["price"].cast(pa.float32()))
    pq.write_table(products, root / "products.parquet")
    impressions = pq.read_table(root / "impressions.parquet")
    for position, name, narrow in ((1, "ts", pa.uint32()), (3, "click", pa.int8()),
                                   (5, "position", pa.uint8())):
        impressions = impressions.set_column(position, name, impressions[name].cast(narrow))
    pq.write_table(impressions, root / "impressions.parquet")
    creatives = pq.read_table(root / "creatives.parquet")
    creatives = creatives.set_column(2, "elements", creatives["elements"].cast(
        pa.large_list(pa.large_string())))
    pq.write_table(creatives, root / "creatives.parquet")

    assert validate_market(root) == []
    market = load_market(root)
    assert market.products["price"].dtype == np.float64
    assert market.products["title"].tolist()[0] == "Linen shirt"
    assert market.impressions["position"].dtype == np.int64
    assert market.creatives["elements"][1][0] == "img2"


def test_written_parquet_has_the_spec_types_exactly(make_draft, tmp_path):
    out = write_market(load_market(make_draft().write()), tmp_path / "out")
    schema = {name: pq.read_schema(out / f"{name}.parquet") for name in TABLE_NAMES}
    assert schema["impressions"].field("ts").type == pa.int64()
    assert schema["impressions"].field("click").type == pa.int8()
    assert schema["impressions"].field("position").type == pa.int32()
    assert schema["creative_stats"].field("impressions").type == pa.int64()
    assert schema["creative_stats"].field("clicks").type == pa.int64()
    assert schema["products"].field("price").type == pa.float64()
    assert schema["creatives"].field("elements").type == pa.list_(pa.string())
    assert schema["elements"].field("text").type == pa.string()


@pytest.mark.parametrize("table_format", ["parquet", "csv"])
def test_load_write_load_round_trips(make_draft, tmp_path, table_format):
    draft = _with_extras(make_draft(table_format=table_format))
    first = load_market(draft.write())
    out = write_market(first, tmp_path / "copy", table_format=table_format)
    second = load_market(out)
    _assert_same_market(first, second)
    assert json.loads((out / "market.json").read_text()) == draft.config
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "c1.jpg", "p1.png", "p2.png", "p3.png", "p3_alt.png"]
    assert (out / "images" / "c1.jpg").read_bytes() == (draft.root / "images/c1.jpg").read_bytes()


def test_parquet_to_csv_to_parquet_round_trips(make_draft, tmp_path):
    first = load_market(_with_extras(make_draft()).write())
    as_csv = write_market(first, tmp_path / "csv", table_format="csv")
    assert (as_csv / "creatives.csv").read_text().splitlines()[1].startswith(
        '"c1","p1","[""img1"", ""t1""')
    back = write_market(load_market(as_csv), tmp_path / "parquet")
    _assert_same_market(first, load_market(back))


def test_optional_columns_left_out_stay_left_out(make_draft, tmp_path):
    draft = make_draft()
    draft.tables["impressions"] = draft.tables["impressions"].drop(columns=["propensity",
                                                                             "position"])
    market = load_market(draft.write())
    assert market.impressions["propensity"].isna().all()
    assert market.impressions["position"].isna().all()
    out = write_market(market, tmp_path / "out")
    names = pq.read_schema(out / "impressions.parquet").names
    assert "propensity" not in names and "position" not in names
    _assert_same_market(market, load_market(out))


def test_market_built_from_plain_dataframes_is_written_with_spec_types(make_draft, tmp_path):
    draft = make_draft()
    draft.tables["impressions"]["click"] = draft.tables["impressions"]["click"].astype("int16")
    draft.tables["products"]["product_id"] = draft.tables["products"]["product_id"].astype("str")
    out = write_market(draft.market(), tmp_path / "out")
    assert pq.read_schema(out / "impressions.parquet").field("click").type == pa.int8()
    assert load_market(out).products["product_id"].tolist() == ["p1", "p2", "p3"]


IN_MEMORY = [case for case in CASES if case.in_memory]


@pytest.mark.parametrize("case", IN_MEMORY, ids=[case.id for case in IN_MEMORY])
def test_write_market_refuses_a_broken_market_and_writes_nothing(make_draft, tmp_path,
                                                                 case: Case):
    draft = make_draft()
    case.change(draft)
    market = draft.market()
    before = sorted(tmp_path.iterdir())
    out = tmp_path / "out"
    with pytest.raises(MarketValidationError) as refused:
        write_market(market, out)
    problems = refused.value.problems
    assert any(p.file == case.file and p.column == case.column and case.rule in p.rule
               for p in problems), "\n".join(map(str, problems))
    assert not out.exists()
    assert sorted(tmp_path.iterdir()) == before


def test_write_market_refuses_images_without_a_market_folder(make_draft, tmp_path):
    market = make_draft().market()
    market.root = None
    with pytest.raises(MarketValidationError, match="no folder to read them from"):
        write_market(market, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_write_market_refuses_a_non_empty_folder_unless_overwrite(make_draft, tmp_path):
    market = load_market(make_draft().write())
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        write_market(market, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    write_market(market, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "market.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["market1", "out"]


def test_write_market_into_an_existing_empty_folder(make_draft, tmp_path):
    (tmp_path / "out").mkdir()
    out = write_market(load_market(make_draft().write()), tmp_path / "out")
    assert validate_market(out) == []


def test_a_failure_while_writing_leaves_nothing_behind(make_draft, tmp_path, monkeypatch):
    market = load_market(make_draft().write())

    def broken_disk(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(market_io, "write_table", broken_disk)
    with pytest.raises(OSError, match="disk full"):
        write_market(market, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["market1"]


def test_write_market_refuses_an_unknown_table_format(make_draft, tmp_path):
    with pytest.raises(InputError, match="table_format"):
        write_market(load_market(make_draft().write()), tmp_path / "out", table_format="xlsx")


def test_config_keeps_extra_keys_and_defaults_the_canvas():
    config = MarketConfig.from_json({"format": "adcraft-market/1", "slots": SLOTS, "note": 1})
    assert config.canvas == (512, 512) and config.extra == {"note": 1}
    assert config.to_json() == {"format": "adcraft-market/1", "slots": SLOTS,
                                "canvas": [512, 512], "note": 1}
