"""Elements another run made: read and checked against the market they join, then appended to it."""

from __future__ import annotations

import pandas as pd
import pytest

from adcraft.errors import InputError
from adcraft.market import load_market
from adcraft.market.extra import read_extra_elements, with_extra_elements


def _extra(**changes: object) -> pd.DataFrame:
    row = {"element_id": "gen-b1", "slot": "background", "product_id": "p1", "text": None,
           "value": "sunlit loft, linen drapes", "image": None, **changes}
    return pd.DataFrame([row])


def test_extra_elements_are_read_from_a_file_or_its_folder_and_join_the_market(make_draft, tmp_path):
    market = load_market(make_draft().write())
    _extra().to_parquet(tmp_path / "elements.parquet")
    for given in (tmp_path, tmp_path / "elements.parquet"):
        extra = read_extra_elements(given, market)
        assert extra["element_id"].tolist() == ["gen-b1"] and extra["product_id"].tolist() == ["p1"]
    joined = with_extra_elements(market, extra)
    assert joined.elements["element_id"].tolist() == [*market.elements["element_id"], "gen-b1"]
    assert "gen-b1" in set(joined.usable_elements("p1", "background")["element_id"])
    assert "gen-b1" not in set(joined.usable_elements("p2", "background")["element_id"])
    assert len(market.elements) == len(joined.elements) - 1  # the market itself is left as it was
    assert with_extra_elements(market, None) is market and with_extra_elements(market, extra.iloc[:0]) is market


@pytest.mark.parametrize(("changes", "message"), [
    ({"element_id": "b1"}, "element ids already in the market: ['b1']"),
    ({"slot": "sticker"}, "column slot: must be one of market.json's slots"),
    ({"product_id": "p9"}, "products the market does not have: ['p9']"),
    ({"value": None}, "column value: slot background needs a non-empty value"),
    ({"slot": "text_color", "value": "red"}, "text_color must be #RRGGBB"),
])
def test_extra_elements_that_do_not_fit_the_market_are_refused_naming_the_file(make_draft, tmp_path, changes,
                                                                                message):
    market = load_market(make_draft().write())
    _extra(**changes).to_parquet(tmp_path / "mine.parquet")
    with pytest.raises(InputError) as refused:
        read_extra_elements(tmp_path / "mine.parquet", market)
    assert "mine.parquet" in str(refused.value) and message in str(refused.value)


def test_a_missing_or_unreadable_elements_file_is_refused(make_draft, tmp_path):
    market = load_market(make_draft().write())
    with pytest.raises(InputError, match="no such elements table"):
        read_extra_elements(tmp_path, market)
    (tmp_path / "elements.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="not a readable Parquet table"):
        read_extra_elements(tmp_path, market)
