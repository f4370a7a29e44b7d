"""The renderer switch: the compositor stays the default and its pixels do not change; config selects the backend."""

from __future__ import annotations

import hashlib

import pytest

from adcraft.configuration import from_mapping, load_config
from adcraft.errors import InputError
from adcraft.market import load_market
from adcraft.render.backend import RenderConfig, build_renderer
from adcraft.render.compositor import Compositor, CompositorConfig, CreativeSpec
from adcraft.render.diffusion import DiffusionConfig, DiffusionRenderer
from adcraft.render.from_market import MarketRenderer

# SHA-256 of (mode, size, pixels) of compositor renders without text (so without system fonts), recorded
# before the backend switch existed: the default path must keep producing exactly these pictures.
RECORDED = {
    ("warm beige studio, soft shadow, vignette", "center", (96, 96)):
        "39365044b662c43805502d3385e01c706c1639228a07d5b2902000084c68cef8",
    ("pastel pink marble", "left", (120, 80)):
        "39f252329fa6fde5352517960d27bb71cdf5bac86462add1b1d88ea66902e7ac",
    ("#1e3a5f to #f0c27b gradient", "banner", (64, 64)):
        "6724c7648a9e316469dc0be1422335a9746e4f6940fa074d273a4e9852cb09bb",
    ("dark wooden table, bokeh", "minimal", (80, 100)):
        "50d8129e14430843fb0332ddd56f1a54739bfcad0f909bfc23f738e49026d6af",
}


def _digest(image) -> str:
    return hashlib.sha256(image.mode.encode() + repr(image.size).encode() + image.tobytes()).hexdigest()


@pytest.mark.parametrize(("background", "template", "canvas"), list(RECORDED))
def test_the_default_backend_renders_the_recorded_pixels(product, background, template, canvas):
    renderer = build_renderer(RenderConfig())
    spec = CreativeSpec(product_image=product, background=background, template=template)
    assert _digest(renderer.render(spec, canvas).image) == RECORDED[(background, template, canvas)]


def test_market_renders_equal_the_compositor_s_bit_for_bit(tiny_market_dir):
    market = load_market(tiny_market_dir)
    default, compositor = MarketRenderer(market), Compositor()
    assert isinstance(default.backend, Compositor)
    for pid, combo in list(zip(market.creatives["product_id"], market.creatives["elements"]))[:4]:
        expected = compositor.render(default.spec(pid, list(combo)), tuple(market.config.canvas)).image
        assert default.render(pid, list(combo)).image.tobytes() == expected.tobytes()


def test_the_compositor_settings_in_the_config_are_used_unless_a_compositor_is_given(tiny_market_dir):
    market = load_market(tiny_market_dir)
    pid, combo = market.creatives["product_id"].iloc[0], list(market.creatives["elements"].iloc[0])
    seeded = CompositorConfig(seed=7, shadow_strength=0.0)
    configured = MarketRenderer(market, config=RenderConfig(compositor=seeded))
    expected = Compositor(seeded).render(configured.spec(pid, combo), tuple(market.config.canvas)).image
    assert configured.render(pid, combo).image.tobytes() == expected.tobytes()
    given = Compositor()
    assert MarketRenderer(market, given, RenderConfig(compositor=seeded)).compositor is given


def _fake_weights(root):
    """Empty files in the expected layout: enough for the layout check (weights load only on first render)."""
    for part in ("unet", "vae", "text_encoder"):
        (root / "stable-diffusion-v1-5" / part).mkdir(parents=True)
        (root / "stable-diffusion-v1-5" / part / "config.json").write_text("{}")
        (root / "stable-diffusion-v1-5" / part / "model.safetensors").write_bytes(b"")
    (root / "stable-diffusion-v1-5" / "tokenizer").mkdir()
    (root / "stable-diffusion-v1-5" / "tokenizer" / "tokenizer.json").write_text("{}")
    (root / "stable-diffusion-v1-5" / "scheduler").mkdir()
    (root / "stable-diffusion-v1-5" / "scheduler" / "scheduler_config.json").write_text("{}")
    (root / "controlnet-canny").mkdir()
    (root / "controlnet-canny" / "config.json").write_text("{}")
    (root / "controlnet-canny" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    return root


def test_a_yaml_file_selects_the_diffusion_backend(tmp_path):
    weights = _fake_weights(tmp_path / "weights")
    path = tmp_path / "render.yaml"
    path.write_text(f"backend: diffusion\ncompositor:\n  seed: 3\ndiffusion:\n  weights_dir: {weights}\n  steps: 8\n"
                    "  seed: 42\n  device: cpu\n")
    config = load_config(RenderConfig, path)
    renderer = build_renderer(config)
    assert isinstance(renderer, DiffusionRenderer)
    assert renderer.config == DiffusionConfig(weights_dir=str(weights), steps=8, seed=42, device="cpu")
    assert renderer.compositor.config.seed == 3


def test_the_diffusion_backend_without_weights_is_refused_when_the_renderer_is_made(tmp_path):
    config = RenderConfig(backend="diffusion", diffusion=DiffusionConfig(weights_dir=str(tmp_path / "absent")))
    with pytest.raises(InputError, match="absent"):
        build_renderer(config)


def test_unknown_backends_and_settings_are_refused():
    with pytest.raises(InputError, match="compositor"):
        RenderConfig(backend="gan")
    with pytest.raises(InputError, match="unknown setting"):
        from_mapping(RenderConfig, {"backend": "diffusion", "diffusion": {"step": 4}})
