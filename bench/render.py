"""Throughput of the default compositor: renders per second at 512x512.

    python bench/render.py [--n 100] [--seed 0] [--canvas 512] [--out DIR] [--unbroken 500 5000 50000]

The product is drawn here (a shaded bottle on a transparent background, plus the same bottle on
a white photo background so the cut-out path is measured too); backgrounds, templates, titles and
highlights vary per render. Caches (parsed prompts, drawn backgrounds, fonts, text fits) warm up
during the run, as they would in a batch; the first-pass time is printed separately, and so is
the rate by this process's CPU time (steadier than wall time on a busy machine). ``--unbroken``
also times one creative whose title and highlight are that many characters without a space each
(the worst case of line breaking: every line is cut inside a word).
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
from PIL import Image

from adcraft.render import Compositor, CreativeSpec

BACKGROUNDS = [
    "warm beige studio, soft shadow",
    "#1e3a5f to #f0c27b gradient",
    "pastel pink marble",
    "dark wooden table, shadow",
    "white linen texture with soft bokeh",
    "grey concrete, vignette",
    "navy and white stripes",
    "mint polka dots",
    "black spotlight",
    "sage green radial gradient",
    "cream paper",
    "terracotta stone, shadow",
]
TEMPLATES = ["center", "left", "right", "banner", "top", "minimal"]
TITLES = [
    "Hydrate in style",
    "The bottle that keeps up with you",
    "Ice cold for 24 hours, hot for 12: the only bottle you will ever need on the trail",
    "New",
    "Made from recycled steel, built to last a lifetime of adventures " * 3,
]
HIGHLIGHTS = [None, "20% OFF", "Free shipping", "Bestseller", "Only today: buy one get one free"]
FONTS = [None, "serif", "DejaVu Sans", "mono", "Helvetica"]
TEXT_COLORS = [None, None, "white", "#c0392b", "navy"]


def draw_bottle(width: int = 360, height: int = 720) -> Image.Image:
    """A shaded bottle (cylinder body, shoulder, cap) on a transparent background."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx = width / 2.0
    body_w = 0.36 * width
    neck_w = 0.14 * width
    shoulder_top, body_top, cap_top, cap_bottom = 0.22 * height, 0.34 * height, 0.04 * height, 0.13 * height
    t = np.clip((yy - shoulder_top) / (body_top - shoulder_top), 0.0, 1.0)
    half = np.where(yy < shoulder_top, neck_w, neck_w + (body_w - neck_w) * np.sin(t * np.pi / 2))
    inside = (np.abs(xx - cx) <= half) & (yy >= cap_top) & (yy <= 0.96 * height)
    bottom_round = (yy > 0.9 * height) & (((xx - cx) / body_w) ** 2 + ((yy - 0.9 * height) / (0.06 * height)) ** 2 > 1)
    inside &= ~bottom_round
    u = np.clip((xx - cx) / np.maximum(half, 1.0), -1.0, 1.0)
    light = 0.35 + 0.65 * np.sqrt(np.clip(1 - u**2, 0, 1)) + 0.35 * np.exp(-((u + 0.45) ** 2) / 0.01)
    base = np.where((yy < cap_bottom)[..., None], [40, 40, 48], [32, 150, 160]).astype(np.float32)
    rgb = np.clip(base * light[..., None], 0, 255)
    label = (yy > 0.5 * height) & (yy < 0.7 * height)
    rgb[label] = np.clip(np.array([245, 240, 230]) * (0.75 + 0.25 * light[label, None]), 0, 255)
    alpha = np.where(inside, 255, 0)
    return Image.fromarray(np.dstack([rgb, alpha]).astype(np.uint8))


def on_white(product: Image.Image) -> Image.Image:
    """The product as a photo on a white background (no alpha), padded."""
    photo = Image.new("RGB", (product.width + 80, product.height + 80), (252, 252, 250))
    photo.paste(product, (40, 40), product)
    return photo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="number of renders")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random creative choices")
    parser.add_argument("--canvas", type=int, default=512, help="square canvas side in pixels")
    parser.add_argument("--out", type=Path, default=None, help="folder to save the renders as PNGs")
    parser.add_argument("--unbroken", type=int, nargs="*", default=[],
                        help="lengths of unbroken titles/highlights to time one creative each with")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    bottle = draw_bottle()
    products = [bottle, bottle, bottle, on_white(bottle)]
    specs = [
        CreativeSpec(
            product_image=rng.choice(products),
            title=rng.choice(TITLES),
            highlight=rng.choice(HIGHLIGHTS),
            background=rng.choice(BACKGROUNDS),
            template=rng.choice(TEMPLATES),
            font=rng.choice(FONTS),
            text_color=rng.choice(TEXT_COLORS),
        )
        for _ in range(args.n)
    ]
    compositor = Compositor()
    canvas = (args.canvas, args.canvas)
    first_pass = min(len(specs), len(BACKGROUNDS))
    elapsed = cold = cpu = 0.0
    for i, spec in enumerate(specs):
        start, start_cpu = time.perf_counter(), time.process_time()
        rendered = compositor.render(spec, canvas)
        elapsed += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        if i + 1 == first_pass:
            cold = elapsed
        if args.out is not None:  # saving is not timed
            args.out.mkdir(parents=True, exist_ok=True)
            rendered.image.save(args.out / f"creative_{i:04d}.png")
    print(f"rendered {len(specs)} creatives at {canvas[0]}x{canvas[1]} in {elapsed:.2f} s: "
          f"{len(specs) / elapsed:.1f} renders/s (first {first_pass}: {first_pass / cold:.1f}/s; "
          f"by CPU time of this process: {len(specs) / cpu:.1f}/s)")
    for length in args.unbroken:
        text = (f"{length}Waterbottle" * (length // 11 + 1))[:length]  # a prefix of its own: not a cached fit
        start = time.perf_counter()
        compositor.render(CreativeSpec(product_image=bottle, title=text, highlight=text), canvas)
        print(f"one creative with a {length:,}-character unbroken title and highlight: "
              f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
