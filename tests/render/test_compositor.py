from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from adcraft.errors import InputError
from adcraft.render.compositor import (
    Compositor,
    CompositorConfig,
    CreativeSpec,
    Placement,
    placements_of,
    render_to_png,
)
from adcraft.render.templates import TEMPLATES, boxes_overlap, get_template, to_pixels

CANVASES = [(512, 512), (300, 600), (640, 320)]
TEXT_TEMPLATES = [name for name, t in TEMPLATES.items() if t.title is not None]
LONG_TITLE = ("Ice cold for 24 hours, hot for 12: the only bottle you will ever need on the trail, "
              "at the desk and at the gym, made from recycled steel. ") * 3
LONG_TITLE = LONG_TITLE[:300]


def _spec(product: Image.Image, **slots: str | None) -> CreativeSpec:
    values: dict[str, str | None] = {"title": "Hydrate in style", "highlight": "20% OFF",
                                     "background": "warm beige studio, soft shadow, vignette"}
    values.update(slots)
    return CreativeSpec(product_image=product, **values)


def _inside_any(shape: tuple[int, int], boxes: tuple[tuple[int, int, int, int], ...]) -> np.ndarray:
    inside = np.zeros(shape, dtype=bool)
    for left, top, right, bottom in boxes:
        inside[top:bottom, left:right] = True
    return inside


@pytest.mark.parametrize("canvas", CANVASES)
@pytest.mark.parametrize("template", ["center", "left", "banner"])
def test_output_has_the_canvas_size(product: Image.Image, canvas: tuple[int, int], template: str) -> None:
    rendered = Compositor().render(_spec(product, template=template), canvas)
    assert rendered.image.size == canvas and rendered.image.mode == "RGB"
    left, top, right, bottom = rendered.product_bbox
    assert 0 <= left < right <= canvas[0] and 0 <= top < bottom <= canvas[1]


@pytest.mark.parametrize("canvas", CANVASES)
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_template_text_boxes_never_touch_the_product_box(template: str, canvas: tuple[int, int]) -> None:
    t = get_template(template)
    product = to_pixels(t.product, canvas)
    for box in (t.title, t.badge, t.band):
        if box is None:
            continue
        pixels = to_pixels(box, canvas)
        assert not boxes_overlap(pixels, product)
        assert 0 <= pixels[0] <= pixels[2] <= canvas[0] and 0 <= pixels[1] <= pixels[3] <= canvas[1]


@pytest.mark.parametrize("template", sorted(TEMPLATES))
@pytest.mark.parametrize("canvas", [(512, 512), (300, 600)])
def test_product_pixels_are_only_scaled(product: Image.Image, template: str, canvas: tuple[int, int]) -> None:
    # a low-contrast requested colour forces plates; the prompt asks for a shadow and a vignette
    spec = _spec(product, template=template, title=LONG_TITLE, text_color="#f5e9d8",
                 background="cream linen, soft shadow, vignette, bokeh")
    compositor = Compositor()
    rendered = compositor.render(spec, canvas)
    resized, bbox = compositor.product_cutout_resized(spec, canvas)
    assert bbox == rendered.product_bbox
    left, top, right, bottom = bbox
    out = np.asarray(rendered.image)[top:bottom, left:right]
    cut = np.asarray(resized)
    opaque = cut[..., 3] == 255
    assert opaque.mean() > 0.5
    assert np.array_equal(out[opaque], cut[..., :3][opaque])


@pytest.mark.parametrize("template", TEXT_TEMPLATES)
@pytest.mark.parametrize("canvas", CANVASES)
def test_long_text_stays_in_its_boxes(product: Image.Image, template: str, canvas: tuple[int, int]) -> None:
    compositor = Compositor()
    with_text = compositor.render(_spec(product, template=template, title=LONG_TITLE,
                                        highlight="Only today: buy one, get one free " * 3), canvas)
    without = compositor.render(_spec(product, template=template, title=None, highlight=None), canvas)
    assert without.text_boxes == ()
    changed = np.any(np.asarray(with_text.image) != np.asarray(without.image), axis=2)
    assert changed.any()
    assert not (changed & ~_inside_any(changed.shape, with_text.text_boxes)).any()
    for box in with_text.text_boxes:
        assert not boxes_overlap(box, with_text.product_bbox)
        assert 0 <= box[0] < box[2] <= canvas[0] and 0 <= box[1] < box[3] <= canvas[1]


TEXTS = st.text(st.one_of(st.characters(exclude_categories=()), st.sampled_from(list("\u200b\u200f\r\n\x85\u0301 W"))),
                max_size=60)


@settings(max_examples=25, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # the product is never modified
@given(title=TEXTS, highlight=TEXTS, template=st.sampled_from(TEXT_TEMPLATES))
def test_any_title_and_highlight_render_inside_their_boxes(product: Image.Image, title: str, highlight: str,
                                                           template: str) -> None:
    """Whatever the text, a creative renders, and text changes pixels only inside the boxes it reports."""
    compositor, canvas = Compositor(), (160, 160)
    with_text = compositor.render(_spec(product, template=template, title=title, highlight=highlight), canvas)
    without = compositor.render(_spec(product, template=template, title=None, highlight=None), canvas)
    changed = np.any(np.asarray(with_text.image) != np.asarray(without.image), axis=2)
    assert not (changed & ~_inside_any(changed.shape, with_text.text_boxes)).any()


def test_minimal_template_draws_no_text(product: Image.Image) -> None:
    a = Compositor().render(_spec(product, template="minimal"))
    b = Compositor().render(_spec(product, template="minimal", title=None, highlight=None))
    assert a.text_boxes == () and a.image.tobytes() == b.image.tobytes()


def test_unknown_template_renders_as_center_with_a_warning(product: Image.Image,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="adcraft.render.templates"):
        odd = Compositor().render(_spec(product, template="diagonal-split"))
    assert "diagonal-split" in caplog.text
    assert odd.image.tobytes() == Compositor().render(_spec(product, template="center")).image.tobytes()


def test_unreadable_text_colour_gets_a_plate(product: Image.Image) -> None:
    spec = _spec(product, background="white", highlight=None, text_color="white")
    rendered = Compositor().render(spec, (400, 400))
    (left, top, right, bottom), = rendered.text_boxes
    region = np.asarray(rendered.image)[top:bottom, left:right].astype(int)
    dark = region.sum(axis=2) < 3 * 200  # plate pixels under and around white glyphs
    assert dark.mean() > 0.2
    auto = Compositor().render(_spec(product, background="white", highlight=None), (400, 400))
    assert np.asarray(auto.image)[top:bottom, left:right].min() < 60  # automatic dark text, no plate


def test_badge_fill_contrasts_with_the_background(product: Image.Image) -> None:
    for background, expect_dark in (("white", True), ("black", False)):
        rendered = Compositor().render(_spec(product, background=background, title=None, template="center"))
        (left, top, right, bottom), = rendered.text_boxes
        region = np.asarray(rendered.image)[top:bottom, left:right].reshape(-1, 3).astype(int)
        fill_share = ((region.sum(axis=1) < 150) if expect_dark else (region.sum(axis=1) > 600)).mean()
        assert fill_share > 0.1  # the pill covers part of its box


def test_photo_on_white_is_cut_out_before_compositing(photo_on_white: Image.Image) -> None:
    rendered = Compositor().render(_spec(photo_on_white, background="navy", title=None, highlight=None))
    left, top, right, bottom = rendered.product_bbox
    corner = np.asarray(rendered.image)[top, left].astype(int)
    assert corner[2] > corner[0] + 50  # navy shows where the photo's white background was


def test_missing_font_family_renders(product: Image.Image) -> None:
    rendered = Compositor().render(_spec(product, font="Not A Real Font Family"))
    assert len(rendered.text_boxes) == 2


@pytest.mark.parametrize("text", ["\u200b\u200b", "\u200f", "\ufeff\u2060 ", "\r\n"])
@pytest.mark.parametrize("text_color", [None, "#ffffff"])
def test_title_with_nothing_visible_renders_without_text(product: Image.Image, text: str,
                                                         text_color: str | None) -> None:
    """A title of zero-width spaces (or other invisible characters) renders as the creative without that text."""
    rendered = Compositor().render(_spec(product, title=text, highlight=text, text_color=text_color))
    plain = Compositor().render(_spec(product, title=None, highlight=None))
    assert rendered.text_boxes == () and rendered.image.tobytes() == plain.image.tobytes()


def test_same_spec_gives_identical_png_bytes(product: Image.Image, tmp_path: Path) -> None:
    spec = _spec(product, background="pastel pink marble, shadow", template="left", font="serif")
    first = render_to_png(spec, tmp_path / "a.png")
    render_to_png(spec, tmp_path / "out" / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "out" / "b.png").read_bytes()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.png", "b.png"]  # no temp files
    with Image.open(tmp_path / "a.png") as png:
        assert png.size == first.image.size


def test_failed_write_leaves_no_file(product: Image.Image, tmp_path: Path) -> None:
    with pytest.raises(InputError):
        render_to_png(_spec(product), tmp_path / "x.png", canvas=(5, 5))
    assert list(tmp_path.iterdir()) == []


def test_product_cache_follows_image_content(product: Image.Image) -> None:
    compositor = Compositor()
    spec = _spec(product, title=None, highlight=None, background="white")
    before = compositor.render(spec).image
    pixels = np.asarray(product).copy()
    pixels[..., :3] = (255, 0, 0)
    product.paste(Image.fromarray(pixels))  # the same object, new pixels
    after = compositor.render(spec).image
    assert before.tobytes() != after.tobytes()
    left, top, right, bottom = compositor.product_cutout_resized(spec)[1]
    assert tuple(np.asarray(after)[(top + bottom) // 2, (left + right) // 2]) == (255, 0, 0)


def test_from_slots_keeps_unknown_slots_in_extra(product: Image.Image) -> None:
    spec = CreativeSpec.from_slots(product, {"title": "Hi", "template": "left", "cta": "Buy now", "mood": 3})
    assert spec.title == "Hi" and spec.template == "left"
    assert spec.extra == {"cta": "Buy now", "mood": 3}


@pytest.mark.parametrize("canvas", [(10, 512), (512, 0), ("wide", 3)])
def test_bad_canvas_raises_input_error(product: Image.Image, canvas: tuple[int, int]) -> None:
    with pytest.raises(InputError):
        Compositor().render(_spec(product), canvas)


@pytest.mark.parametrize("kwargs", [{"min_font_px": 0}, {"min_font_px": 80}, {"shadow_strength": 2.0},
                                    {"badge_fill": "not-a-colour"}, {"product_margin": 0.6}])
def test_bad_config_raises_input_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        CompositorConfig(**kwargs)  # type: ignore[arg-type]


# -- placement: where the photo sits in the product box -----------------------------------------------------


def _inset_box(template: str, canvas: tuple[int, int]) -> tuple[int, int, int, int]:
    """The template's product box less the compositor's margin: the space a placement moves the photo in."""
    left, top, right, bottom = to_pixels(get_template(template).product, canvas)
    margin = CompositorConfig().product_margin
    mx, my = round((right - left) * margin), round((bottom - top) * margin)
    return left + mx, top + my, right - mx, bottom - my


def test_default_placement_draws_what_a_spec_without_one_draws(product: Image.Image) -> None:
    compositor = Compositor()
    plain = compositor.render(_spec(product, template="left"))
    placed = compositor.render(CreativeSpec(**{**_spec(product, template="left").__dict__,
                                               "placement": Placement(1.0, 0.5, 0.5)}))
    assert placed.product_bbox == plain.product_bbox
    assert placed.image.tobytes() == plain.image.tobytes()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scale=st.floats(0.3, 1.0), x=st.floats(0.0, 1.0), y=st.floats(0.0, 1.0),
       template=st.sampled_from(sorted(TEMPLATES)))
def test_any_placement_keeps_the_photo_inside_its_box_and_unaltered(product: Image.Image, scale: float, x: float,
                                                                    y: float, template: str) -> None:
    spec = _spec(product, template=template, title=LONG_TITLE)
    spec.placement = Placement(scale, x, y)
    compositor = Compositor()
    rendered = compositor.render(spec)
    resized, bbox = compositor.product_cutout_resized(spec)
    assert bbox == rendered.product_bbox
    inset = _inset_box(template, (512, 512))
    assert inset[0] <= bbox[0] < bbox[2] <= inset[2] and inset[1] <= bbox[1] < bbox[3] <= inset[3]
    left, top, right, bottom = bbox
    cut = np.asarray(resized)
    opaque = cut[..., 3] == 255
    assert np.array_equal(np.asarray(rendered.image)[top:bottom, left:right][opaque], cut[..., :3][opaque])


def test_placement_scales_the_photo_and_moves_it_to_the_edges(product: Image.Image) -> None:
    compositor = Compositor()

    def box(placement: Placement) -> tuple[int, int, int, int]:
        spec = _spec(product, template="center")
        spec.placement = placement
        return compositor.product_cutout_resized(spec)[1]

    full, half = box(Placement()), box(Placement(0.5))
    assert abs((half[3] - half[1]) - 0.5 * (full[3] - full[1])) <= 1  # the photo's height halves
    inset = _inset_box("center", (512, 512))
    low, high = box(Placement(0.5, 0.0, 1.0)), box(Placement(0.5, 1.0, 0.0))
    assert low[0] == inset[0] and low[3] == inset[3]  # left, bottom
    assert high[2] == inset[2] and high[1] == inset[1]  # right, top
    centre = box(Placement(0.5))
    assert abs((centre[0] - inset[0]) - (inset[2] - centre[2])) <= 1


@pytest.mark.parametrize("kwargs", [{"scale": 0.1}, {"scale": 1.2}, {"x": -0.1}, {"y": 1.5},
                                    {"x": float("nan")}, {"scale": "big"}])
def test_bad_placement_raises_input_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        Placement(**kwargs)  # type: ignore[arg-type]


def test_placement_reads_a_creatives_row_and_defaults_where_it_records_none() -> None:
    import pandas as pd

    table = pd.DataFrame({"product_scale": [0.7, float("nan")], "product_x": [0.5, float("nan")],
                          "product_y": [1.0, float("nan")]})
    assert placements_of(table) == [Placement(0.7, 0.5, 1.0), Placement()]
    assert placements_of(pd.DataFrame({"product_id": ["a", "b"]})) == [Placement(), Placement()]
    assert Placement(0.85, 0.2, 0.9).as_columns() == {"product_scale": 0.85, "product_x": 0.2, "product_y": 0.9}
    assert Placement.from_row(Placement(0.85, 0.2, 0.9).as_columns()) == Placement(0.85, 0.2, 0.9)
