"""EfficientNet-Lite0 run by ONNX Runtime instead of PyTorch eager mode (``ImageEncoderConfig(runtime="onnx")``).

The BatchNorm-folded network is exported once per process with ``torch.onnx.export`` (in memory, nothing
is written) as one graph with two outputs, the pooled 1280-d features and the ImageNet logits, and run
by ONNX Runtime's CPU provider, whose fused convolution kernels are several times faster than eager
PyTorch on small batches of depthwise convolutions (``bench/performance.py``). The outputs equal the
PyTorch ones up to float32 rounding (max abs feature difference ~1e-5; ``tests/features``).
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from adcraft.errors import InputError

INSTALL_HINT = "ONNX Runtime is not installed: install it with `pip install adcraft[onnx]`, or use runtime='torch'."


class _FeaturesAndLogits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.model.extract_features(pixels)
        features = maps.mean(dim=(2, 3))
        return features, self.model._fc(features)


def export_onnx(model: nn.Module, image_size: int) -> bytes:
    """The EfficientNet ``model`` as an ONNX graph (opset 17): input ``pixels`` (n, 3, s, s), outputs
    ``features`` (n, 1280) and ``logits`` (n, 1000), with a dynamic batch axis."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError as error:
        raise InputError(INSTALL_HINT) from error
    buffer = io.BytesIO()
    example = torch.zeros(1, 3, image_size, image_size)
    with warnings.catch_warnings():  # the exporter's notes on constant folding and tracing say nothing to a user
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _FeaturesAndLogits(model).eval(), (example,), buffer, input_names=["pixels"],
            output_names=["features", "logits"],
            dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
            opset_version=17, dynamo=False,
        )
    return buffer.getvalue()


@functools.cache
def onnx_session(model: nn.Module, image_size: int, threads: int):
    """An ONNX Runtime CPU session of ``model`` with ``threads`` intra-op threads (one per process and setting)."""
    try:
        import onnxruntime
    except ImportError as error:
        raise InputError(INSTALL_HINT) from error
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(export_onnx(model, image_size), options, providers=["CPUExecutionProvider"])


def onnx_networks(model: nn.Module, image_size: int, threads: int
                  ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """(features, logits) functions with the PyTorch networks' signature, run by ONNX Runtime."""
    session = onnx_session(model, image_size, threads)

    def run(output: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def network(pixels: torch.Tensor) -> torch.Tensor:
            batch = np.ascontiguousarray(pixels.numpy(), dtype=np.float32)  # ONNX wants plain NCHW
            return torch.from_numpy(session.run([output], {"pixels": batch})[0])

        return network

    return run("features"), run("logits")
