"""The diffusion background backend: Stable Diffusion 1.5 + a Canny ControlNet paint around the product.

CAIG (arXiv 2502.06823, WWW 2025) renders a background prompt by inpainting around a fixed product:
the product cut-out is placed on the canvas, the inpainting mask is its inverted alpha, dilated (the
repainted area reaches a few pixels into the product's rim), the ControlNet is conditioned on the
Canny edges of the product, and one fixed seed serves every render, so that two candidates differ
only by their prompt. Here:

1. the product is placed exactly as the compositor places it (same template box, margin, scaling:
   :meth:`Compositor.product_cutout_resized`);
2. the model works at ``resolution`` pixels on the canvas's long side (a multiple of 8, the other
   side following the canvas's aspect); its input image is the compositor's procedural drawing of
   the prompt with the product on it (it matters only when ``strength`` < 1), the mask is white
   where the background is repainted, and the condition is the product's Canny edges
   (:mod:`adcraft.render.canny`), white on black;
3. the generated picture is resized to the canvas and the product's own pixels are pasted back
   with its alpha, as the compositor pastes them, so the product is unaltered by construction
   (:mod:`adcraft.evaluate.fidelity` holds); the title and highlight are then drawn as the
   compositor draws them.

Weights are read only from a local folder (``local_files_only=True``; nothing is downloaded), laid
out as :data:`WEIGHTS_LAYOUT` says. ``diffusers`` and ``transformers`` are the optional extra
``adcraft[diffusion]``; they are imported when a pipeline is first needed.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from PIL import Image, ImageFilter

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.render.background import draw_background, parse_background
from adcraft.render.canny import CannyConfig, canny_edges
from adcraft.render.compositor import Compositor, CreativeSpec, RenderedCreative
from adcraft.render.templates import PixelBox

INSTALL_HINT = "pip install 'adcraft[diffusion]'"
BASE_PARTS: tuple[str, ...] = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHTS_LAYOUT = (
    "<weights_dir>/<base_model>/{unet,vae,text_encoder}/ (config.json + weights), <base_model>/tokenizer/ "
    "(vocab.json + merges.txt, or tokenizer.json), <base_model>/scheduler/ (scheduler_config.json), and "
    "<weights_dir>/<controlnet>/ (config.json + weights); by default <base_model> = stable-diffusion-v1-5 "
    "and <controlnet> = controlnet-canny, e.g. local copies of stable-diffusion-v1-5 and "
    "lllyasviel/sd-controlnet-canny"
)
DEVICES = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
Dtype = Literal["auto", "float32", "float16", "bfloat16"]
DTYPES: tuple[str, ...] = get_args(Dtype)
_SAMPLING = threading.Lock()  # loaded pipelines are shared between renderers and are not thread-safe


@dataclass(frozen=True)
class DiffusionConfig:
    """Settings of the diffusion background backend.

    weights_dir: local folder holding ``base_model`` and ``controlnet`` (see :data:`WEIGHTS_LAYOUT`).
    variant: weights variant to load (``"fp16"`` for ``*.fp16.safetensors``), None for the plain files.
    seed: the one seed of every render (CAIG: candidates then differ only by their prompt).
    steps / guidance_scale / negative_prompt: the sampler's steps, classifier-free guidance and what to avoid.
    controlnet_scale: weight of the ControlNet's residuals (``controlnet_conditioning_scale``).
    strength: 1 paints the background from noise; below 1 it starts from the compositor's drawing of the prompt.
    resolution: pixels on the long side the model paints at (a multiple of 8; 512 for SD 1.5).
    mask_grow_px: how far (at ``resolution``) the repainted area reaches into the product's rim.
    prompt_template: the text prompt, ``{prompt}`` being the background element's text;
    empty_prompt stands in for a creative without one.
    scheduler: a diffusers scheduler class name (e.g. ``UniPCMultistepScheduler``) built from the
    folder's scheduler config; None uses the folder's own class.
    device: ``auto`` (cuda when available, else cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    dtype: ``auto`` (float16 on cuda, else float32), ``float32``, ``float16`` or ``bfloat16``.
    canny: the edge detector of the ControlNet's condition image.
    """

    weights_dir: str | None = None
    base_model: str = "stable-diffusion-v1-5"
    controlnet: str = "controlnet-canny"
    variant: str | None = None
    seed: int = 0
    steps: int = 20
    guidance_scale: float = 7.5
    negative_prompt: str = "text, letters, watermark, logo, lowres, blurry, distorted, extra objects"
    controlnet_scale: float = 1.0
    strength: float = 1.0
    resolution: int = 512
    mask_grow_px: int = 4
    prompt_template: str = "{prompt}"
    empty_prompt: str = "a clean studio background"
    scheduler: str | None = None
    device: str = "auto"
    dtype: Dtype = "auto"
    canny: CannyConfig = field(default_factory=CannyConfig)

    def __post_init__(self) -> None:
        check_config(self)
        if self.steps < 1:
            raise InputError(f"DiffusionConfig.steps must be >= 1, got {self.steps}")
        if self.guidance_scale < 0 or self.controlnet_scale < 0:
            raise InputError("DiffusionConfig.guidance_scale and controlnet_scale must be >= 0")
        if not 0.0 < self.strength <= 1.0:
            raise InputError(f"DiffusionConfig.strength must lie in (0, 1], got {self.strength}")
        if self.resolution < 32 or self.resolution % 8:
            raise InputError(f"DiffusionConfig.resolution must be a multiple of 8, >= 32; got {self.resolution}")
        if self.mask_grow_px < 0:
            raise InputError(f"DiffusionConfig.mask_grow_px must be >= 0, got {self.mask_grow_px}")
        if "{prompt}" not in self.prompt_template:
            raise InputError(f"DiffusionConfig.prompt_template must contain {{prompt}}, got {self.prompt_template!r}")
        if not DEVICES.match(self.device):
            raise InputError(f"DiffusionConfig.device must be auto, cpu, cuda, cuda:N or mps; got {self.device!r}")
        if self.dtype not in DTYPES:
            raise InputError(f"DiffusionConfig.dtype must be one of {list(DTYPES)}, got {self.dtype!r}")

    def prompt(self, background: str | None) -> str:
        """The text prompt for a creative whose background element reads ``background``."""
        text = (background or "").strip() or self.empty_prompt
        return self.prompt_template.replace("{prompt}", text)


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def weights_problems(config: DiffusionConfig) -> list[str]:
    """What is missing from ``config.weights_dir`` for :data:`WEIGHTS_LAYOUT`; empty when it is complete."""
    if not config.weights_dir:
        return ["DiffusionConfig.weights_dir is not set"]
    root = Path(config.weights_dir).expanduser()
    if not root.is_dir():
        return [f"weights folder {root} does not exist"]
    base, problems = root / config.base_model, []
    if not base.is_dir():
        problems.append(f"{base} is missing")
    else:
        for part in BASE_PARTS:
            folder = base / part
            if not folder.is_dir():
                problems.append(f"{folder} is missing")
            elif part == "tokenizer":
                if not ((folder / "tokenizer.json").is_file() or
                        ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file())):
                    problems.append(f"{folder} holds neither tokenizer.json nor vocab.json + merges.txt")
            elif part == "scheduler":
                if not (folder / "scheduler_config.json").is_file():
                    problems.append(f"{folder / 'scheduler_config.json'} is missing")
            elif not ((folder / "config.json").is_file() and _has_weights(folder)):
                problems.append(f"{folder} lacks config.json or a weights file (*.safetensors, *.bin)")
    controlnet = root / config.controlnet
    if not controlnet.is_dir():
        problems.append(f"{controlnet} is missing")
    elif not ((controlnet / "config.json").is_file() and _has_weights(controlnet)):
        problems.append(f"{controlnet} lacks config.json or a weights file (*.safetensors, *.bin)")
    return problems


def check_weights(config: DiffusionConfig) -> tuple[Path, Path]:
    """The base model's and the ControlNet's folders; :class:`InputError` naming what is missing otherwise."""
    problems = weights_problems(config)
    if problems:
        raise InputError(
            f"the diffusion backend cannot find its weights: {'; '.join(problems)}. Expected layout: "
            f"{WEIGHTS_LAYOUT}. Weights are never downloaded: copy them there (or point weights_dir at them)."
        )
    root = Path(config.weights_dir or "").expanduser()
    return root / config.base_model, root / config.controlnet


def import_diffusion() -> tuple[Any, Any]:
    """The ``diffusers`` and ``transformers`` modules, or an :class:`InputError` saying how to install them."""
    try:
        import diffusers
        import transformers
    except ImportError as exc:
        raise InputError(f"the diffusion backend needs diffusers and transformers ({exc}): {INSTALL_HINT}") from exc
    return diffusers, transformers


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; other names unchanged."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"DiffusionConfig.device is {name!r} but torch sees no CUDA device; use auto or cpu")
    return name


def resolve_dtype(name: str, device: str) -> Any:
    """The torch dtype: ``auto`` -> float16 on cuda, float32 elsewhere."""
    import torch

    if name == "auto":
        name = "float16" if device.startswith("cuda") else "float32"
    return getattr(torch, name)


def _scheduler(diffusers: Any, folder: Path, name: str | None) -> Any:
    own = json.loads((folder / "scheduler_config.json").read_text(encoding="utf-8")).get("_class_name")
    class_name = name or own
    cls = getattr(diffusers, str(class_name), None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        raise InputError(f"{class_name!r} is not a diffusers scheduler (DiffusionConfig.scheduler, or "
                         f"_class_name in {folder / 'scheduler_config.json'})")
    return cls.from_pretrained(folder, local_files_only=True)


@functools.lru_cache(maxsize=2)
def _pipeline(base: Path, controlnet: Path, variant: str | None, scheduler: str | None, device: str,
              dtype_name: str) -> Any:
    """A loaded ``StableDiffusionControlNetInpaintPipeline``, kept for the next renderer with the same weights."""
    diffusers, transformers = import_diffusion()
    dtype = resolve_dtype(dtype_name, device)
    local = {"local_files_only": True, "variant": variant}
    # low_cpu_mem_usage needs accelerate; asking for it without accelerate only makes diffusers warn per model.
    models = {**local, "torch_dtype": dtype, "low_cpu_mem_usage": diffusers.utils.is_accelerate_available()}
    try:
        pipe = diffusers.StableDiffusionControlNetInpaintPipeline(
            vae=diffusers.AutoencoderKL.from_pretrained(base / "vae", **models),
            text_encoder=transformers.CLIPTextModel.from_pretrained(base / "text_encoder", dtype=dtype, **local),
            tokenizer=transformers.CLIPTokenizer.from_pretrained(base / "tokenizer", local_files_only=True),
            unet=diffusers.UNet2DConditionModel.from_pretrained(base / "unet", **models),
            controlnet=diffusers.ControlNetModel.from_pretrained(controlnet, **models),
            scheduler=_scheduler(diffusers, base / "scheduler", scheduler),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the diffusion weights from {base} and {controlnet}: {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def generation_size(canvas: tuple[int, int], resolution: int) -> tuple[int, int]:
    """(width, height) the model paints at: ``resolution`` on the long side, the canvas's aspect, multiples of 8."""
    width, height = canvas
    scale = resolution / max(width, height)
    return (max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8))


@dataclass(frozen=True)
class InpaintingInputs:
    """The pipeline's inputs at the generation size: start image, mask (255 = repaint) and Canny condition."""

    image: Image.Image
    mask: Image.Image
    control: Image.Image


def inpainting_inputs(cutout: Image.Image, bbox: PixelBox, canvas: tuple[int, int], size: tuple[int, int],
                      prompt: str, config: DiffusionConfig) -> InpaintingInputs:
    """Place ``cutout`` (RGBA) at ``bbox`` on ``canvas`` and derive the pipeline's inputs at ``size``.

    The mask is the inverted alpha (product = alpha >= 128 at ``size``) dilated by ``mask_grow_px``;
    the condition is the union of the Canny edges of the product's luminance (on mid grey) and of its
    alpha, so both its outline and its inner edges guide the ControlNet.
    """
    layer = Image.new("RGBA", canvas, (0, 0, 0, 0))
    layer.paste(cutout, bbox[:2])
    if size != canvas:
        layer = layer.resize(size, Image.Resampling.LANCZOS)
    alpha = layer.getchannel("A")

    product = layer.convert("RGB")
    image = draw_background(parse_background(prompt), size, config.seed)
    image.paste(product, (0, 0), alpha)

    repaint = Image.fromarray(np.where(np.asarray(alpha) >= 128, 0, 255).astype(np.uint8))
    if config.mask_grow_px:
        repaint = repaint.filter(ImageFilter.MaxFilter(2 * config.mask_grow_px + 1))

    grey = Image.new("RGB", size, (128, 128, 128))
    grey.paste(product, (0, 0), alpha)
    edges = canny_edges(np.asarray(grey.convert("L")), config.canny) | canny_edges(np.asarray(alpha), config.canny)
    control = Image.fromarray(np.repeat((edges * 255).astype(np.uint8)[..., None], 3, axis=2))
    return InpaintingInputs(image=image, mask=repaint, control=control)


class DiffusionRenderer:
    """Renders :class:`CreativeSpec` s with a diffusion-painted background; same interface as the compositor.

    The pipeline is loaded on the first render (and shared by renderers with the same weights,
    device and dtype); the weights folder is checked when the renderer is made.
    """

    def __init__(self, config: DiffusionConfig, compositor: Compositor | None = None) -> None:
        self.config = config
        self.compositor = compositor or Compositor()
        self._folders = check_weights(config)

    def pipeline(self) -> Any:
        """The loaded ``StableDiffusionControlNetInpaintPipeline`` (loads it on first use)."""
        import_diffusion()
        device = resolve_device(self.config.device)
        base, controlnet = self._folders
        return _pipeline(base, controlnet, self.config.variant, self.config.scheduler, device, self.config.dtype)

    def background(self, prompt: str, inputs: InpaintingInputs) -> Image.Image:
        """The painted picture (RGB, generation size) for ``prompt`` and the product's inputs."""
        import torch

        pipe = self.pipeline()
        cfg = self.config
        width, height = inputs.image.size
        generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
        with _SAMPLING, torch.inference_mode():
            result = pipe(
                prompt=prompt, negative_prompt=cfg.negative_prompt or None, image=inputs.image,
                mask_image=inputs.mask, control_image=inputs.control, height=height, width=width,
                strength=cfg.strength, num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
                controlnet_conditioning_scale=cfg.controlnet_scale, generator=generator, output_type="pil",
            )
        return result.images[0].convert("RGB")

    def render(self, spec: CreativeSpec, canvas: tuple[int, int] = (512, 512)) -> RenderedCreative:
        """Render ``spec`` on a ``canvas`` = (width, height) image; deterministic for a spec, config and device."""
        cutout, bbox = self.compositor.product_cutout_resized(spec, canvas)
        canvas = (int(canvas[0]), int(canvas[1]))
        size = generation_size(canvas, self.config.resolution)
        prompt = self.config.prompt(spec.background)
        image = self.background(prompt, inpainting_inputs(cutout, bbox, canvas, size, prompt, self.config))
        if image.size != canvas:
            image = image.resize(canvas, Image.Resampling.LANCZOS)
        image.paste(cutout.convert("RGB"), bbox[:2], cutout.getchannel("A"))
        boxes = self.compositor.draw_text(image, spec, canvas)
        return RenderedCreative(image=image, product_bbox=bbox, text_boxes=boxes)
