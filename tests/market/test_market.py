"""The in-memory market: safe file access, usable elements per product and slot, element content."""

from __future__ import annotations

import pytest

from adcraft.errors import InputError
from adcraft.market import FORMAT, IMAGE_SLOTS, TEXT_SLOTS, VALUE_SLOTS, load_market
from tests.market.market_drafts import SLOTS


@pytest.fixture
def market(make_draft):
    draft = make_draft()
    draft.config["slots"] = [*SLOTS, "sticker"]
    draft.tables["elements"].loc[12] = ["s1", "sticker", None, None, "star-burst", None]
    draft.tables["creatives"]["elements"] = [[*items, "s1"]
                                             for items in draft.tables["creatives"]["elements"]]
    return load_market(draft.write())


def test_standard_slots_and_format_marker():
    assert FORMAT == "adcraft-market/1"
    assert set(SLOTS) == TEXT_SLOTS | VALUE_SLOTS | IMAGE_SLOTS
    assert not (TEXT_SLOTS & VALUE_SLOTS)


def test_usable_elements_are_the_products_own_and_the_shared_ones(market):
    assert market.usable_elements("p1", "title")["element_id"].tolist() == ["t1", "t3"]
    assert market.usable_elements("p3", "title")["element_id"].tolist() == ["t3"]
    assert market.usable_elements("p2", "product_image")["element_id"].tolist() == ["img2"]
    assert market.usable_elements("p2", "background")["element_id"].tolist() == ["b1", "b2"]


def test_element_content_reads_the_field_of_its_slot(market):
    assert market.element_content("t1") == "Breathable linen"
    assert market.element_content("k1") == "#202020"
    assert market.element_content("img3") == "images/p3_alt.png"
    assert market.element_content("s1") == "star-burst"  # a market's own slot: first field set
    with pytest.raises(KeyError, match="no element 'zz'"):
        market.element_content("zz")


def test_element_content_follows_a_replaced_elements_table(market):
    market.elements = market.elements.assign(
        text=market.elements["text"].replace("Breathable linen", "Cool linen"))
    assert market.element_content("t1") == "Cool linen"


def test_resolve_and_open_image_stay_inside_the_market(market):
    assert market.resolve("images/p1.png") == (market.root / "images" / "p1.png").resolve()
    assert market.open_image("images/c1.jpg").size == (16, 16)
    with pytest.raises(InputError, match="absolute"):
        market.open_image("/etc/hostname")
    with pytest.raises(InputError, match="'..'"):
        market.resolve("../market1/images/p1.png")
    market.root = None
    with pytest.raises(InputError, match="no folder"):
        market.resolve("images/p1.png")
