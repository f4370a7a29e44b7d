"""Throughput of the pretrained encoders, batched against one item at a time, in one run.

    python bench/encoders.py [--n 64] [--seed 0] [--threads N] [--batch-size 32]

Builds EfficientNet-Lite0 and all-MiniLM-L6-v2, makes ``n`` seeded synthetic images and product
titles, and prints items per second for batched and one-at-a-time encoding and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from adcraft.features.cache import FeatureCache, encode_image_files
from adcraft.features.image_encoder import ImageEncoderConfig, build_image_encoder
from adcraft.features.text_encoder import TextEncoderConfig, build_text_encoder

ADJECTIVES = ["classic", "slim", "oversized", "organic", "waterproof", "vintage", "compact"]
COLOURS = ["red", "navy", "olive", "white", "black", "mustard", "pastel pink"]
PRODUCTS = ["summer dress", "running shoes", "usb-c cable", "wool scarf", "desk lamp", "backpack"]
OCCASIONS = ["the office", "weekend trips", "the gym", "everyday use", "gifting"]


def synthetic_images(count: int, seed: int) -> list[Image.Image]:
    """Smooth random colour fields with a few flat rectangles, 320x240, deterministic per seed."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        field = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = Image.fromarray(field).resize((320, 240), Image.Resampling.BICUBIC)
        for _ in range(3):
            x, y = rng.integers(0, 260), rng.integers(0, 180)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            image.paste(colour, (int(x), int(y), int(x) + 60, int(y) + 60))
        images.append(image)
    return images


def synthetic_titles(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        f"{rng.choice(ADJECTIVES)} {rng.choice(COLOURS)} {rng.choice(PRODUCTS)} "
        f"for {rng.choice(OCCASIONS)}"
        for _ in range(count)
    ]


def throughput(encode: Callable[[Sequence], np.ndarray], items: Sequence) -> tuple[float, float]:
    """Items per second batched, and one at a time (after one warm-up call)."""
    encode(items[:2])
    started = time.perf_counter()
    encode(items)
    batched = len(items) / (time.perf_counter() - started)
    started = time.perf_counter()
    for item in items:
        encode([item])
    single = len(items) / (time.perf_counter() - started)
    return batched, single


def report(label: str, unit: str, batched: float, single: float) -> None:
    print(
        f"{label}: batched {batched:8.1f} {unit}/s | one at a time {single:8.1f} {unit}/s | "
        f"ratio {batched / single:5.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="images and texts to encode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    args = parser.parse_args()

    started = time.perf_counter()
    image_encoder = build_image_encoder(ImageEncoderConfig(num_threads=args.threads, batch_size=args.batch_size))
    image_load = time.perf_counter() - started
    started = time.perf_counter()
    text_encoder = build_text_encoder(TextEncoderConfig())
    text_load = time.perf_counter() - started
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, n={args.n}, "
        f"seed={args.seed}; load: image {image_load:.2f} s, text {text_load:.2f} s"
    )
    images = synthetic_images(args.n, args.seed)
    report(
        f"EfficientNet-Lite0 (batch {image_encoder.config.batch_size})",
        "images",
        *throughput(image_encoder.encode, images),
    )
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, image in enumerate(images):
            paths.append(Path(tmp) / f"{i}.png")
            image.save(paths[-1])
        cache = FeatureCache(Path(tmp) / "cache")
        rates = []
        for _ in range(2):
            started = time.perf_counter()
            encode_image_files(image_encoder, paths, cache)
            rates.append(len(paths) / (time.perf_counter() - started))
        print(
            f"image files through the feature cache: first run {rates[0]:8.1f} images/s, second run "
            f"{rates[1]:8.1f} images/s (ratio {rates[1] / rates[0]:.0f}x; "
            f"{cache.misses} encoded, {cache.hits} from cache)"
        )
    titles = synthetic_titles(args.n, args.seed)
    report(
        f"all-MiniLM-L6-v2 (batch {text_encoder.config.batch_size})",
        "texts",
        *throughput(text_encoder.encode, titles),
    )


if __name__ == "__main__":
    main()
