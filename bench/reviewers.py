"""Reviewers who teach: does ``optimize --decisions`` learn what reviewers reject, without losing clicks?

    python bench/reviewers.py [--seeds 9121 9122 9123] [--world realistic] [--products 24]
                              [--impressions 20000] [--rounds 3] [--top-k 3] [--disliked-backgrounds 3]
                              [--disliked-highlights 2] [--workdir DIR] [--results docs/results.md]

For each seed (none of them used elsewhere) it simulates a benchmark world's market and a simulated
reviewer with a hidden taste: it dislikes ``--disliked-backgrounds`` of the market's shared backgrounds and
``--disliked-highlights`` of its shared highlights, drawn with the seed; it rejects a creative that shows
any of them (its note names them) and approves every other one. Then, round after round:

1. ``optimize`` (default config, top-K proposals per product; from round 2 on with ``--decisions`` the
   database of every earlier round);
2. the reviewer decides on every row of the run's ``creatives.parquet``, as the review page shows them,
   through the review page's own store (``DecisionStore.record``, what ``POST /v1/decisions`` calls),
   into one database per seed.

Per round, with the world's truth (context-averaged true CTR of the PNG the run rendered):

- acceptance: the share of the run's proposals (rows not marked ``kept``) the reviewer approves;
- rank 1 true CTR: the traffic-weighted true CTR of each product's rank 1 as the run would launch it (a
  ``kept`` rank 1 is what runs now and counts at the logging policy's true value);
- approved rank 1 true CTR: per product the first approved row in rank order (what launches once the
  review is done); a product with no approved row, or whose first approved row is ``kept``, keeps its
  logging policy (its true value);
- first approved proposal true CTR: the first approved row not marked ``kept`` (none: the logging policy),
  the proposals' own quality with do no harm left aside;
- the logging policy's true CTR, the reference both are measured against.

Each seed is written to its own JSON file as soon as it is done; the section of the results file gives per
round the mean over seeds and the 95% t-interval over seeds, and the change from round 1 (paired by seed).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from optimize import TruthScorer, logging_values
from PIL import Image
from worlds import machine, mean_interval, simulated, write_result

from markdown import markdown_table, write_section

from adcraft.market import Market, load_market
from adcraft.market.outputs import read_proposals
from adcraft.pipeline.optimize import OptimizeConfig, load_run_reward, optimize
from adcraft.pipeline.reviews import sqlite_url
from adcraft.serve.decisions import DecisionStore
from adcraft.serve.run_view import RunView
from adcraft.simulator import GroundTruth

SECTION = "## Reviewers who teach (bench/reviewers.py)"
MEASURES = ("rank 1", "approved rank 1", "first approved proposal")


@dataclass(frozen=True)
class SimulatedReviewer:
    """A reviewer with a hidden taste: rejects a creative showing any of ``disliked``, approves the rest."""

    disliked: frozenset[str]

    @classmethod
    def draw(cls, market: Market, seed: int, counts: dict[str, int]) -> SimulatedReviewer:
        """Dislikes ``counts[slot]`` of the shared elements of each slot, drawn with ``seed``."""
        rng = np.random.default_rng(seed)
        disliked: set[str] = set()
        for slot, n in counts.items():
            shared = market.elements[(market.elements["slot"] == slot) & market.elements["product_id"].isna()]
            ids = sorted(shared["element_id"])
            disliked |= set(rng.choice(ids, size=min(n, len(ids)), replace=False).tolist())
        return cls(frozenset(disliked))

    def decide(self, elements) -> tuple[str, str]:
        """(decision, note) on a creative of these elements."""
        shown = sorted(self.disliked & set(elements))
        if shown:
            return "reject", f"not with {', '.join(shown)}"
        return "approve", "fine"


def review_run(run_dir: Path, market: Market, reviewer: SimulatedReviewer, database: str) -> pd.DataFrame:
    """The reviewer's decision on every row of the run, recorded through the review page's store; returns the
    run's rows with ``decision``."""
    market, model = load_run_reward(run_dir, market)
    view = RunView.of_run(run_dir, market, model)
    store = DecisionStore(database, view)
    try:
        decided = []
        for product_id in view.product_ids:
            for proposal in view.review(product_id).proposals:
                decision, note = reviewer.decide(proposal.elements)
                store.record(product_id, proposal.creative_id, decision, note)
                decided.append((product_id, proposal.rank, decision))
    finally:
        store.dispose()
    frame = read_proposals(run_dir)
    decisions = pd.DataFrame(decided, columns=["product_id", "rank", "decision"])
    return frame.merge(decisions, on=["product_id", "rank"], how="left", validate="one_to_one")


def traffic_shares(truth: GroundTruth, products: list[str]) -> np.ndarray:
    share = truth.products.set_index("product_id")["traffic_share"].reindex(products).to_numpy(dtype=float)
    return share / share.sum()


def true_ctr(scorer: TruthScorer, run_dir: Path, row) -> float:
    """The context-averaged true CTR of a row of ``creatives.parquet``, on the PNG the run rendered."""
    image = Image.open(run_dir / row.image).convert("RGB")
    return scorer.exact(row.product_id, list(row.elements), image)


def launched_values(scorer: TruthScorer, run_dir: Path, decided: pd.DataFrame, logging: pd.Series
                    ) -> dict[str, dict[str, float]]:
    """Per measure and product, a true CTR: ``rank 1`` as the run would launch it, ``approved rank 1`` the
    first approved row (a kept row, or none approved: what runs now, the logging policy's value) and
    ``first approved proposal`` the first approved row not marked kept (none: the logging policy's value)."""
    kept = decided["kept"] if "kept" in decided else pd.Series(False, index=decided.index)
    values: dict[str, dict[str, float]] = {"rank 1": {}, "approved rank 1": {}, "first approved proposal": {}}
    for product_id, group in decided.assign(kept=kept).sort_values("rank").groupby("product_id"):
        rows = list(group.itertuples(index=False))
        picks = {"rank 1": rows[0], "approved rank 1": next((r for r in rows if r.decision == "approve"), None),
                 "first approved proposal": next((r for r in rows if r.decision == "approve" and not r.kept), None)}
        for name, row in picks.items():
            values[name][product_id] = (float(logging[product_id]) if row is None or row.kept
                                        else true_ctr(scorer, run_dir, row))
    return values


def decisions_note(run_dir: Path) -> tuple[int, int]:
    """(decisions, pairs) the run's learned reviewer was fitted on, read from its notes (0, 0 without one)."""
    for note in json.loads((run_dir / "run.json").read_text())["notes"]:
        if "learned reviewer preference" in note:
            words = note.split()
            decisions = int(words[words.index("decisions") - 1])
            pairs = int(words[words.index("approved-over-rejected") - 1])
            return decisions, pairs
    return 0, 0


def run_seed(seed: int, args) -> dict:
    started = time.perf_counter()
    market_dir = simulated(args.world, seed, args.workdir, args.products, args.impressions)
    market = load_market(market_dir)
    truth = GroundTruth.load(market_dir.with_name(market_dir.name + "-truth"))
    reviewer = SimulatedReviewer.draw(market, seed, {"background": args.disliked_backgrounds,
                                                      "highlight": args.disliked_highlights})
    database_file = args.workdir / f"decisions-{seed}.sqlite"
    database_file.unlink(missing_ok=True)
    database = sqlite_url(database_file)
    products = market.products["product_id"].tolist()
    share = pd.Series(traffic_shares(truth, products), index=products)
    logging = logging_values(market, truth).reindex(products)
    scorer = TruthScorer(market, truth)
    config = OptimizeConfig(top_k=args.top_k)
    rounds = []
    for k in range(1, args.rounds + 1):
        out = args.workdir / f"run-{seed}-round{k}"
        shutil.rmtree(out, ignore_errors=True)
        clock = time.perf_counter()
        optimize(market_dir, out, config, decisions=database if k > 1 else None)
        seconds = time.perf_counter() - clock
        decided = review_run(out, market, reviewer, database)
        proposals = decided[~decided["kept"]] if "kept" in decided else decided
        values = launched_values(scorer, out, decided, logging)
        used, pairs = decisions_note(out)
        rounds.append({
            "round": k, "proposals": len(proposals),
            "acceptance": float((proposals["decision"] == "approve").mean()) if len(proposals) else math.nan,
            **{f"{name} true CTR": float(sum(share[p] * v for p, v in found.items()))
               for name, found in values.items()},
            "decisions used": used, "pairs used": pairs, "optimize seconds": seconds,
        })
        print(seed, json.dumps(rounds[-1]), flush=True)
    return {
        "seed": seed, "world": args.world, "products": len(products), "impressions": len(market.impressions),
        "configured products": args.products, "configured impressions": args.impressions, "top_k": args.top_k,
        "disliked": sorted(reviewer.disliked), "logging CTR": float((share * logging).sum()),
        "rounds": rounds, "seconds": time.perf_counter() - started, "machine": machine(),
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def round_table(results: list[dict], rounds: int) -> pd.DataFrame:
    """Per round: means over seeds with 95% t-intervals, and the change from round 1 paired by seed."""
    rows = []
    for k in range(rounds):
        got = [r["rounds"][k] for r in results]
        first = [r["rounds"][0] for r in results]
        rows.append({
            "round": k + 1,
            "acceptance": mean_interval([g["acceptance"] for g in got]),
            "acceptance - round 1": mean_interval([g["acceptance"] - f["acceptance"] for g, f in zip(got, first)]),
            **{f"{name} true CTR": mean_interval([g[f"{name} true CTR"] for g in got], ".4f") for name in MEASURES},
            **{f"{name} - round 1": mean_interval([g[f"{name} true CTR"] - f[f"{name} true CTR"]
                                                   for g, f in zip(got, first)], ".4f") for name in MEASURES},
            "decisions used": mean_interval([g["decisions used"] for g in got], ".0f"),
            "pairs used": mean_interval([g["pairs used"] for g in got], ".0f"),
        })
    return pd.DataFrame(rows)


def write_table(results: list[dict], args) -> None:
    seeds = [r["seed"] for r in results]
    parts = [
        SECTION,
        f"World `{args.world}`, {args.products} products and {args.impressions} logged impressions per seed; "
        f"seeds {', '.join(map(str, seeds))}; {args.rounds} rounds of `adcraft optimize` (default config, top "
        f"{args.top_k}; from round 2 with `--decisions`, every earlier round's decisions) followed by a simulated "
        f"reviewer who decides on every row the review page shows, through the review page's decision store. "
        f"The reviewer's hidden taste: it rejects any creative that shows one of {args.disliked_backgrounds} "
        f"backgrounds and {args.disliked_highlights} highlights drawn with the seed among the shared ones "
        "(disliked: " + "; ".join(f"{r['seed']}: {', '.join(r['disliked'])}" for r in results) + "), and "
        "approves every other one. Acceptance: approved share of the proposals (rows not marked kept). True "
        "CTRs are traffic-weighted, context-averaged, by the world's truth on the PNGs the run rendered; "
        "rank 1: as the run would launch it (a kept rank 1, do no harm, counts at the logging policy's true "
        "value); approved rank 1: per product the first approved row (none approved, or a kept one: the logging "
        "policy), what launches after the review; first approved proposal: the first approved row not marked "
        "kept (none: the logging policy), the proposals' own quality without do no harm. "
        f"Logging policy true CTR: {mean_interval([r['logging CTR'] for r in results], '.4f')}. "
        "Cells: mean over seeds [95% t-interval over seeds]; the changes from round 1 are paired by seed. "
        "Decisions and pairs used: what the round's run reports in its notes.",
        f"Run {min(r['finished'] for r in results)} to {max(r['finished'] for r in results)} on "
        f"{'; '.join(sorted({r['machine'] for r in results}))}; "
        f"{np.mean([r['seconds'] for r in results]) / 60:.1f} min per seed ("
        f"{np.mean([g['optimize seconds'] for r in results for g in r['rounds']]):.0f} s per optimize).",
        markdown_table(round_table(results, args.rounds)),
    ]
    write_section(args.results, SECTION, "\n\n".join(parts))
    print(f"wrote {args.results}")


def round_arguments(parser: argparse.ArgumentParser, seeds: list[int], workdir: str) -> None:
    """The options this script shares with ``serving_loop.py``: the world, its size, the rounds, the reviewer."""
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--world", default="realistic")
    parser.add_argument("--products", type=int, default=24)
    parser.add_argument("--impressions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--disliked-backgrounds", type=int, default=3)
    parser.add_argument("--disliked-highlights", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "adcraft-bench" / workdir)
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    round_arguments(parser, [9121, 9122, 9123], "reviewers")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        path = args.workdir / f"result-{args.world}-{seed}-{args.products}-{args.impressions}-{args.rounds}.json"
        if not path.is_file():
            write_result(path, run_seed(seed, args))
        results.append(json.loads(path.read_text()))
    write_table(results, args)


if __name__ == "__main__":
    main()
