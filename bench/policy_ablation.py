"""GenCO's ablations on the benchmark worlds: how the combination is chosen, and which reward model judges it.

    python bench/policy_ablation.py [--worlds interactions realistic ...] [--seeds 9311 9312 9313 9314 9315]
                                    [--products 30] [--impressions 30000] [--workdir DIR] [--out-json DIR]
                                    [--results docs/results.md] [--table-only]

Per (world, seed) a market is simulated (``bench/worlds.py``'s markets, so the two benches share them) and,
with nothing but the market's logs, as ``adcraft optimize`` does with its default config:

- three reward models are trained on the logs: the multi-instance model (GenCO, ``MILConfig()``: element
  scores with pairwise interactions, product and context, summed in the logit), the per-element model
  (``MILConfig.per_element()``: one learned effect per element, no interactions, product or context) and the
  additive logistic model (``fit_additive``: elements and product); ``choose_judge`` picks between the first
  and the last on the latest part of the log, as optimize's ``judge: auto`` does;
- the combination policy is fitted against the chosen judge (``ComboTrainer``: behaviour cloning on the
  logged creatives, then policy-gradient RL).

Policy ablation (the chosen judge fixed), one combination per product:

- ``proposal search``: rank 1 of ``ComboGenerator.propose`` (beam, samples and neighbours of the RL policy,
  ranked by the judge: what optimize proposes, before do no harm);
- ``RL most probable``: the RL policy's most probable combination (``most_probable``, k = 1);
- ``behaviour cloning``: the behaviour-cloning policy's most probable combination;
- ``element-wise greedy``: per slot the judge's best element with the others held at the product's most-shown
  creative (``elementwise_greedy_proposals``).

Reward-model ablation (the search fixed): each judge's own best combination per product, found by
``best_combinations`` (every usable combination scored) where the product has at most 50,000, else by
element-wise greedy. Also each model's log loss per impression on the latest 20% of the log by time, fitted on
the rest (the held-out figure ``choose_judge`` uses).

Every pick is rendered by the default compositor and scored by the world's true click model on its pixels
(context-averaged), as in ``bench/worlds.py``: share of the oracle lift ``sum_p w_p (T_p - L_p) / sum_p w_p
(O_p - L_p)``, harm share (products whose pick's true CTR is below the logging policy's L_p) and true lift. The
oracle is the best true CTR found by truth-guided coordinate ascent from every pick and logged creative. No
do no harm here: every product launches its pick, so the methods are compared on what they choose.

Tables: per world and method the mean over seeds with a 95% t-interval, and paired differences (method minus
a reference method, per market) with a 95% paired t-interval over the markets. One JSON file per (world,
seed) is written as each finishes; ``--table-only`` writes the section from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from intervals import t_half_width

from markdown import markdown_table, write_section
from optimize import TruthScorer, logging_values, oracle_values, top1, true_values
from worlds import machine, market_options, read_results, run_markets, simulated

from adcraft.generate.combo import ComboTrainer, behaviour_cloning_proposals
from adcraft.generate.combo_search import best_combinations, combination_space_sizes, elementwise_greedy_proposals
from adcraft.market import load_market
from adcraft.market.click_log import click_log, time_split
from adcraft.pipeline.optimize import OptimizeConfig
from adcraft.rewards.additive import choose_judge, fit_additive, log_loss, pooled_creatives
from adcraft.rewards.mil import MILConfig, MILTrainer
from adcraft.simulator import GroundTruth

SECTION = "## GenCO ablations on the benchmark worlds: policy and reward model (bench/policy_ablation.py)"
POLICIES = ("proposal search", "RL most probable", "behaviour cloning", "element-wise greedy")
JUDGES = ("multi-instance", "per-element", "additive")
EXHAUSTIVE_LIMIT = 50_000  # products with more usable combinations get the judge's element-wise greedy pick
METRICS = ("share of oracle lift", "harm share", "true lift")


def judge_function(model):
    """A reward model as the ``(product_ids, combos[, contexts])`` function the search calls."""

    def reward(product_ids, combos, contexts=None):
        return model.predict(list(product_ids), [list(c) for c in combos], contexts)

    return reward


def judge_optimum(market, reward) -> dict[str, list[str]]:
    """Per product the judge's best combination: every usable one scored where the product has at most
    ``EXHAUSTIVE_LIMIT``, element-wise greedy elsewhere."""
    sizes = combination_space_sizes(market)
    small = [p for p in market.products["product_id"] if sizes[p] <= EXHAUSTIVE_LIMIT]
    large = [p for p in market.products["product_id"] if sizes[p] > EXHAUSTIVE_LIMIT]
    picks = top1(best_combinations(market, reward, small, k=1, limit=EXHAUSTIVE_LIMIT)) if small else {}
    if large:
        picks.update(top1(elementwise_greedy_proposals(market, reward, large, k=1)))
    return picks


def score_market(world: str, seed: int, args) -> dict:
    """Every policy's and every judge's pick of one (world, seed) market, scored by the truth."""
    started = time.perf_counter()
    market_dir = simulated(world, seed, args.workdir, args.products, args.impressions)
    market = load_market(market_dir)
    truth = GroundTruth.load(market_dir.with_name(market_dir.name + "-truth"))
    config = OptimizeConfig()
    log = click_log(market)
    timings = {}

    clock = time.perf_counter()
    mil = MILTrainer(config.reward).fit(market)
    per_element = MILTrainer(MILConfig.per_element(encoding=config.reward.encoding, train=config.reward.train,
                                                   split=config.reward.split)).fit(market)
    additive_config = dataclasses.replace(config.additive, split=config.reward.split)
    additive = fit_additive(log, additive_config)
    chosen, choice = choose_judge(log, mil, additive_config)
    timings["reward models"] = time.perf_counter() - clock

    early, late = time_split(log, config.reward.split)  # the multi-instance models held out the same part
    late_rows = pooled_creatives(late)
    held_out = {"multi-instance": mil, "per-element": per_element, "additive": fit_additive(early, additive_config)}
    losses = {name: log_loss(model.predict(late_rows["product_id"].tolist(), late_rows["elements"].tolist()),
                             late_rows) for name, model in held_out.items()}

    clock = time.perf_counter()
    reward = judge_function(chosen)
    generator = ComboTrainer(config.combo).fit(market, reward)
    timings["combination policy"] = time.perf_counter() - clock

    clock = time.perf_counter()
    picks = {
        "proposal search": top1(generator.propose(k=1)),
        "RL most probable": top1(generator.most_probable(k=1)),
        "behaviour cloning": top1(behaviour_cloning_proposals(generator, k=1)),
        "element-wise greedy": top1(elementwise_greedy_proposals(market, reward, k=1)),
    }
    for name, model in zip(JUDGES, (mil, per_element, additive)):
        picks[f"judge optimum: {name}"] = judge_optimum(market, judge_function(model))
    timings["picks"] = time.perf_counter() - clock

    clock = time.perf_counter()
    scorer = TruthScorer(market, truth)
    products = market.products["product_id"].tolist()
    empty = pd.DataFrame({"product_id": [], "elements": [], "image": []})
    true = true_values(scorer, picks, products, empty, args.workdir, rendered="")
    oracle = oracle_values(market, truth, scorer, picks)
    timings["truth"] = time.perf_counter() - clock
    share = truth.products.set_index("product_id")["traffic_share"].reindex(products).to_numpy()
    share = share / share.sum()
    logging = logging_values(market, truth).reindex(products).to_numpy()
    best = np.array([oracle[p] for p in products])
    methods = {}
    for name, chosen_picks in picks.items():
        value = np.array([true[name][p] for p in products])
        judged = reward(products, [chosen_picks[p] for p in products])
        methods[name] = {
            "share of oracle lift": float(np.sum(share * (value - logging)) / np.sum(share * (best - logging))),
            "harm share": float(np.mean(value < logging)),
            "true lift": float(np.sum(share * value) / np.sum(share * logging) - 1.0),
            "chosen judge's CTR": float(np.sum(share * np.asarray(judged, dtype=float))),
        }
    return {
        "world": world, "seed": seed, "configured products": args.products,
        "configured impressions": args.impressions, "products": len(products),
        "impressions": len(market.impressions), "chosen judge": choice.chosen,
        "held-out log loss": losses, "logging CTR": float(np.sum(share * logging)),
        "oracle CTR": float(np.sum(share * best)), "timings": timings,
        "seconds": time.perf_counter() - started,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
        "methods": methods,
    }


# -- the tables ------------------------------------------------------------------------------------------


def t_interval(values) -> tuple[float, float, float]:
    """Mean and 95% t-interval over the values (the mean alone, twice, for a single value)."""
    x = np.asarray([v for v in values if v == v], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), float(x[0]), float(x[0])
    half = t_half_width(x)
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def cell(values, signed: bool = False, digits: int = 3) -> str:
    mean, low, high = t_interval(values)
    if mean != mean:
        return "n/a"
    spec = f"{'+' if signed else ''}.{digits}f"
    return f"{mean:{spec}} [{low:{spec}}, {high:{spec}}]"


def method_table(results: list[dict], names: list[str], judged: bool = True) -> pd.DataFrame:
    """Per method the mean over markets with a 95% t-interval; ``judged``: with the chosen judge's CTR of the
    picks (its own view of them)."""
    rows = []
    for name in names:
        row = {"method": name}
        for metric in METRICS:
            row[metric] = cell([r["methods"][name][metric] for r in results])
        if judged:
            row["chosen judge's CTR"] = cell([r["methods"][name]["chosen judge's CTR"] for r in results], digits=4)
        rows.append(row)
    return pd.DataFrame(rows)


def paired_table(results: list[dict], worlds: list[str], pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Per world and over all markets: method minus reference, per market, with a 95% paired t-interval."""
    rows = []
    for world in [*worlds, "all"]:
        mine = results if world == "all" else [r for r in results if r["world"] == world]
        if not mine:
            continue
        for name, reference in pairs:
            row = {"world": world, "markets": len(mine), "comparison": f"{name} - {reference}"}
            for metric in ("share of oracle lift", "harm share"):
                row[metric] = cell([r["methods"][name][metric] - r["methods"][reference][metric] for r in mine],
                                   signed=True)
            rows.append(row)
    return pd.DataFrame(rows)


def write_table(args) -> None:
    results = read_results(args)
    worlds = [w for w in args.worlds if any(r["world"] == w for r in results)]
    seeds = sorted({r["seed"] for r in results})
    finished = sorted(r["finished"] for r in results)
    judges = [f"judge optimum: {j}" for j in JUDGES]
    chosen = pd.Series([r["chosen judge"] for r in results]).value_counts().to_dict()
    minutes = np.mean([r["seconds"] for r in results]) / 60
    parts = [
        SECTION,
        f"Worlds {', '.join(worlds)}; seeds {', '.join(map(str, seeds))} (not used by the tests or in building "
        f"these methods); {args.products} products (`sparse`: four times as many) and {args.impressions} logged "
        f"impressions per market; {len(results)} markets. Default settings of `adcraft optimize` throughout "
        f"(`OptimizeConfig()`); the judge that `judge: auto` chose: "
        f"{', '.join(f'{k} in {v}' for k, v in sorted(chosen.items()))} markets. Every product launches its pick "
        "(no do no harm). Cells: mean over markets and a 95% t-interval (paired differences: over the markets of "
        f"the row). Run {finished[0]} to {finished[-1]} on {'; '.join(sorted({r['machine'] for r in results}))}; "
        f"{minutes:.1f} min per market.",
        "### Policy ablation: how the combination is chosen (the chosen judge fixed)\n\n"
        + markdown_table(method_table(results, list(POLICIES))),
        "Paired, per world:\n\n" + markdown_table(paired_table(results, worlds, [
            ("proposal search", "element-wise greedy"), ("RL most probable", "element-wise greedy"),
            ("RL most probable", "behaviour cloning"), ("proposal search", "RL most probable")])),
        "### Reward-model ablation: each judge's own best combination (the search fixed)\n\n"
        + markdown_table(method_table(results, judges, judged=False)),
        "Paired, per world:\n\n" + markdown_table(paired_table(results, worlds, [
            ("judge optimum: multi-instance", "judge optimum: per-element"),
            ("judge optimum: multi-instance", "judge optimum: additive"),
            ("judge optimum: additive", "judge optimum: per-element")])),
    ]
    losses = []
    for world in [*worlds, "all"]:
        mine = results if world == "all" else [r for r in results if r["world"] == world]
        row = {"world": world, "markets": len(mine)}
        for name in JUDGES:
            row[name] = cell([r["held-out log loss"][name] for r in mine], digits=5)
        row["multi-instance - per-element"] = cell(
            [r["held-out log loss"]["multi-instance"] - r["held-out log loss"]["per-element"] for r in mine],
            signed=True, digits=5)
        losses.append(row)
    parts.append("Held-out log loss per impression (latest 20% of the log by time; lower is better):\n\n"
                 + markdown_table(pd.DataFrame(losses)))
    write_section(args.results, SECTION, "\n\n".join(parts))
    print(f"wrote {args.results} ({len(results)} markets)")


def describe(result: dict) -> str:
    """One line per market: each method's share of the oracle lift, and the time it took."""
    shares = ", ".join(f"{k} {v['share of oracle lift']:.3f}" for k, v in result["methods"].items())
    return f"{shares} ({result['seconds']:.0f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    market_options(parser, seeds=[9311, 9312, 9313, 9314, 9315], out_json="policy-ablation")
    args = parser.parse_args()
    if not args.table_only:
        run_markets(args, score_market, describe)
    write_table(args)


if __name__ == "__main__":
    main()
