from __future__ import annotations

import colorsys

import numpy as np
import pytest

from adcraft.errors import InputError
from adcraft.render.background import DEFAULT_COLOR, draw_background, parse_background, parse_color
from adcraft.render.text_layout import relative_luminance


def _hls(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return colorsys.rgb_to_hls(*(c / 255 for c in rgb))


def _blueness(rgb: tuple[int, int, int]) -> float:
    return rgb[2] - (rgb[0] + rgb[1]) / 2


@pytest.mark.parametrize("prompt", ["#ff0000", "#F00", "red", "background: #ff0000, studio"])
def test_red_from_hex_and_words(prompt: str) -> None:
    assert parse_background(prompt).colors[0] == (255, 0, 0)


def test_navy_is_darker_and_bluer_than_light_blue() -> None:
    navy = parse_background("navy").colors[0]
    light_blue = parse_background("light blue").colors[0]
    assert relative_luminance(navy) < relative_luminance(light_blue)
    assert _blueness(navy) > _blueness(light_blue)


def test_modifiers_move_colours_the_documented_way() -> None:
    pink = parse_background("pink").colors[0]
    pastel = parse_background("pastel pink").colors[0]
    assert _hls(pastel)[1] > _hls(pink)[1] and _hls(pastel)[2] < _hls(pink)[2]
    assert _hls(parse_background("dark red").colors[0])[1] < _hls((255, 0, 0))[1]
    assert _hls(parse_background("vivid sage").colors[0])[2] > _hls(parse_background("sage").colors[0])[2]
    warm, cool = parse_background("warm grey").colors[0], parse_background("cool grey").colors[0]
    assert warm[0] > warm[2] and cool[2] > cool[0]


def test_ad_colour_words_and_compound_names() -> None:
    beige = parse_background("warm beige studio, soft shadow")
    assert beige.kind == "solid" and beige.shadow
    r, g, b = beige.colors[0]
    assert r > g > b  # a warm, light neutral
    assert parse_background("sage green").colors == parse_background("sage").colors
    assert parse_background("off-white").colors[0] == parse_background("offwhite").colors[0]


def test_unknown_words_are_ignored_and_no_colour_is_light_grey() -> None:
    assert parse_background("zyxxy qwerty, studio") == parse_background("")
    assert parse_background("").colors == (DEFAULT_COLOR,)
    assert relative_luminance(DEFAULT_COLOR) > 0.7


def test_two_hex_codes_with_to_make_a_gradient() -> None:
    style = parse_background("#1e3a5f to #f0c27b gradient")
    assert style.kind == "gradient"
    assert style.colors == ((0x1E, 0x3A, 0x5F), (0xF0, 0xC2, 0x7B))
    image = np.asarray(draw_background(style, (64, 48)), dtype=int)
    assert np.abs(image[0].mean(axis=0) - (0x1E, 0x3A, 0x5F)).max() <= 6
    assert np.abs(image[-1].mean(axis=0) - (0xF0, 0xC2, 0x7B)).max() <= 6


def test_to_between_colours_is_a_gradient_but_and_is_not() -> None:
    assert parse_background("navy to white").kind == "gradient"
    assert parse_background("navy and white").kind == "solid"


@pytest.mark.parametrize("prompt", ["gradient", "blue fade", "mint ombre"])
def test_gradient_top_and_bottom_rows_differ(prompt: str) -> None:
    image = np.asarray(draw_background(parse_background(prompt), (40, 60)), dtype=int)
    assert np.abs(image[0] - image[-1]).sum(axis=1).min() > 10


@pytest.mark.parametrize(("prompt", "texture"), [
    ("pastel pink marble", "marble"), ("dark wooden table", "wood"), ("white linen texture", "linen"),
    ("grey concrete", "concrete"), ("stone", "stone"), ("cream paper", "paper"),
    ("navy and white stripes", "stripes"), ("pink polka dots", "dots"), ("soft bokeh", "bokeh"),
])
def test_textures_are_recognised_and_drawn_with_detail(prompt: str, texture: str) -> None:
    style = parse_background(prompt)
    assert style.kind == "texture" and style.texture == texture
    image = np.asarray(draw_background(style, (64, 64), seed=1), dtype=float)
    assert image.std(axis=(0, 1)).max() > 0.5  # not a flat fill


def test_texture_colours_follow_words() -> None:
    pink_marble = parse_background("pastel pink marble").colors[0]
    assert pink_marble[0] > pink_marble[1]
    assert sum(parse_background("dark wooden table").colors[0]) < sum(parse_background("wooden table").colors[0])
    assert parse_background("navy and white stripes").colors == ((0, 0, 128), (255, 255, 255))
    linen = parse_background("white linen texture with soft bokeh")
    assert linen.texture == "linen" and linen.bokeh and linen.colors[0] == (255, 255, 255)


def test_effects_and_negation() -> None:
    assert parse_background("soft shadow").shadow
    assert not parse_background("no shadow").shadow
    style = parse_background("white, vignette")
    image = np.asarray(draw_background(style, (60, 60)), dtype=int)
    assert image[0, 0].sum() < image[30, 30].sum()
    spot = np.asarray(draw_background(parse_background("black spotlight"), (60, 60)), dtype=int)
    assert spot[25, 30].sum() > spot[0, 0].sum() + 30


def test_drawing_is_deterministic_per_seed_and_sized_width_by_height() -> None:
    style = parse_background("grey concrete")
    a = draw_background(style, (30, 60), seed=3)
    b = draw_background(style, (30, 60), seed=3)
    c = draw_background(style, (30, 60), seed=4)
    assert a.size == (30, 60) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    a.paste((0, 0, 0), (0, 0, 30, 60))  # callers own their copy: the cache is untouched
    assert draw_background(style, (30, 60), seed=3).tobytes() == b.tobytes()


def test_parse_color() -> None:
    assert parse_color("navy") == (0, 0, 128)
    assert parse_color("#00FF00") == (0, 255, 0)
    assert parse_color("rgb(1, 2, 3)") == (1, 2, 3)
    assert parse_color("blurple") is None and parse_color("") is None


def test_bad_size_raises_input_error() -> None:
    with pytest.raises(InputError):
        draw_background(parse_background("red"), (0, 10))
