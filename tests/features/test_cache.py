import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adcraft.errors import InputError
from adcraft.features.cache import FeatureCache, content_key, encode_image_files, encode_texts
from adcraft.features.image_encoder import ImageEncoder, ImageEncoderConfig, build_image_encoder
from adcraft.features.text_encoder import TextEncoderConfig, build_text_encoder


class CountingEncoder:
    """Wraps an encoder and records how many items each ``encode`` call received."""

    def __init__(self, inner: ImageEncoder) -> None:
        self.inner = inner
        self.config = inner.config
        self.dim = inner.dim
        self.identity = inner.identity
        self.calls: list[int] = []

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.calls.append(len(images))
        return self.inner.encode(images)


def tiny_image_encoder(seed: int = 0) -> ImageEncoder:
    return build_image_encoder(
        ImageEncoderConfig(backbone="tiny", image_size=32, batch_size=2, tiny_dim=16, seed=seed)
    )


def write_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"creative_{index}.png"
        Image.fromarray(rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_second_run_recomputes_nothing(tmp_path: Path) -> None:
    paths = write_images(tmp_path, 5)
    cache = FeatureCache(tmp_path / "cache")
    encoder = CountingEncoder(tiny_image_encoder())
    first = encode_image_files(encoder, paths, cache)
    assert (cache.hits, cache.misses) == (0, 5)
    assert encoder.calls == [2, 2, 1]  # misses go in batches of batch_size
    second = encode_image_files(encoder, paths, cache)
    assert (cache.hits, cache.misses) == (5, 5)
    assert encoder.calls == [2, 2, 1]  # no new encode call at all
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(
        first, encoder.inner.encode([Image.open(path) for path in paths]), atol=1e-6
    )


def test_a_changed_file_is_recomputed(tmp_path: Path) -> None:
    paths = write_images(tmp_path, 4)
    cache = FeatureCache(tmp_path / "cache")
    encoder = CountingEncoder(tiny_image_encoder())
    before = encode_image_files(encoder, paths, cache)
    Image.new("RGB", (24, 36), (250, 20, 20)).save(paths[2])
    after = encode_image_files(encoder, paths, cache)
    assert encoder.calls[-1] == 1 and (cache.hits, cache.misses) == (3, 5)
    np.testing.assert_array_equal(np.delete(before, 2, axis=0), np.delete(after, 2, axis=0))
    assert not np.allclose(before[2], after[2])
    np.testing.assert_allclose(after[2], encoder.inner.encode([Image.open(paths[2])])[0], atol=1e-6)


def test_entries_follow_content_not_file_names(tmp_path: Path) -> None:
    paths = write_images(tmp_path, 3)
    cache = FeatureCache(tmp_path / "cache")
    encoder = CountingEncoder(tiny_image_encoder())
    features = encode_image_files(encoder, paths, cache)
    copy = tmp_path / "renamed.png"
    copy.write_bytes(paths[1].read_bytes())
    order = [paths[2], copy, paths[0], paths[2]]  # reordered, renamed and repeated
    again = encode_image_files(encoder, order, cache)
    assert len(encoder.calls) == 2 and cache.misses == 3  # nothing new was encoded
    np.testing.assert_array_equal(again, features[[2, 1, 0, 2]])


def test_repeated_content_in_one_call_is_encoded_once(tmp_path: Path) -> None:
    (path,) = write_images(tmp_path, 1)
    encoder = CountingEncoder(tiny_image_encoder())
    features = encode_image_files(encoder, [path, path, path])
    assert encoder.calls == [1]
    np.testing.assert_array_equal(features[0], features[2])


def test_another_encoder_identity_misses(tmp_path: Path) -> None:
    paths = write_images(tmp_path, 2)
    cache = FeatureCache(tmp_path / "cache")
    encode_image_files(tiny_image_encoder(seed=0), paths, cache)
    reseeded = tiny_image_encoder(seed=1)
    other = encode_image_files(reseeded, paths, cache)
    assert cache.misses == 4 and cache.hits == 0
    direct = reseeded.encode([Image.open(path) for path in paths])
    np.testing.assert_allclose(other, direct, atol=1e-6)


def test_storage_is_sharded_npy_with_no_leftover_temporaries(tmp_path: Path) -> None:
    paths = write_images(tmp_path, 3)
    root = tmp_path / "cache"
    encoder = tiny_image_encoder()
    features = encode_image_files(encoder, paths, FeatureCache(root))
    entries = sorted(root.rglob("*.npy"))
    assert len(entries) == 3
    assert not [p for p in root.rglob("*") if p.is_file() and p.suffix != ".npy"]
    for entry in entries:
        key = entry.stem
        assert entry.relative_to(root).parts == (key[:2], key[2:4], f"{key}.npy")
        vector = np.load(entry, allow_pickle=False)
        assert vector.dtype == np.float32 and vector.shape == (encoder.dim,)
    digest = hashlib.sha256(paths[0].read_bytes()).hexdigest()
    stored = np.load(FeatureCache(root).path_for(content_key(encoder.identity, digest)))
    np.testing.assert_array_equal(stored, features[0])


def test_a_damaged_entry_is_a_miss_and_gets_rewritten(tmp_path: Path) -> None:
    paths = write_images(tmp_path, 2)
    root = tmp_path / "cache"
    encoder = tiny_image_encoder()
    expected = encode_image_files(encoder, paths, FeatureCache(root))
    victim = sorted(root.rglob("*.npy"))[0]
    victim.write_bytes(b"not an array")
    cache = FeatureCache(root)
    np.testing.assert_allclose(encode_image_files(encoder, paths, cache), expected, atol=1e-6)
    assert (cache.hits, cache.misses) == (1, 1)
    assert np.load(victim, allow_pickle=False).shape == (encoder.dim,)


def test_texts_are_cached_by_content(tmp_path: Path) -> None:
    encoder = build_text_encoder(TextEncoderConfig(backbone="tiny", tiny_dim=32))
    cache = FeatureCache(tmp_path)
    texts = ["red dress", "usb cable", "red dress", "garden chair"]
    first = encode_texts(encoder, texts, cache)
    assert (cache.hits, cache.misses) == (0, 3)
    second = encode_texts(encoder, ["garden chair", "red dress", "new text"], cache)
    assert (cache.hits, cache.misses) == (2, 4)
    np.testing.assert_array_equal(second[:2], first[[3, 0]])
    np.testing.assert_array_equal(first, encoder.encode(texts))


def test_progress_bar_does_not_change_results(tmp_path: Path) -> None:
    paths = write_images(tmp_path, 3)
    encoder = tiny_image_encoder()
    np.testing.assert_array_equal(
        encode_image_files(encoder, paths, progress=True), encode_image_files(encoder, paths)
    )


def test_unreadable_inputs_raise_input_error(tmp_path: Path) -> None:
    encoder = tiny_image_encoder()
    with pytest.raises(InputError, match="not found"):
        encode_image_files(encoder, [tmp_path / "missing.png"])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"definitely not a png")
    with pytest.raises(InputError, match="not a readable image"):
        encode_image_files(encoder, [broken])
    with pytest.raises(InputError, match="single path"):
        encode_image_files(encoder, str(broken))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not a directory"):
        FeatureCache(broken)
    with pytest.raises(InputError, match="expected str"):
        encode_texts(build_text_encoder(TextEncoderConfig(backbone="tiny")), [b"bytes"])  # type: ignore[list-item]
