"""Local vs Ray for the three batch jobs (features, score, render) on a simulated market.

    python bench/scale.py [--creatives 2000] [--workers 2] [--batch-size 64] [--image-backbone tiny]
                          [--market DIR] [--out DIR]

A market with about ``--creatives`` past creatives is simulated (8 per product; or ``--market`` is used
as is), a point-wise CTR model is trained on it (tiny text features, no image features, 3 epochs), then
each job runs once with ``--backend local`` and once on a local Ray instance with ``--workers`` actors.
Ray's own start-up is timed apart; each Ray job's time includes starting its actors (one model each).
Printed per job: items, seconds local and on Ray, the local/Ray ratio (> 1: Ray was faster), and
whether the outputs are equal (bitwise for scores and PNG files; feature vectors to 1e-5, since a Ray
actor runs torch on one thread).

On a machine with 2 cores (this bench's reference machine), 2 Ray workers compete with each other and
with the driver for the same cores: expect ratios near or below 1 there; the backend pays off with more
cores or nodes. Wall times on a shared machine are noisy: the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from adcraft.batch import BatchConfig, FeaturesConfig, batch_session, extract_features
from adcraft.batch import render_creatives, score_market_batch
from adcraft.features.image_encoder import ImageEncoderConfig
from adcraft.features.text_encoder import TextEncoderConfig
from adcraft.pipeline import train_reward_model
from adcraft.simulator import SimulatorConfig, simulate_market

PER_PRODUCT = 8


def simulated_market(n_creatives: int, folder: Path) -> Path:
    products = max(1, -(-n_creatives // PER_PRODUCT))
    config = SimulatorConfig(seed=0, n_products=products, n_impressions=20 * products * PER_PRODUCT,
                             creatives_per_product=PER_PRODUCT, render_workers=os.cpu_count() or 1)
    return simulate_market(config, folder).market_dir


def same_features(a: tuple[Path, Path], b: tuple[Path, Path]) -> bool:
    for left, right in zip(a, b):
        left, right = pd.read_parquet(left), pd.read_parquet(right)
        if not left.drop(columns="vector").equals(right.drop(columns="vector")):
            return False
        if np.abs(np.stack(left["vector"]) - np.stack(right["vector"])).max() > 1e-5:
            return False
    return True


def same_renders(a: Path, b: Path) -> bool:
    index = pd.read_parquet(a)
    return index.equals(pd.read_parquet(b)) and all(
        filecmp.cmp(a.parent / name, b.parent / name, shallow=False) for name in index["image"])


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--creatives", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-backbone", default="tiny", choices=("tiny", "efficientnet-lite0"))
    parser.add_argument("--market", type=Path, default=None, help="use this market instead of simulating one")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="adcraft-scale-"))
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; work folder {out}")

    market, seconds = timed(lambda: args.market or simulated_market(args.creatives, out / "market"))
    creatives = len(pd.read_parquet(market / "creatives.parquet"))
    print(f"market {market}: {creatives} past creatives ({seconds:.0f} s)")
    config_file = out / "ctr.yaml"
    config_file.write_text("encoding: {text_backbone: tiny, image_backbone: none}\ntrain: {epochs: 3}\n")
    train_reward_model("ctr", market, out / "model", config_file)

    features = FeaturesConfig(image=ImageEncoderConfig(backbone=args.image_backbone),
                              text=TextEncoderConfig(backbone="tiny"))
    local = BatchConfig(backend="local", batch_size=args.batch_size)
    ray = BatchConfig(backend="ray", num_workers=args.workers, batch_size=args.batch_size,
                      object_store_memory=512 * 1024**2)
    rows = []
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()
        stack.enter_context(batch_session(ray))
        print(f"ray start-up {time.perf_counter() - started:.1f} s")
        jobs = [
            ("features", lambda c, name: extract_features(market, out / name / "features", features, c), same_features),
            ("score", lambda c, name: score_market_batch(out / "model", market, out / name / "score", c),
             lambda a, b: pd.read_parquet(a).equals(pd.read_parquet(b))),
            ("render", lambda c, name: render_creatives(market, out / name / "render", None, c), same_renders),
        ]
        for job, run, same in jobs:
            local_out, local_s = timed(run, local, "local")
            ray_out, ray_s = timed(run, ray, "ray")
            rows.append((job, local_s, ray_s, same(local_out, ray_out)))
            print(f"{job:>8}: local {local_s:7.1f} s, ray ({args.workers} workers) {ray_s:7.1f} s, "
                  f"local/ray {local_s / ray_s:.2f}, outputs equal {rows[-1][3]}", flush=True)
    print(f"\n{creatives} creatives, batch size {args.batch_size}, image backbone {args.image_backbone}, "
          f"{os.cpu_count()} cores, load average now {os.getloadavg()[0]:.1f}")
    print("| job | local s | ray s | local/ray | equal |\n|---|---|---|---|---|")
    for job, local_s, ray_s, same in rows:
        print(f"| {job} | {local_s:.1f} | {ray_s:.1f} | {local_s / ray_s:.2f} | {same} |")


if __name__ == "__main__":
    main()
