"""The diffusion background backend, run on CPU with a tiny random Stable Diffusion + ControlNet.

The tiny components are saved with ``save_pretrained`` in the backend's layout and loaded back through
its own loading path (``local_files_only``), so loading is tested along with rendering.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from adcraft.configuration import from_mapping
from adcraft.errors import InputError
from adcraft.evaluate.fidelity import product_fidelity
from adcraft.market import load_market
from adcraft.render.backend import RenderConfig
from adcraft.render.compositor import Compositor, CreativeSpec, Placement
from adcraft.render.diffusion import (
    DiffusionConfig,
    DiffusionRenderer,
    generation_size,
    inpainting_inputs,
    weights_problems,
)
from adcraft.render.from_market import MarketRenderer

CANVAS = (64, 64)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread (and leave the other cores to other tests)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    from adcraft.render.tiny_diffusion import write_tiny_diffusion_weights

    return write_tiny_diffusion_weights(tmp_path_factory.mktemp("diffusion-weights"), seed=0)


def _config(weights: Path, **kwargs) -> DiffusionConfig:
    return DiffusionConfig(weights_dir=str(weights), steps=2, resolution=64, **kwargs)


def _spec(product: Image.Image, **kwargs) -> CreativeSpec:
    fields = {"background": "warm beige studio", "template": "minimal"} | kwargs
    return CreativeSpec(product_image=product, **fields)


def _opaque_pixels(image: Image.Image, cutout: Image.Image, bbox) -> tuple[np.ndarray, np.ndarray]:
    shown = np.asarray(image.convert("RGB"))[bbox[1]:bbox[3], bbox[0]:bbox[2]]
    cut = np.asarray(cutout)
    opaque = cut[..., 3] == 255
    return shown[opaque], cut[..., :3][opaque]


def test_renders_end_to_end_at_the_canvas_size_with_the_product_unchanged(tiny_weights, product):
    spec = _spec(product)
    rendered = DiffusionRenderer(_config(tiny_weights)).render(spec, CANVAS)
    assert rendered.image.size == CANVAS and rendered.image.mode == "RGB"
    cutout, bbox = Compositor().product_cutout_resized(spec, CANVAS)
    assert rendered.product_bbox == bbox
    shown, expected = _opaque_pixels(rendered.image, cutout, bbox)
    assert len(expected) > 100 and np.array_equal(shown, expected)
    composited = np.asarray(Compositor().render(spec, CANVAS).image)
    assert not np.array_equal(np.asarray(rendered.image)[:, :4], composited[:, :4])  # a painted background


def test_a_placed_photo_lands_where_the_compositor_places_it_unchanged(tiny_weights, product):
    spec = _spec(product)
    spec.placement = Placement(0.6, 1.0, 1.0)
    rendered = DiffusionRenderer(_config(tiny_weights)).render(spec, CANVAS)
    cutout, bbox = Compositor().product_cutout_resized(spec, CANVAS)
    assert rendered.product_bbox == bbox != Compositor().product_cutout_resized(_spec(product), CANVAS)[1]
    shown, expected = _opaque_pixels(rendered.image, cutout, bbox)
    assert len(expected) > 50 and np.array_equal(shown, expected)


def test_a_seed_gives_the_same_image_and_another_seed_another_background(tiny_weights, product):
    spec = _spec(product)
    first = DiffusionRenderer(_config(tiny_weights, seed=0)).render(spec, CANVAS).image
    again = DiffusionRenderer(_config(tiny_weights, seed=0)).render(spec, CANVAS).image
    other = DiffusionRenderer(_config(tiny_weights, seed=1)).render(spec, CANVAS)
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.image.tobytes()
    cutout, bbox = Compositor().product_cutout_resized(spec, CANVAS)
    shown, expected = _opaque_pixels(other.image, cutout, bbox)
    assert np.array_equal(shown, expected)


def test_weights_are_the_saved_ones_loaded_from_the_folder(tiny_weights, monkeypatch):
    from safetensors.torch import load_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = DiffusionRenderer(_config(tiny_weights)).pipeline()
    saved = load_file(tiny_weights / "controlnet-canny" / "diffusion_pytorch_model.safetensors")
    loaded = pipe.controlnet.state_dict()
    assert saved and all(np.array_equal(saved[k].numpy(), loaded[k].numpy()) for k in saved)
    assert pipe.unet.config.in_channels == 4 and pipe.tokenizer.model_max_length == 16


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers' sigmas on numpy 2
def test_an_inpainting_unet_with_nine_input_channels_also_renders(tmp_path, product):
    pytest.importorskip("diffusers")
    from adcraft.render.tiny_diffusion import write_tiny_diffusion_weights

    weights = write_tiny_diffusion_weights(tmp_path / "inpaint", seed=1, inpainting_unet=True)
    spec = _spec(product, template="center")
    rendered = DiffusionRenderer(_config(weights, scheduler="UniPCMultistepScheduler")).render(spec, CANVAS)
    cutout, bbox = Compositor().product_cutout_resized(spec, CANVAS)
    shown, expected = _opaque_pixels(rendered.image, cutout, bbox)
    assert rendered.image.size == CANVAS and np.array_equal(shown, expected)


def test_inputs_mask_the_product_and_condition_on_its_edges(product):
    compositor, spec, canvas = Compositor(), _spec(product), (96, 64)
    cutout, bbox = compositor.product_cutout_resized(spec, canvas)
    size = generation_size(canvas, 48)
    config = DiffusionConfig(resolution=48, mask_grow_px=1)
    inputs = inpainting_inputs(cutout, bbox, canvas, size, "navy", config)
    assert size == (48, 32) and inputs.image.size == inputs.mask.size == inputs.control.size == size
    layer = Image.new("RGBA", canvas)
    layer.paste(cutout, bbox[:2])
    alpha = np.asarray(layer.resize(size, Image.Resampling.LANCZOS).getchannel("A"))
    mask, control = np.asarray(inputs.mask), np.asarray(inputs.control)
    product_px = alpha >= 128
    interior = product_px & np.roll(product_px, 2, 0) & np.roll(product_px, -2, 0) \
        & np.roll(product_px, 2, 1) & np.roll(product_px, -2, 1)
    assert interior.any() and (mask[interior] == 0).all()  # kept
    assert (mask[~product_px] == 255).all()  # repainted, and a little into the rim
    assert ((mask == 255) & product_px).any()
    edges = control[..., 0] > 0
    near = np.zeros_like(product_px)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            near |= np.roll(np.roll(alpha > 0, dy, 0), dx, 1)
    assert edges.any() and not (edges & ~near).any()  # the product's edges, none in the background


@pytest.mark.parametrize("template", ["banner", "left", "top"])
def test_text_layers_are_drawn_as_the_compositor_draws_them(product, template):
    compositor, canvas = Compositor(), (320, 320)
    spec = _spec(product, template=template, title="Keeps it cold all day", highlight="20% OFF")
    underneath = compositor.render(_spec(product, template=template), canvas).image
    boxes = compositor.draw_text(underneath, spec, canvas)
    expected = compositor.render(spec, canvas)
    assert boxes == expected.text_boxes and len(boxes) >= 2
    assert underneath.tobytes() == expected.image.tobytes()


def test_a_missing_folder_is_named_with_the_expected_layout(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # the layout is checked before diffusers is touched
    missing = tmp_path / "no-such-weights"
    with pytest.raises(InputError, match="no-such-weights") as caught:
        DiffusionRenderer(DiffusionConfig(weights_dir=str(missing)))
    message = str(caught.value)
    assert "stable-diffusion-v1-5" in message and "controlnet-canny" in message and "text_encoder" in message
    (tmp_path / "partial" / "stable-diffusion-v1-5").mkdir(parents=True)
    with pytest.raises(InputError, match="unet is missing"):
        DiffusionRenderer(DiffusionConfig(weights_dir=str(tmp_path / "partial")))
    with pytest.raises(InputError, match="weights_dir is not set"):
        DiffusionRenderer(DiffusionConfig())


def test_a_missing_controlnet_is_named(tiny_weights, tmp_path):
    config = DiffusionConfig(weights_dir=str(tiny_weights), controlnet="controlnet-depth")
    assert weights_problems(config) == [f"{tiny_weights / 'controlnet-depth'} is missing"]


def test_without_diffusers_the_error_says_how_to_install_it(tiny_weights, product, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    renderer = DiffusionRenderer(_config(tiny_weights))
    with pytest.raises(InputError, match=r"pip install 'adcraft\[diffusion\]'"):
        renderer.render(_spec(product), CANVAS)


@pytest.mark.parametrize("kwargs", [{"resolution": 100}, {"device": "tpu"}, {"dtype": "int8"}, {"steps": 0},
                                    {"strength": 0.0}, {"prompt_template": "no placeholder"}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(InputError):
        DiffusionConfig(**kwargs)


def test_yaml_keys_are_the_fields_nested_ones_included():
    config = from_mapping(RenderConfig, {"backend": "diffusion", "diffusion": {
        "weights_dir": "/models", "steps": 4, "canny": {"low": 50, "high": 150}}})
    assert config.diffusion.steps == 4 and config.diffusion.canny.low == 50
    assert config.diffusion.prompt("") == "a clean studio background"
    assert generation_size((600, 400), 512) == (512, 344)


def test_the_config_switch_makes_market_renders_diffusion_renders_that_keep_the_product(
        tiny_weights, tiny_market_dir, tmp_path):
    market = load_market(tiny_market_dir)
    creative = market.creatives.iloc[0]
    pid, combo = creative["product_id"], list(creative["elements"])
    config = RenderConfig(backend="diffusion", diffusion=_config(tiny_weights))
    renderer = MarketRenderer(market, config=config)
    rendered = renderer.render(pid, combo)
    plain = MarketRenderer(market).render(pid, combo)
    assert isinstance(renderer.backend, DiffusionRenderer)
    assert rendered.image.size == tuple(market.config.canvas) and rendered.product_bbox == plain.product_bbox
    assert rendered.image.tobytes() != plain.image.tobytes()
    rendered.image.save(tmp_path / "creative.png")
    proposals = pd.DataFrame({"product_id": [pid], "rank": [1], "elements": [combo], "image": ["creative.png"],
                              "product_bbox": [list(rendered.product_bbox)]})
    fidelity = product_fidelity(market, proposals, tmp_path, tolerance=0, renderer=renderer)
    assert bool(fidelity["passed"].iloc[0]) and fidelity["max_abs_diff"].iloc[0] == 0
