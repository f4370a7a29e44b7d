import numpy as np

from adcraft.simulator.catalogue import colour_name, make_catalogue
from adcraft.simulator.config import DEFAULT_SLOTS


def test_colour_names_are_nearest():
    assert colour_name((205, 35, 45)) == "red"
    assert colour_name((25, 40, 95)) == "navy"
    assert colour_name((245, 245, 245)) == "white"


def test_catalogue_has_every_slot_for_every_product_and_titles_of_varied_length():
    cat = make_catalogue(
        ["mug", "lamp", "mug"], ["a.png", "b.png", "c.png"], ["red", "navy", "white"], DEFAULT_SLOTS, 3,
        np.random.default_rng(0),
    )
    assert cat.products["product_id"].is_unique and len(cat.products) == 3
    el = cat.elements
    assert el["element_id"].is_unique
    assert list(dict.fromkeys(el["slot"])) == list(DEFAULT_SLOTS)
    for pid in cat.products["product_id"]:
        for slot in DEFAULT_SLOTS:
            usable = el[(el.slot == slot) & (el.product_id.isna() | (el.product_id == pid))]
            assert len(usable) >= 1
        titles = el[(el.slot == "title") & (el.product_id == pid)]["text"].str.split().str.len()
        assert titles.max() - titles.min() >= 3
    assert "red" in " ".join(el[el.product_id == "p0000"]["text"]).lower()


def test_slot_subset_only_makes_those_elements():
    cat = make_catalogue(["mug", "vase"], ["a.png", "b.png"], ["red", "red"], ("background", "title"), 2,
                         np.random.default_rng(1))
    assert set(cat.elements["slot"]) == {"background", "title"}
