"""Seconds per render of the diffusion background backend, on CPU and (when torch sees one) on a GPU.

    python bench/diffusion.py [--renders 5] [--steps 4] [--canvas 256] [--resolution 64] [--seeds 0 1]
                              [--weights DIR --real-resolution 512] [--out out/bench/diffusion.json]

By default the model is the tiny random Stable Diffusion + ControlNet of
:mod:`adcraft.render.tiny_diffusion`, written to a temporary folder and loaded through the backend's
own loading path: the numbers time the backend's code path (placement, mask, Canny condition,
sampling, paste-back, text), not a real model. ``--weights`` adds rows for real weights in the
backend's layout (e.g. SD 1.5 + a Canny ControlNet) at ``--real-resolution``. The GPU rows are
skipped, with a message, when ``torch.cuda.is_available()`` is false. Each row reports the pipeline's
load time, the first render (warm-up) and the median and mean of the next ``--renders`` renders,
alternating over ``--seeds``; CPU rows also give the process's CPU seconds per render (steadier than
wall time on a shared machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from adcraft.render.compositor import CreativeSpec
from adcraft.render.diffusion import DiffusionConfig, DiffusionRenderer
from adcraft.render.tiny_diffusion import write_tiny_diffusion_weights


def draw_bottle(width: int = 120, height: int = 240) -> Image.Image:
    """A shaded bottle-like ellipse with a light label band, on a transparent background."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = (xx - width / 2) / (0.45 * width), (yy - height / 2) / (0.47 * height)
    alpha = np.where(u**2 + v**2 <= 1.0, 255, 0)
    shade = 0.4 + 0.6 * np.sqrt(np.clip(1 - u**2, 0, 1))
    rgb = np.stack([30 * shade, 150 * shade, 160 * shade], axis=-1)
    rgb[(v > 0.0) & (v < 0.3)] = (240, 236, 228)
    return Image.fromarray(np.dstack([rgb, alpha]).astype(np.uint8))


def bench_row(name: str, config: DiffusionConfig, canvas: int, renders: int, seeds: list[int]) -> dict:
    """Load once, render once to warm up, then time ``renders`` renders alternating over ``seeds``."""
    spec = CreativeSpec(product_image=draw_bottle(), background="warm beige studio, soft shadow",
                        title="Keeps it cold", highlight="20% OFF", template="banner")
    start = time.perf_counter()
    DiffusionRenderer(config).pipeline()
    load_s = time.perf_counter() - start
    renderers = {seed: DiffusionRenderer(dataclasses.replace(config, seed=seed)) for seed in seeds}
    start = time.perf_counter()
    renderers[seeds[0]].render(spec, (canvas, canvas))
    first_s = time.perf_counter() - start
    wall, cpu = [], []
    for i in range(renders):
        seed = seeds[i % len(seeds)]
        start, start_cpu = time.perf_counter(), time.process_time()
        renderers[seed].render(spec, (canvas, canvas))
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    row = {"row": name, "device": config.device, "dtype": config.dtype, "steps": config.steps,
           "resolution": config.resolution, "canvas": canvas, "seeds": seeds, "renders": renders,
           "load_s": round(load_s, 3), "first_render_s": round(first_s, 3),
           "median_s_per_render": round(statistics.median(wall), 4),
           "mean_s_per_render": round(statistics.fmean(wall), 4)}
    if config.device == "cpu":
        row["cpu_s_per_render"] = round(statistics.fmean(cpu), 4)
    print(f"{name:>10}: load {load_s:.2f} s, first render {first_s:.2f} s, then {row['median_s_per_render']:.3f} s "
          f"per render (median of {renders}; mean {row['mean_s_per_render']:.3f} s)"
          + (f", CPU {row['cpu_s_per_render']:.3f} s" if "cpu_s_per_render" in row else ""))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=5, help="timed renders per row (after one warm-up)")
    parser.add_argument("--steps", type=int, default=4, help="sampling steps")
    parser.add_argument("--canvas", type=int, default=256, help="square canvas side in pixels")
    parser.add_argument("--resolution", type=int, default=64, help="long side the tiny model paints at")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="render seeds, alternated")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--weights", type=Path, default=None, help="real weights folder to bench as well")
    parser.add_argument("--real-resolution", type=int, default=512, help="long side for the real weights")
    parser.add_argument("--out", type=Path, default=Path("out/bench/diffusion.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"seeds {args.seeds}; {args.steps} steps; canvas {args.canvas}x{args.canvas}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    rows, skipped = [], []
    cuda = torch.cuda.is_available()
    if not cuda:
        skipped.append("gpu rows: torch.cuda.is_available() is false")
        print("skipping the GPU rows: torch.cuda.is_available() is false")
    with tempfile.TemporaryDirectory() as folder:
        tiny = write_tiny_diffusion_weights(Path(folder) / "tiny", seed=0)
        common = {"steps": args.steps, "seed": args.seeds[0]}
        small = {"weights_dir": str(tiny), "resolution": args.resolution, **common}
        rows.append(bench_row("tiny-cpu", DiffusionConfig(device="cpu", **small), args.canvas, args.renders,
                              args.seeds))
        if cuda:
            rows.append(bench_row("tiny-gpu", DiffusionConfig(device="cuda", **small), args.canvas, args.renders,
                                  args.seeds))
        if args.weights is not None:
            real = {"weights_dir": str(args.weights), "resolution": args.real_resolution, **common}
            canvas = args.real_resolution
            if cuda:
                rows.append(bench_row("real-gpu", DiffusionConfig(device="cuda", **real), canvas, args.renders,
                                      args.seeds))
            rows.append(bench_row("real-cpu", DiffusionConfig(device="cpu", **real), canvas, max(1, args.renders // 5),
                                  args.seeds))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "diffusion backend seconds per render", "rows": rows, "skipped": skipped,
              "machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "cuda": cuda,
                          "gpu": torch.cuda.get_device_name(0) if cuda else None}}
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
