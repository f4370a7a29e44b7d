"""References and ``adcraft optimize`` per benchmark world, scored by each world's truth, with intervals over seeds.

    python bench/worlds.py [--worlds realistic main_effects ...] [--seeds 7001 7002 7003 7004 7005]
                           [--products 30] [--impressions 30000] [--out-json DIR] [--workdir DIR]
                           [--results docs/results.md] [--table-only]

For every world of ``simulator.worlds.WORLDS`` but ``legacy`` (the worlds whose truth reads the
simulator's own pixel measures) and every seed (none of them used by the tests), it simulates a market,
runs ``adcraft optimize`` on it in a fresh process with an empty feature cache, and scores with the truth
the rank-1 creative per product of:

- ``random``: a uniformly random usable combination (one usable element per slot, each uniformly);
- ``best logged``: the logged creative with the best shrunk observed CTR (``optimize.best_logged``);
- ``plain LR argmax``: an L2 logistic regression of clicks on one-hot elements (per slot), product and
  device (``PlainLogit``), its L2 strength chosen on the latest 20% of the log by time, then per product
  the usable combination with the best score;
- ``adcraft optimize``: rank 1 of ``creatives.parquet`` with its rendered PNG (default config); a product
  whose rank 1 is marked ``kept`` (do no harm: nothing is launched for it) is scored at its logging policy's
  true value, since what runs now stays;
- ``oracle``: the best true CTR found by truth-guided coordinate ascent from every pick and every logged
  creative (``optimize.oracle_values``), every scored pick included.

Each pick except optimize's is rendered by the default compositor; every image is scored by the true
click model on its pixels (context-averaged). Per method: the share of the oracle lift
``sum_p w_p (T_p - L_p) / sum_p w_p (O_p - L_p)`` (L: the logging policy's true value per product, w:
traffic share), the harm share (products whose rank-1 true CTR is below L_p) and the true lift
``sum_p w_p T_p / sum_p w_p L_p - 1``; for optimize also the lift its run.json reports
(``evidence.lift.estimate`` if present, else ``ope.lift``), on the same relative scale, so that an
over-statement shows.

Each (world, seed) is written to its own JSON file as soon as it is done (a finished one is not run
again), so an interrupted run keeps its results; ``--table-only`` reads them and writes the section of
the results file: per world and method the mean over seeds with a 95% t-interval.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from intervals import t_half_width

from markdown import markdown_table, write_section
from optimize import TruthScorer, best_logged, logging_values, oracle_values, run_optimize, top1, true_values

from adcraft.market import Market, load_market
from adcraft.market.click_log import click_log, time_split
from adcraft.market.extra import read_extra_elements, with_extra_elements
from adcraft.market.outputs import kept_products, read_proposals
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market
from adcraft.simulator.worlds import WORLDS

SECTION = "## Benchmark worlds: references and optimize (bench/worlds.py)"
BENCH_WORLDS: tuple[str, ...] = tuple(w for w in WORLDS if w != "legacy")
METHODS: tuple[str, ...] = ("random", "best logged", "plain LR argmax", "adcraft optimize", "oracle")
OPTIMIZE = "adcraft optimize"
L2_GRID: tuple[float, ...] = (0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
HELD_OUT_FRACTION = 0.2


# -- plain logistic regression ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlainLogit:
    """``logit P(click) = b + sum_j beta_j x_j`` over one-hot columns (elements, product, device).

    Fitted by Newton's method on the penalised binomial log-likelihood of aggregated rows (``clicks`` out
    of ``trials``), ``sum_i [y_i eta_i - n_i log(1 + e^eta_i)] - l2/2 |beta|^2`` (the intercept is not
    penalised). A column never seen in the training rows keeps beta = 0.
    """

    columns: dict[str, int]
    intercept: float
    beta: np.ndarray
    l2: float

    def coefficient(self, column: str) -> float:
        index = self.columns.get(column)
        return 0.0 if index is None else float(self.beta[index])


def logit_design(rows: pd.DataFrame, columns: dict[str, int]) -> np.ndarray:
    """Dense 0/1 design of rows with a ``features`` list of column names (unknown names are dropped)."""
    design = np.zeros((len(rows), len(columns)))
    for i, names in enumerate(rows["features"]):
        for name in names:
            if name in columns:
                design[i, columns[name]] = 1.0
    return design


def fit_logit(rows: pd.DataFrame, l2: float, iterations: int = 50) -> PlainLogit:
    """Newton's method with step halving on ``PlainLogit``'s objective; rows have features, clicks, trials."""
    columns = {name: j for j, name in enumerate(sorted({n for names in rows["features"] for n in names}))}
    x = logit_design(rows, columns)
    x = np.hstack([np.ones((len(rows), 1)), x])
    y, n = rows["clicks"].to_numpy(float), rows["trials"].to_numpy(float)
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 1e-9  # the intercept: unpenalised, but kept positive definite
    theta = np.zeros(x.shape[1])
    rate = y.sum() / n.sum()
    theta[0] = math.log(rate / (1.0 - rate))

    def objective(t: np.ndarray) -> float:
        eta = x @ t
        return float(-(y @ eta - n @ np.logaddexp(0.0, eta)) + 0.5 * penalty @ (t * t))

    current = objective(theta)
    for _ in range(iterations):
        mu = 1.0 / (1.0 + np.exp(-(x @ theta)))
        gradient = x.T @ (n * mu - y) + penalty * theta
        hessian = (x.T * (n * mu * (1.0 - mu))) @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while size > 1e-6:
            trial = theta - size * step
            value = objective(trial)
            if value <= current:
                break
            size /= 2.0
        else:
            break
        converged = current - value < 1e-10 * max(1.0, abs(current))
        theta, current = trial, value
        if converged:
            break
    return PlainLogit(columns, float(theta[0]), theta[1:], l2)


def held_out_log_likelihood(model: PlainLogit, rows: pd.DataFrame) -> float:
    """Binomial log-likelihood of ``rows`` under ``model`` (constant terms left out)."""
    eta = model.intercept + logit_design(rows, model.columns) @ model.beta
    y, n = rows["clicks"].to_numpy(float), rows["trials"].to_numpy(float)
    return float(y @ eta - n @ np.logaddexp(0.0, eta))


def logit_rows(market: Market, log: pd.DataFrame) -> pd.DataFrame:
    """Clicks and trials per (creative, device) with their one-hot column names (elements by slot,
    product, device)."""
    device = log["context"].map(_device)
    frame = log.assign(device=device).groupby(["creative_id", "device"], sort=True).agg(
        product_id=("product_id", "first"), elements=("elements", "first"),
        clicks=("clicks", "sum"), trials=("trials", "sum")).reset_index()
    slots = market.config.slots
    frame["features"] = [
        [f"{slot}={e}" for slot, e in zip(slots, elements)] + [f"product={p}", f"device={d}"]
        for elements, p, d in zip(frame["elements"], frame["product_id"], frame["device"])
    ]
    return frame


def _device(context: str) -> str:
    try:
        data = json.loads(context) if context else {}
    except ValueError:
        return ""
    return str(data.get("device", "")) if isinstance(data, dict) else ""


def plain_logit(market: Market) -> PlainLogit:
    """The L2 strength with the best log-likelihood on the latest 20% of the log (by time) when trained on
    the rest, then the model refitted on the whole log with it."""
    log = click_log(market)
    train, valid = time_split(log)
    train_rows, valid_rows = logit_rows(market, train), logit_rows(market, valid)
    scores = [held_out_log_likelihood(fit_logit(train_rows, l2), valid_rows) for l2 in L2_GRID]
    return fit_logit(logit_rows(market, log), L2_GRID[int(np.argmax(scores))])


def logit_argmax(market: Market, model: PlainLogit) -> dict[str, list[str]]:
    """Per product the usable combination with the best score. The score is a sum over slots (product and
    device add the same to every combination), so the per-slot argmax is the exhaustive argmax."""
    picks = {}
    for pid in market.products["product_id"]:
        combo = []
        for slot in market.config.slots:
            usable = market.usable_elements(pid, slot)["element_id"].tolist()
            combo.append(max(usable, key=lambda e: model.coefficient(f"{slot}={e}")))
        picks[pid] = combo
    return picks


def random_combinations(market: Market, seed: int) -> dict[str, list[str]]:
    """Per product one usable element per slot, each drawn uniformly."""
    rng = np.random.default_rng([seed, 17])
    picks = {}
    for pid in market.products["product_id"]:
        picks[pid] = [str(rng.choice(market.usable_elements(pid, slot)["element_id"].to_numpy()))
                      for slot in market.config.slots]
    return picks


# -- one (world, seed) -------------------------------------------------------------------------------------


def simulated(world: str, seed: int, workdir: Path, products: int, impressions: int) -> Path:
    folder = workdir / f"market-{world}-{seed}-{products}-{impressions}"
    if not (folder / "market.json").is_file():
        simulate_market(SimulatorConfig(seed=seed, world=world, n_products=products, n_impressions=impressions),
                        folder, overwrite=True)
    return folder


def reported_lift(run: dict) -> tuple[float, str]:
    """The lift a run reports (relative to the logging policy) and where in run.json it was read."""
    evidence = run.get("evidence")
    if isinstance(evidence, dict) and isinstance(evidence.get("lift"), dict):
        estimate = evidence["lift"].get("estimate")
        if isinstance(estimate, int | float):
            return float(estimate), "evidence.lift.estimate"
    ope = run.get("ope", {})
    if ope.get("possible") and isinstance(ope.get("lift"), int | float):
        return float(ope["lift"]), "ope.lift"
    return math.nan, "none"


def machine() -> str:
    """CPU model and count, memory and OS, in words."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} x {model}{memory}, {platform.system()} {platform.release()}"


def score_world(world: str, seed: int, args) -> dict:
    """Every method's rank-1 set of one (world, seed) market, scored by the truth."""
    started = time.perf_counter()
    market_dir = simulated(world, seed, args.workdir, args.products, args.impressions)
    variant = f"-{args.config.stem}" if getattr(args, "config", None) is not None else ""
    out = args.workdir / f"run-{world}-{seed}-{args.products}-{args.impressions}{variant}"
    if out.exists():
        shutil.rmtree(out)  # a run interrupted before its JSON: start it again from nothing
    with tempfile.TemporaryDirectory(prefix="adcraft-cache-") as cache:
        seconds, peak_mib = run_optimize(market_dir, out, Path(cache), getattr(args, "config", None))
    market = load_market(market_dir)
    truth = GroundTruth.load(market_dir.with_name(market_dir.name + "-truth"))
    if (out / "elements.parquet").is_file():  # elements the run made (new backgrounds): the truth learns them
        extra = read_extra_elements(out / "elements.parquet", market)
        market, truth = with_extra_elements(market, extra), truth.with_elements(extra)
    proposals = read_proposals(out)
    lr = plain_logit(market)
    picks = {
        "random": random_combinations(market, seed),
        "best logged": best_logged(market),
        "plain LR argmax": logit_argmax(market, lr),
        OPTIMIZE: top1(proposals),
    }
    scorer = TruthScorer(market, truth)
    products = market.products["product_id"].tolist()
    true = true_values(scorer, picks, products, proposals, out, OPTIMIZE)
    oracle = oracle_values(market, truth, scorer, picks)
    true["oracle"] = oracle
    share = truth.products.set_index("product_id")["traffic_share"].reindex(products).to_numpy()
    share = share / share.sum()
    logging_by_product = logging_values(market, truth)
    logging = logging_by_product.reindex(products).to_numpy()
    for pid in kept_products(proposals):  # do no harm: nothing launched there, what runs now stays (its L_p)
        true[OPTIMIZE][pid] = float(logging_by_product[pid])
    best = np.array([oracle[p] for p in products])
    methods = {}
    for name in METHODS:
        value = np.array([true[name][p] for p in products])
        methods[name] = {
            "share of oracle lift": float(np.sum(share * (value - logging)) / np.sum(share * (best - logging))),
            "harm share": float(np.mean(value < logging)),
            "true lift": float(np.sum(share * value) / np.sum(share * logging) - 1.0),
            "true CTR": float(np.sum(share * value)),
        }
    run = json.loads((out / "run.json").read_text())
    lift, source = reported_lift(run)
    methods[OPTIMIZE]["reported lift"] = lift
    evidence = run.get("evidence") if isinstance(run.get("evidence"), dict) else {}
    if isinstance(evidence.get("lift"), dict):  # the interval and the do-no-harm count, for bench/evidence.py
        methods[OPTIMIZE].update({"reported low": evidence["lift"].get("low"),
                                  "reported high": evidence["lift"].get("high"),
                                  "reported level": evidence["lift"].get("level"),
                                  "proposals lift": (evidence.get("proposals_lift") or {}).get("estimate"),
                                  "kept products": len(kept_products(proposals))})
    return {
        "world": world, "seed": seed, "configured products": args.products, "configured impressions": args.impressions,
        "products": len(products),
        "impressions": len(market.impressions), "logging CTR": float(np.sum(share * logging)),
        "oracle CTR": float(np.sum(share * best)), "plain LR l2": lr.l2, "reported lift source": source,
        "optimize seconds": seconds, "optimize peak memory MiB": peak_mib,
        "seconds": time.perf_counter() - started,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
        "optimize config": str(args.config) if getattr(args, "config", None) is not None else "default",
        "methods": methods,
    }


def result_path(folder: Path, world: str, seed: int, products: int, impressions: int) -> Path:
    return folder / f"{world}-{seed}-{products}-{impressions}.json"


def write_result(path: Path, result: dict) -> None:
    """Write one result whole or not at all (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(result, indent=1, allow_nan=True))
    os.replace(partial, path)


# -- the table ---------------------------------------------------------------------------------------------


def mean_interval(values: list[float], spec: str = ".3f") -> str:
    """``mean [low, high]``: the 95% t-interval over seeds (only the mean for a single seed), numbers
    formatted with ``spec``."""
    x = np.array([v for v in values if v == v], dtype=float)
    if len(x) == 0:
        return "n/a"
    if len(x) == 1:
        return f"{x[0]:{spec}}"
    half = t_half_width(x)
    return f"{x.mean():{spec}} [{x.mean() - half:{spec}}, {x.mean() + half:{spec}}]"


def world_table(results: list[dict]) -> pd.DataFrame:
    rows = []
    for name in METHODS:
        got = [r["methods"][name] for r in results]
        row = {"method": name}
        for metric in ("share of oracle lift", "harm share", "true lift"):
            row[metric] = mean_interval([g[metric] for g in got])
        if name == OPTIMIZE:
            row["reported lift"] = mean_interval([g["reported lift"] for g in got])
            row["reported - true lift"] = mean_interval([g["reported lift"] - g["true lift"] for g in got])
        else:
            row["reported lift"] = row["reported - true lift"] = ""
        rows.append(row)
    return pd.DataFrame(rows)


def read_results(args) -> list[dict]:
    """The results in ``args.out_json`` of markets of ``args.products`` and ``args.impressions`` in
    ``args.worlds``; ``SystemExit`` when there is none."""
    results = [json.loads(p.read_text()) for p in sorted(args.out_json.glob("*.json"))]
    results = [r for r in results if r["configured products"] == args.products
               and r["configured impressions"] == args.impressions and r["world"] in args.worlds]
    if not results:
        raise SystemExit(f"no results for {args.products} products and {args.impressions} impressions "
                         f"in {args.out_json}")
    return results


def write_table(args) -> None:
    results = read_results(args)
    machines = sorted({r["machine"] for r in results})
    finished = sorted(r["finished"] for r in results)
    parts = [
        SECTION,
        f"Markets of {args.products} products (the `sparse` world simulates four times as many at the same "
        f"traffic) and {args.impressions} logged impressions, one per (world, seed); `adcraft optimize` with "
        "its default config in a fresh process with an empty feature cache. The size was chosen by measuring "
        "first: at 40 products and 40k impressions one `adcraft optimize` took 212 s of wall time (53 s of CPU; "
        "823 MiB peak) and the simulation 46 s on the 2-core machine below while other work shared it (load "
        "about 7); 30 products and 30k impressions keep the same 1000 impressions per product and one (world, "
        "seed) to a few minutes. The default market (120 products, 150k impressions) is `bench/optimize.py`'s. "
        "Each cell is the mean over seeds and its 95% t-interval over seeds. "
        "Share of the oracle lift: `sum_p w_p (T_p - L_p) / sum_p w_p (O_p - L_p)` (T: the method's rank-1 "
        "true CTR, L: the logging policy's true CTR, O: the oracle's, w: traffic share); harm share: the "
        "share of products whose rank-1 true CTR is below L_p; true lift: `sum_p w_p T_p / sum_p w_p L_p - 1`; "
        "reported lift: what optimize's run.json reports as its lift (`evidence.lift.estimate` if present, "
        "else `ope.lift`), on the same scale, and its excess over the true lift. A product whose rank 1 optimize "
        "marks `kept` (do no harm: it launches nothing there) counts at its logging policy's true value L_p.",
        f"Run {finished[0]} to {finished[-1]} on {'; '.join(machines)}; table written "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
    ]
    summary = []
    for world in args.worlds:
        mine = [r for r in results if r["world"] == world]
        if mine:
            row = {"world": world, "seeds": len(mine)}
            for name in METHODS[:-1]:
                row[name] = float(np.mean([r["methods"][name]["share of oracle lift"] for r in mine]))
            row["optimize reported - true lift"] = float(np.nanmean(
                [r["methods"][OPTIMIZE]["reported lift"] - r["methods"][OPTIMIZE]["true lift"] for r in mine]))
            summary.append(row)
    parts.append("Share of the oracle lift per world, and by how much optimize's reported lift exceeds its true lift "
                 "(means over seeds; intervals in the sections below, which are "
                 "t-intervals, not clipped to [0, 1], and wide with few seeds):\n\n"
                 + markdown_table(pd.DataFrame(summary), digits=3))
    for world in args.worlds:
        mine = sorted((r for r in results if r["world"] == world), key=lambda r: r["seed"])
        seeds = [r["seed"] for r in mine]
        if not mine:
            parts.append(f"### {world}\n\nNo seed finished yet.")
            continue
        products = sorted({r["products"] for r in mine})
        minutes = np.mean([r["seconds"] for r in mine]) / 60
        sources = sorted({r["reported lift source"] for r in mine})
        parts.append(
            f"### {world}\n\n{len(mine)} seed{'s' if len(mine) != 1 else ''} ({', '.join(map(str, seeds))}); "
            f"{'/'.join(map(str, products))} products; optimize {np.mean([r['optimize seconds'] for r in mine]):.0f} s "
            f"and {max(r['optimize peak memory MiB'] for r in mine):.0f} MiB at most per run; {minutes:.1f} min per "
            f"(world, seed) in all; reported lift read from {', '.join(sources)}.\n\n"
            + markdown_table(world_table(mine))
        )
    write_section(args.results, SECTION, "\n\n".join(parts))
    print(f"wrote {args.results} ({len(results)} results)")


def market_options(parser: argparse.ArgumentParser, seeds: list[int], out_json: str) -> None:
    """The options of a bench that scores one market per (world, seed): which, how big, where its files go."""
    parser.add_argument("--worlds", nargs="+", default=list(BENCH_WORLDS), choices=BENCH_WORLDS)
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--products", type=int, default=30)
    parser.add_argument("--impressions", type=int, default=30_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "adcraft-bench" / "worlds")
    parser.add_argument("--out-json", type=Path, default=Path(tempfile.gettempdir()) / "adcraft-bench" / out_json,
                        help="one JSON file per (world, seed), written as each finishes")
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results.md")
    parser.add_argument("--table-only", action="store_true", help="write the tables from the JSON files only")


def run_markets(args, score, describe) -> None:
    """``score(world, seed, args)`` for every (world, seed) without a result yet, seed-major (partial results
    cover every world), each result written as it finishes and ``describe(result)`` printed; a market that fails
    is reported and left for the next run, so one failure does not stop the others."""
    args.workdir.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for world in args.worlds:
            path = result_path(args.out_json, world, seed, args.products, args.impressions)
            if path.is_file():
                continue
            try:
                result = score(world, seed, args)
            except (Exception, SystemExit):
                print(f"{world} {seed} failed:", flush=True)
                traceback.print_exc()
                continue
            write_result(path, result)
            print(f"{world} {seed}: {describe(result)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    market_options(parser, seeds=[7001, 7002, 7003, 7004, 7005], out_json="worlds-results")
    parser.add_argument("--config", type=Path, default=None,
                        help="an optimize config file for every run (an ablation: give it its own --out-json)")
    args = parser.parse_args()
    if not args.table_only:
        run_markets(args, score_world,
                    lambda result: f"{json.dumps(result['methods'])} {result['seconds']:.0f} s")
    write_table(args)


if __name__ == "__main__":
    main()
