from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from adcraft.errors import InputError
from adcraft.features.image_encoder import ImageEncoderConfig, build_image_encoder

FEATURE_TOLERANCE = 1e-4  # max abs difference of ONNX Runtime's Lite0 features from PyTorch's (values 0..6)


@pytest.mark.parametrize("change", [{"runtime": "tensorrt"}, {"runtime": "onnx", "backbone": "tiny"}])
def test_config_refuses_unknown_or_unsupported_runtimes(change: dict) -> None:
    with pytest.raises(InputError, match="runtime"):
        ImageEncoderConfig(**change)


def test_missing_onnxruntime_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from adcraft.features.onnx_runtime import onnx_session

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    with pytest.raises(InputError, match=r"adcraft\[onnx\]"):
        onnx_session(torch.nn.Identity(), 224, 1)


@pytest.mark.slow
def test_onnx_runtime_matches_the_pytorch_encoder() -> None:
    pytest.importorskip("onnxruntime")
    from skimage import data

    images = [Image.fromarray(data.coffee()), Image.fromarray(data.chelsea()), Image.fromarray(data.astronaut()),
              Image.fromarray(data.rocket())]
    reference = build_image_encoder(ImageEncoderConfig(batch_size=3))
    fast = build_image_encoder(ImageEncoderConfig(batch_size=3, runtime="onnx"))
    assert fast.identity != reference.identity  # feature caches never mix the two runtimes
    expected, features = reference.encode(images), fast.encode(images)
    assert features.shape == expected.shape == (4, 1280) and features.dtype == np.float32
    assert np.abs(features - expected).max() < FEATURE_TOLERANCE
    assert np.array_equal(fast.classify(images).argmax(1), reference.classify(images).argmax(1))
