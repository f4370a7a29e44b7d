from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from adcraft.errors import InputError
from adcraft.market import load_market
from adcraft.render.from_market import MarketRenderer


@pytest.fixture()
def photo_market(tmp_path):
    """Two photos of one product, chosen by a product_image slot, plus a market-specific slot."""
    root = tmp_path / "m"
    (root / "images").mkdir(parents=True)
    for name, colour in (("a.png", (200, 30, 30, 255)), ("b.png", (30, 30, 200, 255))):
        im = Image.new("RGBA", (60, 90), (0, 0, 0, 0))
        im.paste(colour, (5, 5, 55, 85))
        im.save(root / "images" / name)
    slots = ["product_image", "title", "background", "mood"]
    (root / "market.json").write_text(json.dumps({"format": "adcraft-market/1", "slots": slots, "canvas": [320, 240]}))
    pd.DataFrame(
        {"product_id": ["p1"], "title": ["Mug"], "category": ["mug"], "image": ["images/a.png"]}
    ).to_parquet(root / "products.parquet")
    pd.DataFrame(
        {
            "element_id": ["img_a", "img_b", "t1", "bg1", "mood1"],
            "slot": ["product_image", "product_image", "title", "background", "mood"],
            "product_id": ["p1", "p1", None, None, None],
            "text": [None, None, "A fine mug", None, None],
            "value": [None, None, None, "white", "calm"],
            "image": ["images/a.png", "images/b.png", None, None, None],
        }
    ).to_parquet(root / "elements.parquet")
    return load_market(root)


def test_product_image_slot_chooses_the_photo_and_unknown_slots_are_carried(photo_market):
    renderer = MarketRenderer(photo_market)
    spec = renderer.spec("p1", ["img_b", "t1", "bg1", "mood1"])
    assert spec.extra == {"mood": "calm"} and spec.title == "A fine mug"
    rendered = renderer.render("p1", ["img_b", "t1", "bg1", "mood1"])
    assert rendered.image.size == (320, 240)
    x0, y0, x1, y1 = rendered.product_bbox
    centre = np.asarray(rendered.image)[(y0 + y1) // 2, (x0 + x1) // 2]
    assert centre[2] > 150 and centre[0] < 80  # the blue photo (img_b), not the product's default red one


@pytest.mark.parametrize(
    "elements, message",
    [
        (["img_a", "t1", "bg1"], "one element per slot"),
        (["t1", "img_a", "bg1", "mood1"], "belongs to slot"),
        (["img_a", "t1", "bg9", "mood1"], "unknown element"),
    ],
)
def test_bad_combinations_are_refused(photo_market, elements, message):
    with pytest.raises(InputError, match=message):
        MarketRenderer(photo_market).render("p1", elements)


def test_unknown_product_is_refused(photo_market):
    with pytest.raises(InputError, match="unknown product"):
        MarketRenderer(photo_market).spec("p9", ["img_a", "t1", "bg1", "mood1"])
