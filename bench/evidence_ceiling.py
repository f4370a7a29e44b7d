"""How much can honest evidence launch? The cross-fitted evidence with the world's truth as the judge.

    python bench/evidence_ceiling.py --seeds S [S ...] [--worlds W ...] [--products 30] [--impressions 30000]
        [--workdir DIR] [--out-json DIR] [--results docs/results.md] [--label TEXT] [--table-only]
        [--judges truth additive images] [--embed]

Do no harm launches a product's proposal only where the cross-fitted evidence (``evaluate.evidence``) puts the
lower end of its lift above 0. Whether it launches little because the judge is poor or because the logs cannot
show any judge right is a question the truth answers: here the judge *is* the truth. For each benchmark market
(``bench/worlds.py``'s simulation) ``proposal_evidence`` runs exactly as ``adcraft optimize`` runs it (two folds by
creative, backtest, calibration draws, per-product bounds, do no harm), once per judge:

- ``truth``: the world's true click probability of each (product, combination, context), measured on the logged
  creative's own image where the logs showed the combination and on a render otherwise (``TruthJudge``); it
  chooses each product's best combination found by truth-guided coordinate ascent from every logged creative
  (``optimize.TruthScorer``). Its proposals are the oracle's, so launching all of them captures the whole oracle
  lift; what do no harm keeps of it is what the evidence can certify with a perfect judge at this traffic.
- ``additive``: the additive logistic judge (one weight per element and product, L2 chosen on the latest part of
  the log, as optimize fits it), choosing each product's argmax combination (exact: the model is additive per
  slot). The same evidence with a judge fitted on the logs, for comparison.
- ``images`` (with ``--judges ... images``; ``--embed`` adds the image encoder's embedding): the additive judge
  plus the creative's visual attributes, or the additive judge alone, whichever predicts the latest part of the
  log better (``bench/image_judge.py``): does a judge that sees the pixels verify more?

Per run: the share of products launched, the share of the oracle lift captured after do no harm and with every
proposal launched, the harm share (launched products whose proposal is truly below the logging policy's CTR,
over all products), whether the set's 90% interval holds the true lift after do no harm, the share of products
whose own 90% interval holds their proposal's true lift over their logging policy and of those whose interval
lies above it (overstating; the other misses understate), and what set the
per-product bounds (``evidence.backtest``: the contrast slope, the spread of one creative's contrast error and
its upper bound, the half-judges' disagreement, the largest credited ratio). Every figure is graded by the truth
on the rendered creative, context-averaged, weighted by the products' traffic shares as ``bench/worlds.py``
weighs them.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import pandas as pd
from markdown import markdown_table, write_section
from optimize import TruthScorer, logging_values, oracle_values
from worlds import machine, market_options, mean_interval, read_results, run_markets, simulated

from image_judge import ImageJudgeArm

from adcraft.evaluate.evidence import EvidenceConfig, proposal_evidence
from adcraft.evaluate.proposal_value import ProposalPolicy
from adcraft.market import Market, load_market
from adcraft.market.click_log import click_log
from adcraft.pipeline.optimize import OptimizeConfig, additive_config
from adcraft.rewards.additive import fit_additive
from adcraft.simulator.truth import GroundTruth

JUDGES = ("truth", "additive", "images")


def heading(args) -> str:
    """The section's heading: one section per market size (and one more per size with the judge that sees images)."""
    if "images" in args.judges:
        return (f"## A judge that sees the creative's image: evidence at {args.products} products and "
                f"{args.impressions} impressions (bench/evidence_ceiling.py --judges {' '.join(args.judges)}"
                f"{' --embed' if args.embed else ''})")
    return (f"## Evidence with the truth as the judge, {args.products} products and {args.impressions} impressions: "
            "how much can be launched (bench/evidence_ceiling.py)")


class TruthJudge:
    """The world's true click probability as a judge (``predict`` as every judge's), per context.

    A combination the logs showed for the product is measured on the logged creative's own image, any other on a
    render (``TruthScorer``); each (product, combination, context) is computed once."""

    def __init__(self, market: Market, truth: GroundTruth, scorer: TruthScorer) -> None:
        self.truth, self.scorer = truth, scorer
        self.images = {(p, tuple(e)): i for p, e, i in zip(market.creatives["product_id"],
                                                           market.creatives["elements"], market.creatives["image"])}
        self.market = market
        self.cache: dict[tuple[str, tuple[str, ...], str], float] = {}

    def _attributes(self, pid: str, combo: tuple[str, ...]) -> dict[str, float]:
        key = (pid, combo)
        if key not in self.scorer.attributes:
            path = self.images.get(key)
            image = self.market.open_image(path).convert("RGB") if path is not None else None
            self.scorer.exact(pid, list(combo), image)
        return self.scorer.attributes[key]

    def predict(self, product_ids: Sequence[str], combos: Sequence[Sequence[str]],
                contexts: Sequence[str] | None = None) -> np.ndarray:
        contexts = contexts if contexts is not None else [""] * len(product_ids)
        out = np.empty(len(product_ids), dtype=np.float64)
        for i, (pid, combo, context) in enumerate(zip(product_ids, combos, contexts)):
            key = (str(pid), tuple(str(e) for e in combo), context or "")
            if key not in self.cache:
                data = json.loads(context) if context else None
                self.cache[key] = self.truth.model.ctr(key[0], list(key[1]), self._attributes(key[0], key[1]), data)
            out[i] = self.cache[key]
        return out

    def with_elements(self, elements) -> TruthJudge:
        return self


def oracle_picks(market: Market, scorer: TruthScorer) -> pd.DataFrame:
    """Per product, the best true combination found by coordinate ascent from each logged creative."""
    rows = []
    for pid in market.products["product_id"]:
        usable = [market.usable_elements(pid, s)["element_id"].tolist() for s in market.config.slots]
        starts = {tuple(e) for e in market.creatives.loc[market.creatives["product_id"] == pid, "elements"]}
        optima = {scorer.ascend(pid, list(s), usable) for s in starts} | starts
        best = max(sorted(optima), key=lambda c: scorer.exact(pid, list(c)))
        rows.append((pid, 1, list(best)))
    return pd.DataFrame(rows, columns=["product_id", "rank", "elements"])


def additive_picks(market: Market, judge) -> pd.DataFrame:
    """Per product, the additive judge's argmax: each slot's highest-weight usable element."""
    rows = []
    for pid in market.products["product_id"]:
        combo = []
        for slot in market.config.slots:
            usable = sorted(market.usable_elements(pid, slot)["element_id"].astype(str))
            combo.append(max(usable, key=lambda e: (judge.elements.get(e, 0.0), e)))
        rows.append((pid, 1, combo))
    return pd.DataFrame(rows, columns=["product_id", "rank", "elements"])


class GradedMarket(NamedTuple):
    """One benchmark market with what grades it: its truth, a scorer, and per product (in catalogue order) its
    traffic share (summing to 1) and its logging policy's true CTR."""

    market: Market
    truth: GroundTruth
    scorer: TruthScorer
    products: list[str]
    share: np.ndarray
    logging: np.ndarray


def graded_market(world: str, seed: int, args) -> GradedMarket:
    """``bench/worlds.py``'s market of (world, seed) at ``args``' size (simulated once, then read), with its truth."""
    market_dir = simulated(world, seed, args.workdir, args.products, args.impressions)
    market = load_market(market_dir)
    truth = GroundTruth.load(market_dir.with_name(market_dir.name + "-truth"))
    products = market.products["product_id"].tolist()
    share = truth.products.set_index("product_id")["traffic_share"].reindex(products).to_numpy()
    logging = logging_values(market, truth).reindex(products).to_numpy()
    return GradedMarket(market, truth, TruthScorer(market, truth), products, share / share.sum(), logging)


def score_market(world: str, seed: int, args) -> dict:
    """Both judges' evidence on one (world, seed) market, graded by the truth."""
    started = time.perf_counter()
    market, truth, scorer, products, share, logging = graded_market(world, seed, args)
    truth_judge = TruthJudge(market, truth, scorer)
    judge_config = additive_config(OptimizeConfig())
    oracle_set = oracle_picks(market, scorer)  # the truth is the same on either half: its picks are too
    arms = {
        "truth": (lambda part: truth_judge, lambda judge: oracle_set),
        "additive": (lambda part: fit_additive(click_log(part), judge_config),
                     lambda judge: additive_picks(market, judge)),
    }
    images = ImageJudgeArm(market, judge_config, embed=args.embed) if "images" in args.judges else None
    if images is not None:
        arms["images"] = (images.fit, images.choose)
    arms = {name: arm for name, arm in arms.items() if name in args.judges}
    finals = {name: oracle_set if name == "truth" else choose(fit(market)) for name, (fit, choose) in arms.items()}
    picks = {name: {p: list(e) for p, e in zip(frame["product_id"], frame["elements"])}
             for name, frame in finals.items()}
    for name in picks:  # scored first, so that the oracle counts them
        for pid, combo in picks[name].items():
            scorer.exact(pid, combo)
    oracle = oracle_values(market, truth, scorer, picks)
    best = np.array([oracle[p] for p in products])
    gain = float(np.sum(share * (best - logging)))
    out = {}
    for name, (fit, choose) in arms.items():
        begun = time.perf_counter()
        evidence = proposal_evidence(market, finals[name], fit, choose, EvidenceConfig(), ProposalPolicy(),
                                     do_no_harm=True)
        kept = set(evidence.products.loc[evidence.products["keep_current"], "product_id"])
        proposed = np.array([scorer.exact(p, picks[name][p]) for p in products])
        launched = np.array([p not in kept for p in products])
        value = np.where(launched, proposed, logging)
        per = evidence.products.set_index("product_id").reindex(products)
        truly = proposed / logging - 1.0
        held = (per["lift_low"].to_numpy() <= truly) & (truly <= per["lift_high"].to_numpy())
        true_lift = float(np.sum(share * value) / np.sum(share * logging) - 1.0)
        backtest = evidence.backtest.to_json()
        out[name] = {
            "launched share": float(launched.mean()),
            "share of oracle lift": float(np.sum(share * (value - logging)) / gain),
            "every proposal launched": float(np.sum(share * (proposed - logging)) / gain),
            "harm share": float(np.mean(value < logging)),
            "harm share, every proposal launched": float(np.mean(proposed < logging)),
            "true lift": true_lift,
            "reported lift": evidence.lift.estimate, "reported low": evidence.lift.low,
            "reported high": evidence.lift.high,
            "covered": bool(evidence.lift.low <= true_lift <= evidence.lift.high),
            "median product lower bound": float(evidence.products["lift_low"].median()),
            "product intervals hold the truth": float(held.mean()),
            # a miss above the truth overstates a product's lift; one below (capped credit) understates it
            "product intervals above the truth": float((per["lift_low"].to_numpy() > truly).mean()),
            **{key: backtest[key] for key in ("contrast_slope", "contrast_spread", "contrast_spread_bound",
                                              "judges_disagreement", "verified_ratio", "proposal_spread")},
            "seconds": time.perf_counter() - begun,
        }
        if name == "images" and images is not None:  # which kind each fit took (the whole log, then each half)
            out[name]["images chosen"] = float(np.mean([c["images chosen"] for c in images.choices]))
            out[name]["renders"] = images.looks.rendered
    return {
        "world": world, "seed": seed, "configured products": args.products, "configured impressions": args.impressions,
        "products": len(products), "impressions": len(market.impressions),
        "clicks": int(market.impressions["click"].sum()),
        "logging CTR": float(np.sum(share * logging)), "oracle CTR": float(np.sum(share * best)),
        "seconds": time.perf_counter() - started, "machine": machine(),
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "judges": out,
    }


METRICS = ("launched share", "share of oracle lift", "every proposal launched", "harm share",
           "harm share, every proposal launched",
           "median product lower bound", "product intervals hold the truth", "product intervals above the truth",
           "contrast_slope",
           "contrast_spread_bound", "judges_disagreement", "verified_ratio", "images chosen")


def table(results: list[dict]) -> pd.DataFrame:
    """Per world and judge (and over all worlds): each metric's mean and 95% t-interval over the markets, and
    how often the set's interval held the true lift."""
    rows = []
    worlds = sorted({r["world"] for r in results}, key=[r["world"] for r in results].index)
    for world in [*worlds, "all"]:
        mine = [r for r in results if world in ("all", r["world"])]
        for judge in [j for j in JUDGES if all(j in r["judges"] for r in mine)]:
            cells = {"world": world, "judge": judge, "markets": len(mine)}
            for metric in METRICS:
                values = [r["judges"][judge].get(metric) for r in mine]  # None: measured before the metric
                values = [v for v in values if v is not None and np.isfinite(v)]
                cells[metric.replace("_", " ")] = mean_interval(values) if values else "-"
            cells["interval holds the truth"] = f"{sum(r['judges'][judge]['covered'] for r in mine)}/{len(mine)}"
            rows.append(cells)
    return pd.DataFrame(rows)


def markets_text(args, results: list[dict], what: str) -> str:
    """A section's description of per-market ``results``: which worlds, seeds and size, ``what`` was measured, when,
    where, how long, and ``args.label``."""
    finished = sorted(r["finished"] for r in results)
    return (f"Worlds {', '.join(dict.fromkeys(r['world'] for r in results))}; seeds "
            f"{', '.join(str(s) for s in sorted({r['seed'] for r in results}))}; {args.products} products "
            f"(`sparse`: four times as many) and {args.impressions} logged impressions per market; "
            f"{len(results)} markets. {what} "
            "Cells: mean over markets [95% t-interval]. Finished "
            f"{finished[0]} to {finished[-1]} on {results[0]['machine']}; "
            f"{np.mean([r['seconds'] for r in results]) / 60:.1f} min per market."
            + (f" {args.label}" if args.label else ""))


def rounded(groups: dict[str, dict]) -> str:
    """One market's figures per judge or arm as a JSON line, floats to 3 decimals (printed as each market ends)."""
    return json.dumps({name: {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
                       for name, figures in groups.items()})


def write_table(args) -> None:
    results = read_results(args)
    text = markets_text(args, results, __doc__.split("\n\n")[2])
    cells = markdown_table(table(results))
    write_section(args.results, heading(args), heading(args) + "\n\n" + text + "\n\n" + cells)
    print(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    market_options(parser, seeds=[7001, 7002, 7003], out_json="evidence-ceiling")
    parser.add_argument("--label", default="", help="a sentence appended to the section's description")
    parser.add_argument("--judges", nargs="+", default=["truth", "additive"], choices=JUDGES)
    parser.add_argument("--embed", action="store_true",
                        help="the images judge also reads the image encoder's embedding (slower)")
    args = parser.parse_args()
    if not args.table_only:
        run_markets(args, score_market, lambda r: rounded(r["judges"]))
    write_table(args)


if __name__ == "__main__":
    main()
