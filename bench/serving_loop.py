"""The three-round loop: optimize, review, serve with honest logs, export the log, optimize again on it.

    python bench/serving_loop.py [--seeds 9221 9222 9223] [--world realistic] [--products 24]
                                 [--impressions 20000] [--rounds 3] [--traffic 4000] [--top-k 3]
                                 [--config OPTIMIZE.yaml] [--no-carry-over] [--workdir DIR]
                                 [--results docs/results.md]

For each seed (none of them used elsewhere) it simulates a benchmark world's market; round k then runs:

1. ``optimize`` on round k's market (the simulated one in round 1, the previous round's export after it),
   with ``--decisions`` the loop's database from round 2 on;
2. the simulated reviewer of ``bench/reviewers.py`` (hidden taste drawn with the seed) decides on every row
   of the review page, through the served API (``GET /v1/review/products``, ``POST /v1/decisions``);
3. ``--traffic`` impressions through ``POST /v1/serve`` (the app of ``adcraft serve`` in process, behind its
   token), each for a product drawn by its traffic share in a context drawn from the simulated traffic; the
   impression is clicked with the true CTR of the served creative in that context (the world's truth on
   the creative as rendered), and a click is sent to ``POST /v1/feedback``;
4. ``adcraft logs export`` (``export_served_log``): round k's market with the served log appended, the
   market of round k + 1.

From round 2 on, ``optimize --decisions`` ranks the combinations reviewers approved among its candidates
(``pipeline.reviews.approvals``), so a creative served after approval can be proposed again, with logs.

Per round: the true CTR of the served traffic (the mean over served impressions of the served creative's
true CTR in the impression's context; the clicks drawn from it are the log), the reviewer's acceptance, the
served impressions whose propensity is below 1 (the policy chose among several creatives), and from round 2
on the support of the run's off-policy evidence in the exported logs: run.json's
``evidence.supported.matched_impressions`` (impressions showing a creative the run proposes) and
``ope.matched_impressions``. The logging policy's true CTR of the simulated market is the reference.
Cells are means over seeds with the 95% t-interval over seeds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from optimize import logging_values
from reviewers import SimulatedReviewer, round_arguments, traffic_shares
from worlds import machine, mean_interval, simulated, write_result

from markdown import markdown_table, write_section

from adcraft.configuration import load_config
from adcraft.market import Market, load_market
from adcraft.pipeline.optimize import OptimizeConfig, optimize
from adcraft.pipeline.reviews import sqlite_url
from adcraft.render.from_market import MarketRenderer
from adcraft.serve.app import create_app
from adcraft.serve.config import ServeConfig
from adcraft.serve.log_export import export_served_log
from adcraft.serve.policy import ServingPolicyConfig
from adcraft.simulator import GroundTruth
from adcraft.simulator.click_model import contexts

SECTION = "## The three-round loop: review, serve, export, optimize again (bench/serving_loop.py)"
TRAFFIC = 4000  # impressions served per round by default
TOKEN = "serving-loop-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAGE = 100  # the review page's largest page


def section(traffic: int, carry_over: bool) -> str:
    """The results heading of a run serving ``traffic`` impressions per round (with the policy's ``carry_over``
    or not): its own section unless the defaults, so that runs at several volumes and policies stand side by
    side."""
    if traffic == TRAFFIC and not carry_over:  # the runs from before carry_over keep their section
        return SECTION
    policy = (" with counts carried across rounds", " --carry-over") if carry_over else ("", "")
    return (f"## The three-round loop at {traffic} served impressions per round{policy[0]} "
            f"(bench/serving_loop.py --traffic {traffic}{policy[1]})")


class ContextTruth:
    """True CTR of a creative, by the world's truth, in each simulated traffic context (cached per creative)."""

    def __init__(self, market: Market, truth: GroundTruth) -> None:
        self.truth, self.renderer = truth, MarketRenderer(market)
        self.cache: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}

    def __call__(self, product_id: str, elements: tuple[str, ...], context: int) -> float:
        key = (product_id, tuple(elements))
        if key not in self.cache:
            image = self.renderer.render(product_id, list(elements)).image
            self.cache[key] = np.asarray(self.truth.ctr_by_context_of_image(product_id, list(elements), image))
        return float(self.cache[key][context])


@dataclass(frozen=True)
class RoundResult:
    """What one round of the loop measured (module docstring)."""

    round: int
    acceptance: float
    served: int
    clicks: int
    served_true_ctr: float
    chosen_among_several: int
    exported_impressions: int
    supported_matched_impressions: int | None
    ope_matched_impressions: int | None
    optimize_seconds: float
    serve_seconds: float


def review_through_api(client: TestClient, reviewer: SimulatedReviewer) -> float:
    """The reviewer's decision on every row the review page shows, posted to ``/v1/decisions``; returns the
    approved share of the proposals (rows not marked kept, which the page shows as proposals too)."""
    decided, approved, offset, total = 0, 0, 0, None
    while total is None or offset < total:
        page = client.get("/v1/review/products", params={"offset": offset, "limit": PAGE}, headers=AUTH)
        page.raise_for_status()
        body = page.json()
        total = body["total"]
        for product in body["products"]:
            current = tuple(product["current"]["elements"]) if product["current"] else None
            for proposal in product["proposals"]:
                decision, note = reviewer.decide(proposal["elements"])
                answer = client.post("/v1/decisions", headers=AUTH, json={
                    "product_id": product["product_id"], "creative_id": proposal["creative_id"],
                    "decision": decision, "note": note})
                answer.raise_for_status()
                if tuple(proposal["elements"]) != current:
                    decided += 1
                    approved += decision == "approve"
        offset += PAGE
    return approved / decided if decided else float("nan")


def serve_traffic(client: TestClient, truth: ContextTruth, products: list[str], share: np.ndarray, n: int,
                  rng: np.random.Generator) -> tuple[int, float, int]:
    """``n`` impressions through ``/v1/serve``, clicked with the served creative's true CTR in the drawn
    context (clicks sent to ``/v1/feedback``); returns (clicks, mean true CTR served, impressions served
    with a propensity below 1)."""
    traffic = contexts()
    weights = np.array([w for _, w in traffic])
    clicks, expected, several = 0, 0.0, 0
    for _ in range(n):
        product_id = products[rng.choice(len(products), p=share)]
        context = int(rng.choice(len(traffic), p=weights / weights.sum()))
        answer = client.post("/v1/serve", headers=AUTH, json={"product_id": product_id,
                                                                "context": traffic[context][0]})
        answer.raise_for_status()
        served = answer.json()
        ctr = truth(product_id, tuple(served["elements"]), context)
        expected += ctr
        several += served["propensity"] < 1.0
        if rng.random() < ctr:
            clicks += 1
            client.post("/v1/feedback", headers=AUTH, json={"impression_id": served["impression_id"]}
                        ).raise_for_status()
    return clicks, expected / max(n, 1), several


def run_loop(market_dir: Path, truth: GroundTruth, reviewer: SimulatedReviewer, workdir: Path,
             config: OptimizeConfig, rounds: int, traffic: int, seed: int,
             policy: ServingPolicyConfig = ServingPolicyConfig()) -> list[RoundResult]:
    """The loop of the module docstring from the market at ``market_dir``, in ``workdir`` (emptied first), serving
    with ``policy``."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    database = sqlite_url(workdir / "decisions.sqlite")
    original = load_market(market_dir)
    products = original.products["product_id"].tolist()
    share = traffic_shares(truth, products)
    truth_by_context = ContextTruth(original, truth)
    rng = np.random.default_rng(seed)
    results = []
    for k in range(1, rounds + 1):
        run_dir = workdir / f"run-{k}"
        clock = time.perf_counter()
        result = optimize(market_dir, run_dir, config, decisions=database if k > 1 else None)
        optimize_seconds = time.perf_counter() - clock
        supported = result.run["evidence"].get("supported", {}).get("matched_impressions")
        ope = result.run["ope"].get("matched_impressions")
        serve_config = ServeConfig(run_dir=run_dir, market_dir=market_dir, token=TOKEN, database_url=database,
                                   policy=policy)
        clock = time.perf_counter()
        with TestClient(create_app(serve_config)) as client:
            acceptance = review_through_api(client, reviewer)
            clicks, served_ctr, several = serve_traffic(client, truth_by_context, products, share, traffic, rng)
        serve_seconds = time.perf_counter() - clock
        exported = export_served_log(database, run_dir, market_dir, workdir / f"market-{k + 1}")
        results.append(RoundResult(k, acceptance, traffic, clicks, served_ctr, several, exported.impressions,
                                   supported if k > 1 else None, ope if k > 1 else None, optimize_seconds,
                                   serve_seconds))
        print(seed, json.dumps(results[-1].__dict__), flush=True)
        market_dir = exported.out
    return results


def run_seed(seed: int, args) -> dict:
    started = time.perf_counter()
    market_dir = simulated(args.world, seed, args.workdir, args.products, args.impressions)
    market = load_market(market_dir)
    truth = GroundTruth.load(market_dir.with_name(market_dir.name + "-truth"))
    reviewer = SimulatedReviewer.draw(market, seed, {"background": args.disliked_backgrounds,
                                                      "highlight": args.disliked_highlights})
    config = load_config(OptimizeConfig, args.config) if args.config is not None else OptimizeConfig(top_k=args.top_k)
    rounds = run_loop(market_dir, truth, reviewer, args.workdir / f"loop-{seed}", config, args.rounds,
                      args.traffic, seed, ServingPolicyConfig(carry_over=args.carry_over))
    products = market.products["product_id"].tolist()
    logging = logging_values(market, truth).reindex(products).to_numpy()
    return {
        "seed": seed, "world": args.world, "products": len(products), "impressions": len(market.impressions),
        "traffic": args.traffic, "carry over": args.carry_over, "disliked": sorted(reviewer.disliked),
        "logging CTR": float(np.sum(traffic_shares(truth, products) * logging)),
        "rounds": [r.__dict__ for r in rounds], "seconds": time.perf_counter() - started, "machine": machine(),
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def round_table(results: list[dict], rounds: int) -> pd.DataFrame:
    rows = []
    for k in range(rounds):
        got = [r["rounds"][k] for r in results]

        def cell(name: str, spec: str, got=got) -> str:
            values = [g[name] for g in got if g[name] is not None]
            return mean_interval(values, spec) if values else "-"

        rows.append({
            "round": k + 1, "acceptance": cell("acceptance", ".3f"),
            "served true CTR": cell("served_true_ctr", ".4f"),
            "served - logging true CTR": mean_interval(
                [g["served_true_ctr"] - r["logging CTR"] for g, r in zip(got, results)], ".4f"),
            "served with p < 1": cell("chosen_among_several", ".0f"),
            "clicks": cell("clicks", ".0f"),
            "evidence.supported.matched_impressions": cell("supported_matched_impressions", ".0f"),
            "ope.matched_impressions": cell("ope_matched_impressions", ".0f"),
        })
    return pd.DataFrame(rows)


def rise_table(results: list[dict], rounds: int) -> pd.DataFrame:
    """Round over round, paired by seed: the change of the served true CTR from the round before and from round 1
    (mean [95% t-interval over seeds]), how many seeds rose, and each seed's change."""
    rows = []
    for k in range(1, rounds):
        for base, label in [(k - 1, "the round before")] + ([(0, "round 1")] if k > 1 else []):
            changes = [r["rounds"][k]["served_true_ctr"] - r["rounds"][base]["served_true_ctr"] for r in results]
            rows.append({"round": k + 1, "change from": label, "seeds": len(changes),
                         "change of served true CTR": mean_interval(changes, "+.4f"),
                         "seeds that rose": sum(c > 0 for c in changes),
                         "per seed": ", ".join(f"{c:+.4f}" for c in changes)})
    return pd.DataFrame(rows)


def paired_table(results: list[dict], others: list[dict], rounds: int) -> pd.DataFrame:
    """Per round, this run against another run of the same seeds and settings (other code or config), paired by
    seed: the served true CTR of each and its difference, the rise of each from round 1, and the round's
    support (``evidence.supported.matched_impressions``) of each, per seed."""
    theirs = {r["seed"]: r for r in others}
    pairs = [(r, theirs[r["seed"]]) for r in results if r["seed"] in theirs]
    rows = []
    for k in range(rounds):
        def ctr(run: dict, k: int = k) -> float:
            return run["rounds"][k]["served_true_ctr"]

        def rise(run: dict, k: int = k) -> float:
            return run["rounds"][k]["served_true_ctr"] - run["rounds"][0]["served_true_ctr"]

        def support(run: dict, k: int = k) -> str:
            value = run["rounds"][k]["supported_matched_impressions"]
            return "-" if value is None else str(value)

        rows.append({
            "round": k + 1, "seeds": len(pairs),
            "served true CTR, this run": mean_interval([ctr(a) for a, _ in pairs], ".4f"),
            "served true CTR, other run": mean_interval([ctr(b) for _, b in pairs], ".4f"),
            "this - other": mean_interval([ctr(a) - ctr(b) for a, b in pairs], "+.4f"),
            "rise from round 1, this run": mean_interval([rise(a) for a, _ in pairs], "+.4f"),
            "rise from round 1, other run": mean_interval([rise(b) for _, b in pairs], "+.4f"),
            "matched impressions per seed, this run": ", ".join(support(a) for a, _ in pairs),
            "matched impressions per seed, other run": ", ".join(support(b) for _, b in pairs),
        })
    return pd.DataFrame(rows)


def write_table(results: list[dict], args) -> None:
    seeds = [r["seed"] for r in results]
    config = f"the optimize config {args.config}" if args.config is not None else f"default config, top {args.top_k}"
    counts = "each arm's counts from every round so far" if args.carry_over else "each arm's counts from the round"
    parts = [
        section(args.traffic, args.carry_over),
        f"World `{args.world}`, {args.products} products and {args.impressions} logged impressions per seed; "
        f"seeds {', '.join(map(str, seeds))}; {args.rounds} rounds of: `adcraft optimize` ({config}; from round 2 "
        "with `--decisions`) on the round's market; the simulated reviewer of `bench/reviewers.py` (rejects any "
        f"creative showing one of {args.disliked_backgrounds} backgrounds and {args.disliked_highlights} "
        "highlights drawn with the seed) deciding on every row through `POST /v1/decisions`; "
        f"{args.traffic} impressions through `POST /v1/serve` of the in-process app (Thompson sampling with a "
        f"5% uniform floor over the approved creatives and the current one, {counts}), each clicked with the served "
        "creative's true CTR in its drawn context and the click sent to `POST /v1/feedback`; then "
        "`export_served_log` (`adcraft logs export`) writes the next round's market: the round's market with the "
        "served log appended. Served true CTR: mean over served impressions of the served creative's true CTR "
        "in the impression's context. Logging policy true CTR (the simulated market's): "
        f"{mean_interval([r['logging CTR'] for r in results], '.4f')}. From round 2: the support of the run's "
        "evidence in the logs it read (impressions of creatives it proposes). Cells: mean over seeds "
        "[95% t-interval over seeds].",
        f"Run {min(r['finished'] for r in results)} to {max(r['finished'] for r in results)} on "
        f"{'; '.join(sorted({r['machine'] for r in results}))}; {np.mean([r['seconds'] for r in results]) / 60:.1f} "
        f"min per seed ({np.mean([g['optimize_seconds'] for r in results for g in r['rounds']]):.0f} s per optimize, "
        f"{np.mean([g['serve_seconds'] for r in results for g in r['rounds']]):.0f} s per round of review and "
        "traffic).",
        "From round 2 the run ranks the combinations reviewers approved last among its candidates, with "
        "P(approve) = 1 (`pipeline.reviews`), so a creative served after approval can be proposed again, with logs.",
        markdown_table(round_table(results, args.rounds)),
        "Per seed, from round 2 on, `evidence.supported.matched_impressions` (served true CTR): " + "; ".join(
            f"{r['seed']}: " + ", ".join(f"round {g['round']} {g['supported_matched_impressions']} "
                                         f"({g['served_true_ctr']:.4f})" for g in r["rounds"][1:])
            for r in results) + ".",
        f"Round over round, paired by seed (seeds in the order {', '.join(map(str, seeds))}):",
        markdown_table(rise_table(results, args.rounds)),
    ]
    if args.paired_with is not None:
        others = [json.loads(path.read_text()) for path in (paired_file(args.paired_with, seed, args)
                                                           for seed in seeds) if path is not None]
        parts += [f"Against the run in `{args.paired_with}` (the same seeds and settings, other code or config; "
                  f"{len(others)} of {len(seeds)} seeds there), paired by seed, mean [95% t-interval over seeds]:",
                  markdown_table(paired_table(results, others, args.rounds))]
    write_section(args.results, section(args.traffic, args.carry_over), "\n\n".join(parts))
    print(f"wrote {args.results}")


def result_file(workdir: Path, seed: int, args, carry_over: bool | None = None) -> Path:
    """Where one seed's result of a run with ``args``' settings (``carry_over`` given: with that policy) is kept
    in ``workdir``."""
    carry = "-carry" if (args.carry_over if carry_over is None else carry_over) else ""
    return workdir / (f"result-{args.world}-{seed}-{args.products}-{args.impressions}-{args.rounds}-{args.traffic}"
                      f"{carry}.json")


def paired_file(workdir: Path, seed: int, args) -> Path | None:
    """The result of one seed of the other run in ``workdir``: with the same settings, with this run's serving
    policy or the other one (the run compared may differ in it); None when it has none."""
    for carry_over in (args.carry_over, not args.carry_over):
        if (path := result_file(workdir, seed, args, carry_over)).is_file():
            return path
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    round_arguments(parser, [9221, 9222, 9223], "serving")
    parser.add_argument("--traffic", type=int, default=TRAFFIC, help="impressions served per round")
    parser.add_argument("--config", type=Path, default=None, help="an optimize config file (default: defaults)")
    parser.add_argument("--carry-over", action=argparse.BooleanOptionalAction,
                        default=ServingPolicyConfig().carry_over,
                        help="the serving policy's carry_over: a creative's counts from every round so far (the "
                             "default), or from the round alone")
    parser.add_argument("--paired-with", type=Path, default=None,
                        help="the --workdir of another run of the same seeds and settings (other code or config): "
                             "a table paired by seed is added")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        path = result_file(args.workdir, seed, args)
        if not path.is_file():
            write_result(path, run_seed(seed, args))
        results.append(json.loads(path.read_text()))
    write_table(results, args)


if __name__ == "__main__":
    main()
