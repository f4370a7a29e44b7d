"""The main job against the simulator's truth: share of the oracle lift captured, speed and memory.

    python bench/optimize.py [--seeds 201 202 203 204 205] [--workdir /tmp/adcraft-bench/optimize]
                             [--products 120] [--impressions 150000] [--results docs/results.md]
    python bench/optimize.py --scale [--seeds 9951] [--products 2000] [--impressions 1000000] [--world realistic]

For each seed (none of them used by the tests) it simulates a default-size market, runs
``adcraft optimize`` on it in a fresh process with an empty feature cache (wall time and the process's
peak resident memory are measured by the operating system: ``os.wait4``), and scores, with the truth,
the top-1 creative per product of:

- ``RL``: the combination policy of ``optimize`` (behaviour cloning + policy gradient on the
  multi-instance reward model), read from ``creatives.parquet`` and its rendered PNGs;
- ``behaviour cloning``: the same policy before RL (its most probable combination);
- ``element-wise greedy``: per slot the element with the best reward, other slots held at the most-shown
  logged creative;
- ``best logged``: the logged creative with the best shrunk observed CTR.

Every pick is rendered and scored by the true click model on its pixels (context-averaged true CTR).
The logging policy's value is the impression-weighted true CTR of what it showed. The oracle is the best
true CTR found by a truth-guided search: coordinate ascent on the true model (image attributes held at the
start's rendered image) from each method's pick and from the logged creatives, every local optimum then
rendered and scored exactly; the oracle also includes every scored pick. The share of the oracle lift is
``sum_p w_p (T_p - L_p) / sum_p w_p (O_p - L_p)`` with w the products' traffic shares.

``--scale`` measures speed and memory only, at a size of its own (``--products``, ``--impressions``; a
simulated market of ``--world``): per seed the simulation's seconds, then ``adcraft optimize``'s wall time,
peak resident memory and time per stage (its run.json), written to their own section of --results; nothing is
scored, since the oracle search does not scale to thousands of products.

How well RL optimises its own reward is measured apart: on the first ``--exhaustive-products`` products
the reward of RL's top-1 is compared with the exhaustive argmax of the same reward over every usable
combination (the rest of the gap to the oracle is the reward model's, not the optimiser's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from markdown import markdown_table, write_section

from adcraft.generate.combo import (
    ComboGenerator,
    behaviour_cloning_proposals,
    best_combinations,
    elementwise_greedy_proposals,
)
from adcraft.market import load_market
from adcraft.market.outputs import read_proposals
from adcraft.render.from_market import MarketRenderer
from adcraft.rewards.mil import MILModel
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market

SECTION = "## Main job: optimize against the truth (bench/optimize.py)"
ASCENT_SWEEPS = 4


def simulated(seed: int, workdir: Path, products: int, impressions: int, world: str | None = None) -> Path:
    """The simulated market of ``seed`` (of ``world``, else the simulator's default) in ``workdir``, made once."""
    folder = workdir / (f"market-{seed}-{products}-{impressions}" if world is None
                        else f"market-{world}-{seed}-{products}-{impressions}")
    if not (folder / "market.json").is_file():
        settings = {} if world is None else {"world": world}
        simulate_market(SimulatorConfig(seed=seed, n_products=products, n_impressions=impressions, **settings),
                        folder, overwrite=True)
    return folder


def run_optimize(market_dir: Path, out: Path, cache: Path, config: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak resident MiB) of ``adcraft optimize`` in a fresh process with an empty cache
    (``config``: an optimize config file; None: the default config)."""
    env = {**os.environ, "ADCRAFT_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    settings = ["--config", str(config)] if config is not None else []
    process = subprocess.Popen([sys.executable, "-m", "adcraft.cli", "optimize", "--market", str(market_dir),
                                "--out", str(out), *settings], env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"adcraft optimize failed on {market_dir} (exit {os.waitstatus_to_exitcode(status)})")
    return seconds, usage.ru_maxrss / 1024.0  # Linux reports kilobytes


class TruthScorer:
    """True context-averaged CTR of combinations as drawn: cached by (product, combination) for the combination
    drawn here (default placement), and by the image's pixels for an image given (a PNG a run wrote, whose photo
    may sit elsewhere: two drawings of one combination are two creatives)."""

    def __init__(self, market, truth: GroundTruth) -> None:
        self.market, self.truth = market, truth
        self.renderer = MarketRenderer(market)
        self.cache: dict[tuple[str, tuple[str, ...]], float] = {}
        self.drawn: dict[tuple[str, tuple[str, ...], bytes], float] = {}
        self.attributes: dict[tuple[str, tuple[str, ...]], dict[str, float]] = {}  # of the first drawing scored

    def exact(self, pid: str, combo, image: Image.Image | None = None) -> float:
        key = (pid, tuple(combo))
        if image is None:
            if key not in self.cache:
                image = self.renderer.render(pid, list(combo)).image
                self.attributes.setdefault(key, self.truth.model.measure(list(combo), image))
                self.cache[key] = self.truth.ctr_of_image(pid, list(combo), image)
            return self.cache[key]
        pixels = (*key, hashlib.blake2b(image.tobytes(), digest_size=16).digest())
        if pixels not in self.drawn:
            self.attributes.setdefault(key, self.truth.model.measure(list(combo), image))
            self.drawn[pixels] = self.truth.ctr_of_image(pid, list(combo), image)
        return self.drawn[pixels]

    def ascend(self, pid: str, start, usable: list[list[str]]) -> tuple[str, ...]:
        """Coordinate ascent on the true model with the start's image attributes held fixed."""
        self.exact(pid, start)
        attrs = self.attributes[(pid, tuple(start))]
        combo = list(start)
        best = self.truth.model.ctr(pid, combo, attrs, None)
        for _ in range(ASCENT_SWEEPS):
            moved = False
            for t, options in enumerate(usable):
                for element in options:
                    if element == combo[t]:
                        continue
                    trial = combo[:t] + [element] + combo[t + 1:]
                    value = self.truth.model.ctr(pid, trial, attrs, None)
                    if value > best + 1e-12:
                        combo, best, moved = trial, value, True
            if not moved:
                break
        return tuple(combo)


def true_values(scorer: TruthScorer, picks: dict[str, dict[str, list[str]]], products: list[str],
                proposals: pd.DataFrame, out: Path, rendered: str) -> dict[str, dict[str, float]]:
    """Per method and product, the true CTR of its pick. The picks of method ``rendered`` are scored on the
    PNGs the run wrote to ``out`` (what it would show); every other pick is rendered here. A product a
    method has no pick for is left out."""
    images = {(p, tuple(e)): out / i for p, e, i in zip(proposals["product_id"], proposals["elements"],
                                                       proposals["image"])}
    true: dict[str, dict[str, float]] = {name: {} for name in picks}
    for name, chosen in picks.items():
        for pid in products:
            combo = chosen.get(pid)
            if combo is None:
                continue
            path = images.get((pid, tuple(combo))) if name == rendered else None
            image = Image.open(path).convert("RGB") if path is not None else None
            true[name][pid] = scorer.exact(pid, combo, image)
    return true


def oracle_values(market, truth: GroundTruth, scorer: TruthScorer,
                  picks: dict[str, dict[str, list[str]]]) -> dict[str, float]:
    """Per product: the best true CTR found by truth-guided coordinate ascent from every method's pick and
    from every logged creative, each local optimum rendered and scored exactly; every scored pick and
    every logged creative's true CTR count too (the picks are scored by ``scorer`` beforehand)."""
    logged_ctr = truth.creatives.set_index("creative_id")["true_ctr"]
    oracle = {}
    for pid in market.products["product_id"]:
        usable = [market.usable_elements(pid, s)["element_id"].tolist() for s in market.config.slots]
        mine = market.creatives[market.creatives["product_id"] == pid]
        starts = {tuple(chosen[pid]) for chosen in picks.values() if pid in chosen}
        starts |= {tuple(e) for e in mine["elements"]}
        optima = {scorer.ascend(pid, list(s), usable) for s in starts}
        values = [scorer.exact(pid, c) for c in optima | starts]
        values += [float(logged_ctr[c]) for c in mine["creative_id"]]
        oracle[pid] = max(values)
    return oracle


def logging_values(market, truth: GroundTruth) -> pd.Series:
    """Per product: the impression-weighted true CTR of the creatives the logging policy showed."""
    shown = market.impressions["creative_id"].value_counts()
    ctr = truth.creatives.set_index("creative_id")["true_ctr"]
    frame = market.creatives[["creative_id", "product_id"]].assign(
        n=lambda f: f["creative_id"].map(shown).fillna(0.0), ctr=lambda f: f["creative_id"].map(ctr)
    )
    frame["weighted"] = frame["n"] * frame["ctr"]
    grouped = frame.groupby("product_id")[["weighted", "n"]].sum()
    return grouped["weighted"] / grouped["n"]


def best_logged(market) -> dict[str, list[str]]:
    log = market.impressions.groupby("creative_id")["click"].agg(clicks="sum", n="size")
    rate = log["clicks"].sum() / log["n"].sum()
    log["shrunk"] = (log["clicks"] + 200 * rate) / (log["n"] + 200)
    frame = market.creatives.merge(log, left_on="creative_id", right_index=True)
    top = frame.sort_values("shrunk", ascending=False).drop_duplicates("product_id")
    return {p: list(e) for p, e in zip(top["product_id"], top["elements"])}


def top1(frame: pd.DataFrame) -> dict[str, list[str]]:
    first = frame[frame["rank"] == 1]
    return {p: list(e) for p, e in zip(first["product_id"], first["elements"])}


def score_seed(seed: int, args) -> tuple[dict, pd.DataFrame]:
    market_dir = simulated(seed, args.workdir, args.products, args.impressions)
    out = args.workdir / f"run-{seed}"
    with tempfile.TemporaryDirectory(prefix="adcraft-cache-") as cache:
        seconds, peak_mib = run_optimize(market_dir, out, Path(cache))
    market = load_market(market_dir)
    truth = GroundTruth.load(market_dir.with_name(market_dir.name + "-truth"))
    proposals = read_proposals(out)
    model = MILModel.load(out / "models" / "reward")

    def reward(product_ids, combos, contexts=None):
        return model.predict(list(product_ids), [list(c) for c in combos], contexts)

    generator = ComboGenerator.load(out / "models" / "combo", market, reward)
    subset = market.products["product_id"].tolist()[: args.exhaustive_products]
    exhaustive = best_combinations(market, reward, subset, k=1)
    rl_top = proposals[(proposals["rank"] == 1) & proposals["product_id"].isin(subset)]
    rl_reward = reward(rl_top["product_id"].tolist(), rl_top["elements"].tolist())
    optimum = exhaustive.set_index("product_id").loc[rl_top["product_id"], "reward"].to_numpy()
    picks = {
        "RL (optimize)": top1(proposals),
        "behaviour cloning": top1(behaviour_cloning_proposals(generator, k=1)),
        "element-wise greedy": top1(elementwise_greedy_proposals(market, reward, k=1)),
        "best logged": best_logged(market),
    }
    scorer = TruthScorer(market, truth)
    products = market.products["product_id"].tolist()
    true = true_values(scorer, picks, products, proposals, out, "RL (optimize)")
    oracle = oracle_values(market, truth, scorer, picks)
    share = truth.products.set_index("product_id")["traffic_share"].reindex(products).to_numpy()
    share = share / share.sum()
    logging = logging_values(market, truth).reindex(products).to_numpy()
    best = np.array([oracle[p] for p in products])
    rows = []
    for name in picks:
        value = np.array([true[name].get(p, np.nan) for p in products])
        captured = float(np.nansum(share * (value - logging)) / np.sum(share * (best - logging)))
        rows.append({"seed": seed, "method": name, "true CTR": float(np.nansum(share * value)),
                     "share of oracle lift": captured,
                     "products better than logging": float(np.mean(value > logging))})
    fidelity = json.loads((out / "run.json").read_text())["fidelity"]
    run = {
        "seed": seed, "products": len(products), "impressions": len(market.impressions),
        "optimize seconds": seconds, "peak memory MiB": peak_mib,
        "logging CTR": float(np.sum(share * logging)), "oracle CTR": float(np.sum(share * best)),
        "fidelity": f"{fidelity['passed']}/{fidelity['checked']}",
        "RL top-1 reward / reward optimum": float(np.mean(rl_reward / optimum)),
        "RL top-1 at the reward optimum": float(np.mean(rl_reward >= optimum - 1e-9)),
    }
    return run, pd.DataFrame(rows)


SCALE_SECTION = "## Scale: optimize on a large market (bench/optimize.py --scale)"


def scale(args) -> None:
    """``--scale``: simulation time, then optimize's wall time, peak memory and stage times, per seed."""
    rows = []
    for seed in args.seeds:
        started = time.perf_counter()
        folder = simulated(seed, args.workdir, args.products, args.impressions, args.world)
        simulated_s = time.perf_counter() - started
        out = args.workdir / f"run-{args.world}-{seed}-{args.products}-{args.impressions}"
        with tempfile.TemporaryDirectory(prefix="adcraft-cache-") as cache:
            seconds, peak_mib = run_optimize(folder, out, Path(cache))
        stages = json.loads((out / "run.json").read_text())["timings"]
        rows.append({"seed": seed, "products": args.products, "impressions": args.impressions,
                     "simulate seconds": simulated_s, "optimize seconds": seconds, "peak memory MiB": peak_mib,
                     **{f"{name} s": value for name, value in stages.items() if name != "total"}})
        print(rows[-1], flush=True)
    text = "\n\n".join([
        SCALE_SECTION,
        f"World `{args.world}`, seeds {args.seeds}; {args.products} products and {args.impressions} logged "
        "impressions; `adcraft optimize` with its default config in a fresh process with an empty feature cache "
        f"on {os.cpu_count()} CPU cores (wall time and peak resident memory from `os.wait4`; stage times from its "
        f"run.json). Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        markdown_table(pd.DataFrame(rows), digits=1),
    ])
    print(text)
    write_section(args.results, SCALE_SECTION, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[201, 202, 203, 204, 205])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "adcraft-bench" / "optimize")
    parser.add_argument("--products", type=int, default=120)
    parser.add_argument("--impressions", type=int, default=150_000)
    parser.add_argument("--exhaustive-products", type=int, default=12)
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results.md")
    parser.add_argument("--scale", action="store_true", help="speed and memory only, at --products x --impressions")
    parser.add_argument("--world", default="realistic", help="the simulated world of --scale")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.scale:
        scale(args)
        return
    runs, tables = [], []
    for seed in args.seeds:
        run, table = score_seed(seed, args)
        runs.append(run)
        tables.append(table)
        print(pd.DataFrame([run]).to_string(index=False))
        print(table.to_string(index=False), flush=True)
    runs_frame, scores = pd.DataFrame(runs), pd.concat(tables, ignore_index=True)
    summary = (scores.groupby("method", sort=False)[["true CTR", "share of oracle lift",
                                                      "products better than logging"]]
               .agg(["mean", "std"]))
    summary.columns = [f"{a} ({b})" for a, b in summary.columns]
    summary = summary.reset_index()
    print(summary.to_string(index=False))
    text = "\n\n".join([
        SECTION,
        f"Seeds {args.seeds}; {args.products} products, {args.impressions} logged impressions per market; "
        "`adcraft optimize` with its default config, run in a fresh process with an empty feature cache on this "
        "machine (2 CPU cores). Targets: share of the oracle lift >= 0.6, fidelity 100%, RL above behaviour "
        "cloning and element-wise greedy, <= 10 minutes and <= 4 GB per run.",
        "Per run:", markdown_table(runs_frame, digits=4),
        "Top-1 per product, scored by the true click model (mean and std over seeds):",
        markdown_table(summary, digits=4),
        "Per seed:", markdown_table(scores, digits=4),
    ])
    write_section(args.results, SECTION, text)
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
