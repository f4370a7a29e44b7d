"""The output tables a run writes: the spec's column types exactly, and nothing half-written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adcraft.market import write_proposals, write_scores


def _proposals() -> pd.DataFrame:
    return pd.DataFrame({
        "product_id": ["p1", "p1", "p2"],
        "rank": np.array([1, 2, 1], dtype=np.int64),
        "elements": [["t1", "b1"], ["t1", "gen-b1"], ["t2", "b1"]],
        "image": ["creatives/p1-1.png", "creatives/p1-2.png", "creatives/p2-1.png"],
        "product_bbox": [np.array([10, 20, 200, 220]), [0, 0, 5, 5], (1, 2, 3, 4)],
        "predicted_ctr": [0.031, 0.027, 0.05],
        "reason": ["best", "second", "best"],
    })


def test_write_proposals_uses_the_spec_types_exactly(tmp_path):
    generated = pd.DataFrame({"element_id": ["gen-b1"], "slot": ["background"],
                              "product_id": [None], "text": [None],
                              "value": ["sunlit loft, linen drapes"], "image": [None]})
    write_proposals(tmp_path / "out", _proposals(), generated)
    table = pq.read_table(tmp_path / "out" / "creatives.parquet")
    assert table.schema.field("rank").type == pa.int32()
    assert table.schema.field("product_bbox").type == pa.list_(pa.int32())
    assert table.schema.field("elements").type == pa.list_(pa.string())
    assert table.schema.field("predicted_ctr").type == pa.float64()
    assert table.column("product_bbox").to_pylist()[2] == [1, 2, 3, 4]
    assert table.column("reason").to_pylist() == ["best", "second", "best"]
    elements = pq.read_table(tmp_path / "out" / "elements.parquet")
    assert elements.column_names == ["element_id", "slot", "product_id", "text", "value", "image"]
    assert elements.schema.field("product_id").type == pa.string()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["creatives.parquet",
                                                                   "elements.parquet"]


@pytest.mark.parametrize("change, message", [
    (lambda frame: frame.drop(columns=["product_bbox"]), "missing column"),
    (lambda frame: frame.assign(rank=[0, 1, 2]), "rank must be >= 1"),
    (lambda frame: frame.assign(product_bbox=[[1, 2, 3]] * 3), r"\[x0, y0, x1, y1\]"),
    (lambda frame: frame.assign(predicted_ctr=[0.1, np.inf, 0.2]), "finite"),
    (lambda frame: frame.assign(image=["a.png", None, "b.png"]), "null"),
])
def test_write_proposals_refuses_bad_rows_and_writes_nothing(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        write_proposals(tmp_path / "out", change(_proposals()))
    assert not (tmp_path / "out").exists()


def test_write_scores_types_and_replaces_atomically(tmp_path):
    scores = pd.DataFrame({"creative_id": ["c1", "c2"], "predicted_ctr": [0.02, 0.04]})
    write_scores(tmp_path, scores)
    write_scores(tmp_path, scores.assign(predicted_ctr=[0.5, 0.25]))
    table = pq.read_table(tmp_path / "scores.parquet")
    assert table.schema == pa.schema([("creative_id", pa.string()),
                                      ("predicted_ctr", pa.float64())])
    assert table.column("predicted_ctr").to_pylist() == [0.5, 0.25]
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


@pytest.mark.parametrize("rank", [0, 1.5, -2])
def test_read_proposals_refuses_bad_ranks_and_missing_files(tmp_path, rank):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from adcraft.errors import InputError
    from adcraft.market.outputs import read_proposals

    with pytest.raises(InputError, match="missing"):
        read_proposals(tmp_path)
    pq.write_table(pa.table({"product_id": ["p1", "p1"], "rank": [1, rank], "elements": [["a"], ["b"]]}),
                   tmp_path / "creatives.parquet")
    with pytest.raises(InputError, match="rows \\[1\\]: column rank"):
        read_proposals(tmp_path)


def test_products_table_has_a_row_per_product_in_the_spec_types(make_draft, tmp_path):
    from adcraft.market import load_market
    from adcraft.market.outputs import PRODUCTS_SCHEMA, read_products, write_products

    market = load_market(make_draft().write())  # p1, p2, p3
    logged = pd.DataFrame({"creative_id": ["c1"], "elements": [["img1", "t1"]], "ctr": [0.07],
                           "predicted_ctr": [0.06]}, index=pd.Index(["p1"], name="product_id"))
    lifts = pd.DataFrame({"product_id": ["p1", "p2"], "impressions": [40, 0], "lift": [0.2, np.nan],
                          "lift_low": [-0.1, np.nan], "lift_high": [0.5, np.nan]})
    write_products(tmp_path / "out", market, logged, {"p1": "logged/00000.jpg"}, lifts, kept={"p1"})
    assert pq.read_schema(tmp_path / "out" / "products.parquet").remove_metadata() == PRODUCTS_SCHEMA
    products = read_products(tmp_path / "out").set_index("product_id")
    assert products.index.tolist() == ["p1", "p2", "p3"]
    assert products.loc["p1", "current_creative_id"] == "c1" and list(products.loc["p1", "current_elements"]) == [
        "img1", "t1"]
    assert products.loc["p1", "current_image"] == "logged/00000.jpg"
    assert (products.loc["p1", "estimated_lift"], products.loc["p1", "lift_impressions"]) == (0.2, 40)
    assert pd.isna(products.loc["p3", "current_creative_id"]) and np.isnan(products.loc["p3", "current_logged_ctr"])
    assert products.loc["p3", "lift_impressions"] == 0 and np.isnan(products.loc["p3", "estimated_lift"])
    assert products["keep_current"].tolist() == [True, False, False]  # what the run keeps, not a rule on the lift
    write_products(tmp_path / "bare", market, logged, {"p1": "logged/00000.jpg"}, None, kept=set())  # no estimate
    bare = read_products(tmp_path / "bare")
    assert (bare["lift_impressions"] == 0).all() and bare["estimated_lift"].isna().all()
    assert not bare["keep_current"].any()


def test_read_products_refuses_a_missing_or_incomplete_table(tmp_path):
    from adcraft.errors import InputError
    from adcraft.market.outputs import read_products

    with pytest.raises(InputError, match="products.parquet is missing"):
        read_products(tmp_path)
    pd.DataFrame({"product_id": ["p1"], "estimated_lift": [0.1]}).to_parquet(tmp_path / "products.parquet")
    with pytest.raises(InputError, match="missing column.*current_creative_id"):
        read_products(tmp_path)
