from __future__ import annotations

import json
from pathlib import Path

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


def _installed_face(family: str) -> str:
    from adcraft.render.fonts import find_face

    face = find_face(family)
    if face is None:
        pytest.skip(f"{family} is not installed")
    return face.path


@pytest.fixture()
def font_market(tmp_path):
    """A market shipping its own font file (DejaVu Serif) beside a font element naming a family."""
    root = tmp_path / "m"
    (root / "images").mkdir(parents=True)
    (root / "fonts").mkdir()
    (root / "fonts" / "brand.ttf").write_bytes(Path(_installed_face("DejaVu Serif")).read_bytes())
    im = Image.new("RGBA", (60, 90), (0, 0, 0, 0))
    im.paste((200, 30, 30, 255), (5, 5, 55, 85))
    im.save(root / "images" / "a.png")
    (root / "market.json").write_text(json.dumps({"format": "adcraft-market/1", "slots": ["title", "font"],
                                                  "canvas": [320, 240]}))
    pd.DataFrame({"product_id": ["p1"], "title": ["Mug"], "category": ["mug"], "image": ["images/a.png"]}
                 ).to_parquet(root / "products.parquet")
    pd.DataFrame({
        "element_id": ["t1", "f_family", "f_file"],
        "slot": ["title", "font", "font"],
        "product_id": [None, None, None],
        "text": ["A fine mug", None, None],
        "value": [None, "DejaVu Sans", "fonts/brand.ttf"],
    }).to_parquet(root / "elements.parquet")
    return load_market(root)


def test_a_font_shipped_in_the_market_is_read_from_the_market_whatever_the_working_directory(
        font_market, tmp_path, monkeypatch):
    from adcraft.render.fonts import resolve_font

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "fonts").mkdir(parents=True)  # a different font at the same relative path
    (elsewhere / "fonts" / "brand.ttf").write_bytes(Path(_installed_face("DejaVu Sans Mono")).read_bytes())
    monkeypatch.chdir(elsewhere)
    renderer = MarketRenderer(font_market)
    spec = renderer.spec("p1", ["t1", "f_file"])
    assert Path(spec.font) == (font_market.root / "fonts" / "brand.ttf").resolve()
    assert resolve_font(spec.font, 20).getname()[0] == "DejaVu Serif"
    assert renderer.spec("p1", ["t1", "f_family"]).font == "DejaVu Sans"  # family names are unchanged
    shipped = renderer.render("p1", ["t1", "f_file"]).image
    family = renderer.render("p1", ["t1", "f_family"]).image
    assert shipped.tobytes() != family.tobytes()


def _with_font_element(market, value: str):
    """The market with one more font element, ``f_bad``, whose value is ``value`` (not validated)."""
    row = pd.DataFrame({"element_id": ["f_bad"], "slot": ["font"], "product_id": [None], "text": [None],
                        "value": [value]})
    market.elements = pd.concat([market.elements, row], ignore_index=True)
    return market


@pytest.mark.parametrize("kind", ["absolute", "parent", "symlink"])
def test_a_font_path_leaving_the_market_is_refused_naming_the_element(font_market, tmp_path, kind):
    outside = tmp_path / "outside.ttf"
    outside.write_bytes((font_market.root / "fonts" / "brand.ttf").read_bytes())
    value = {"absolute": str(outside), "parent": "../outside.ttf", "symlink": "fonts/link.ttf"}[kind]
    if kind == "symlink":
        (font_market.root / "fonts" / "link.ttf").symlink_to(outside)
    renderer = MarketRenderer(_with_font_element(font_market, value))
    with pytest.raises(InputError) as refused:
        renderer.render("p1", ["t1", "f_bad"])
    message = str(refused.value)
    assert "'f_bad'" in message and "\n" not in message
    assert {"absolute": "absolute", "parent": "'..'", "symlink": "symbolic link"}[kind] in message
