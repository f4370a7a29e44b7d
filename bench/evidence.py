"""Does the cross-fitted evidence cover the true lift? The benchmark worlds' runs of ``optimize``, against the truth.

    python bench/evidence.py [--worlds realistic main_effects ...] [--seeds 8101 8102]
                             [--products 30] [--impressions 30000] [--out-json DIR] [--workdir DIR]
                             [--results docs/results.md] [--table-only]

For every (world, seed) it takes ``bench/worlds.py``'s result (running ``worlds.score_world`` first when that
result is not in ``--out-json`` yet, so both scripts share one run per market): ``adcraft optimize``'s
``evidence.lift`` (estimate and interval at level 0.9, after do-no-harm: each kept product shows its best logged
creative) beside the true lift of the rank-1 creatives it wrote, scored by the world's truth on their rendered
pixels (``sum_p w_p T_p / sum_p w_p L_p - 1``). It reports, per world and over all runs:

- coverage: the share of runs whose interval holds the true lift, with its 95% Wilson interval;
- the median of ``|estimate - true| / |true|``;
- the mean width of the interval, and the shares of runs whose lower bound exceeds the true lift (an
  overstated headline) and whose upper bound falls below it;
- the mean number of products kept by do-no-harm, and what do-no-harm changed: the share of the oracle lift and
  the harm share had every product launched its rank-1 proposal (``rank1_scored``);
- what a reader who launches the rank-1 creative of every row of ``creatives.parquet`` gets, a kept row
  (do no harm) scored as the logged creative it shows rather than as the logging policy it stands for: its
  share of the oracle lift and harm share (``rank1_scored(kept_rows=True)``).

``--proposals`` instead reads the evidence of the whole proposal set before do no harm (``run.json``
``evidence.proposals_lift``: the lift had every product launched its rank-1 proposal, estimate and 90% interval)
beside the true lift of launching every rank-1 proposal (the first row not marked ``kept`` per product, scored on the
PNG the run wrote): the same coverage and error as above, where the truth is rarely 0 (``proposal_set_rows``).

``--graders`` instead asks where the set's evidence misses: it runs each run's cross-fitting again as ``optimize``
ran it (the judge chosen again by ``choose_judge`` on the same log, the run's saved reward model and combination
policy, the same folds and seed; ``cross_fit_again``, compared with ``run.json``'s ``proposals_lift``) and scores
with the truth what the evidence graded: the rank-1 picks of the two judges fitted on half the logs each, which the
lift values in place of the final proposals. Beside their true lift (``sum_p w_p (T0_p + T1_p) / 2 / sum_p w_p L_p
- 1``) stand the graders' cross-fitted DR lift of them before any calibration and the calibrated estimate with its
interval: if the interval misses the final proposals' truth but holds the half picks', the estimand is at fault;
if it misses both, the graders are.

``--graders --chooser-view`` does the same with ``evidence.chooser_view`` on: the set's lift also by each
half-data judge's own contrast for its picks, recalibrated (``adcraft.evaluate.evidence``, "Two views").

``--graders --disattenuate`` does the same with ``evidence.set_slope: disattenuated``: the set's lift by the contrast
slope corrected for the judge's own noise (``adcraft.evaluate.evidence``, "Disattenuated slope"), beside each run's
own evidence; ``--graders --slope-union`` with ``evidence.set_slope: both`` (the measured slope's estimate, the
interval of both slopes).

``--per-product`` instead reads each product's own evidence (``products.parquet``: the proposal's estimated lift
and 90% interval, before do no harm) beside the true lift of its rank-1 proposal: how often a product's interval
holds its truth, how well the estimates tell the products that gain from those that lose, and what do no harm's rule
and a plain "estimate > 0" rule would have launched (``per_product_summary``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import traceback
from functools import cached_property, partial
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from markdown import markdown_table, write_section
from intervals import t_half_width
from optimize import TruthScorer, logging_values, true_values
from PIL import Image
from worlds import BENCH_WORLDS, OPTIMIZE, result_path, score_world, simulated, write_result

from adcraft.configuration import load_config
from adcraft.evaluate.evidence import FOLDS, proposal_evidence
from adcraft.evaluate.proposal_value import ProposalPolicy
from adcraft.generate.combo import ComboGenerator
from adcraft.market import load_market
from adcraft.market.click_log import best_logged_creatives, click_log, most_shown_creatives
from adcraft.market.extra import read_extra_elements, with_extra_elements
from adcraft.market.outputs import kept_products, read_proposals
from adcraft.pipeline.optimize import OptimizeConfig, RunInputs, cross_fit_judges, reward_function, run_judge
from adcraft.rewards.mil import MILModel
from adcraft.simulator import GroundTruth

HEADING = "## Evidence: coverage of the true lift (bench/evidence.py)"


def per_world(rows: pd.DataFrame, figures) -> pd.DataFrame:
    """``figures(part)`` of each world's rows, in their order of appearance, then of all rows (world ``all``)."""
    out = [{"world": world, **figures(part)} for world, part in rows.groupby("world", sort=False)]
    return pd.DataFrame([*out, {"world": "all", **figures(rows)}])


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (Wilson, JASA 1927)."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def against_logging(run, values: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over the products of ``run``'s market that ``values`` has, in the market's order: their traffic shares, the
    values and their logging policy's true CTRs (``ScoredRun``'s ``share`` and ``logging``)."""
    ids = [p for p in run.market.products["product_id"] if p in values]
    return (run.share.reindex(ids).to_numpy(), np.array([values[p] for p in ids]),
            run.logging.reindex(ids).to_numpy())


class ScoredRun:
    """One ``bench/worlds.py`` run read once for scoring: its market (with the elements the run made), the world's
    truth, ``creatives.parquet``, the logging policy's true value per product and the traffic weights."""

    def __init__(self, result: dict, workdir: Path) -> None:
        world, seed = result["world"], result["seed"]
        products, impressions = result["configured products"], result["configured impressions"]
        self.market_dir = market_dir = simulated(world, seed, workdir, products, impressions)
        config = result.get("optimize config", "default")
        variant = "" if config == "default" else f"-{Path(config).stem}"  # as worlds.score_world names its runs
        self.result, self.out = result, workdir / f"run-{world}-{seed}-{products}-{impressions}{variant}"
        market = load_market(market_dir)
        truth = GroundTruth.load(market_dir.with_name(market_dir.name + "-truth"))
        if (self.out / "elements.parquet").is_file():
            extra = read_extra_elements(self.out / "elements.parquet", market)
            market, truth = with_extra_elements(market, extra), truth.with_elements(extra)
        self.market, self.truth = market, truth
        self.proposals = read_proposals(self.out)
        self.scorer = TruthScorer(market, truth)
        self.logging = logging_values(market, truth)
        self.share = truth.products.set_index("product_id")["traffic_share"]

    def figures(self, values: dict[str, float]) -> tuple[float, float]:
        """(share of the oracle lift, harm share) of one true CTR per product, against the result's oracle and
        logging CTRs (as ``worlds.score_world`` scores a rank-1 set)."""
        weight, value, base = against_logging(self, values)
        gain = float(np.sum(weight * (value - base)) / weight.sum()
                     / (self.result["oracle CTR"] - self.result["logging CTR"]))
        return gain, float(np.mean(value < base))

    def lift(self, values: dict[str, float]) -> float:
        """The true relative lift ``sum_p w_p T_p / sum_p w_p L_p - 1`` of one true CTR per product over the logging
        policy's, over the products in ``values`` (w: the world's traffic shares, as ``worlds.score_world``)."""
        weight, value, base = against_logging(self, values)
        return float(np.sum(weight * value) / np.sum(weight * base) - 1.0)

    @cached_property
    def record(self) -> dict:
        """The run's ``run.json``, read once."""
        return json.loads((self.out / "run.json").read_text())

    def rank1(self, kept_rows: bool) -> dict[str, float]:
        """True CTR per product of one first row of ``creatives.parquet``, on the PNG the run rendered.
        ``kept_rows=False``: the first row not marked ``kept`` (every proposal launched, had do no harm kept
        nothing); ``True``: rank 1 as written, a kept row as the creative it shows (what a reader who launches the
        file's rank-1 creatives gets), not as the logging policy."""
        proposals = self.proposals
        if "kept" in proposals and not kept_rows:
            proposals = proposals[~proposals["kept"].astype(bool)]
        first = proposals.sort_values("rank").drop_duplicates("product_id").set_index("product_id")
        return {p: self.scorer.exact(p, list(first.loc[p, "elements"]),
                                     Image.open(self.out / first.loc[p, "image"]).convert("RGB"))
                for p in self.market.products["product_id"] if p in first.index}

    def kept_alternatives(self, prior_impressions: float = 200.0) -> list[dict]:
        """(share of the oracle lift, harm share) of the rank-1 set with each kept product scored three ways
        (``KEPT_AS``): at its logging policy's true value (what do no harm means: nothing is launched), as the
        creative its policy shows most, and as its best logged creative by observed CTR shrunk toward the
        product's with ``prior_impressions`` pseudo-impressions (``best_logged_creatives``, what ``optimize``
        shows there). Launched products are scored on the PNGs the run wrote, each alternative creative as the
        compositor draws it."""
        kept = kept_products(self.proposals)
        launched = self.rank1(kept_rows=True)
        log = click_log(self.market)
        picks = {name: {str(p): list(e) for p, e in zip(frame.index, frame["elements"])}
                 for name, frame in (("most shown creative", most_shown_creatives(log)),
                                     ("best logged creative", best_logged_creatives(log, prior_impressions)))}
        true = true_values(self.scorer, picks, list(launched), self.proposals, self.out, OPTIMIZE)
        true["logging policy"] = self.logging.to_dict()
        rows = []
        for name in KEPT_AS:
            share, harm = self.figures({p: true[name][p] if p in kept else v for p, v in launched.items()})
            rows.append({"world": self.result["world"], "seed": self.result["seed"], "kept shown as": name,
                         "kept products": len(kept), "share of oracle lift": share, "harm share": harm})
        return rows


def rank1_scored(result: dict, workdir: Path, kept_rows: bool) -> tuple[float, float]:
    """(share of the oracle lift, harm share) of ``ScoredRun.rank1`` for one run."""
    run = ScoredRun(result, workdir)
    return run.figures(run.rank1(kept_rows))


KEPT_AS = ("logging policy", "most shown creative", "best logged creative")
PER_PRODUCT_HEADING = "## Evidence per product: can it tell which products gain? (bench/evidence.py --per-product)"


def product_rows(run: ScoredRun) -> list[dict]:
    """One row per product of a run: the evidence ``optimize`` wrote for its rank-1 proposal (``products.parquet``:
    ``estimated_lift``, ``lift_low``, ``lift_high``, ``keep_current``) and the proposal's true lift over the
    product's logging policy, ``T_p / L_p - 1``, its rank-1 proposal scored as if launched (``rank1``)."""
    evidence = pd.read_parquet(run.out / "products.parquet").set_index("product_id")
    true = run.rank1(kept_rows=False)
    return [{"world": run.result["world"], "seed": run.result["seed"], "product_id": p,
             "true lift": true[p] / float(run.logging[p]) - 1.0,
             "estimate": float(evidence.loc[p, "estimated_lift"]), "low": float(evidence.loc[p, "lift_low"]),
             "high": float(evidence.loc[p, "lift_high"]), "launched": not bool(evidence.loc[p, "keep_current"])}
            for p in true if p in evidence.index]


def per_product_summary(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per world and over all products: the share of products whose 90% interval holds their true lift (Wilson
    95%), the correlation of estimate and truth, the mean estimate and mean true lift, the RMSE and the median
    interval width; then, over all products, what two launch rules did or would have done: ``optimize``'s own
    decisions (``launched``, read from the run) and launching wherever the estimate exceeds 0."""
    def figures(part: pd.DataFrame) -> dict:
        held = holds_truth(part)
        low, high = wilson(int(held.sum()), len(part))
        error = part["estimate"] - part["true lift"]
        return {"products": len(part), "interval holds the truth": float(held.mean()), "95% low": low,
                "95% high": high, "corr(estimate, true)": float(part["estimate"].corr(part["true lift"])),
                "mean estimate": float(part["estimate"].mean()), "mean true lift": float(part["true lift"].mean()),
                "share gaining": float((part["true lift"] > 0).mean()),
                "RMSE": float(np.sqrt(np.mean(error ** 2))),
                "median width": float((part["high"] - part["low"]).median())}

    worlds = per_world(rows, figures)
    losing = rows["true lift"] < 0
    rules = []
    for rule, launched in (("optimize's (not kept by do no harm)", rows["launched"]),
                           ("estimate > 0", rows["estimate"] > 0)):
        rules.append({"launch where": rule, "launched share": float(launched.mean()),
                      "losing among launched": float(losing[launched].mean()) if launched.any() else math.nan,
                      "harm share (losing launched / all)": float((losing & launched).mean()),
                      "mean true lift of launched": float(rows["true lift"][launched].mean())
                      if launched.any() else math.nan})
    return worlds, pd.DataFrame(rules)


KEPT_HEADING = "## Kept rows: which logged creative they show (bench/evidence.py --kept-alternatives)"


def kept_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per way of scoring kept rows: mean [95% t-interval over the runs] of the share and the harm share, and
    each alternative minus the most shown creative, paired by run."""
    def cell(values: pd.Series) -> str:
        half = t_half_width(values.to_numpy(dtype=float))
        return f"{values.mean():+.3f} [{values.mean() - half:+.3f}, {values.mean() + half:+.3f}]"

    keyed = rows.set_index(["world", "seed", "kept shown as"])
    out = []
    for name in KEPT_AS:
        part = keyed.xs(name, level="kept shown as")
        most = keyed.xs("most shown creative", level="kept shown as")
        out.append({"kept shown as": name, "runs": len(part),
                    "share of oracle lift": cell(part["share of oracle lift"]), "harm share": cell(part["harm share"]),
                    "max harm share": f"{part['harm share'].max():.3f}",
                    "share - most shown": cell(part["share of oracle lift"] - most["share of oracle lift"]),
                    "harm share - most shown": cell(part["harm share"] - most["harm share"])})
    return pd.DataFrame(out)


PROPOSALS_HEADING = ("## Evidence before do no harm: the lift of every proposal launched "
                     "(bench/evidence.py --proposals)")


def proposal_set_rows(results: list[dict], workdir: Path) -> pd.DataFrame:
    """One row per run with evidence: ``evidence.proposals_lift`` (estimate, low, high, before do no harm) beside
    the true lift of launching every product's rank-1 proposal (``ScoredRun.rank1(kept_rows=False)``)."""
    rows = []
    for r in results:
        run = ScoredRun(r, workdir)
        reported = run.record.get("evidence", {}).get("proposals_lift")
        if not reported:
            continue
        rows.append({"world": r["world"], "seed": r["seed"], "true lift": run.lift(run.rank1(kept_rows=False)),
                     "estimate": float(reported["estimate"]), "low": float(reported["low"]),
                     "high": float(reported["high"]), "level": float(reported["level"])})
    return pd.DataFrame(rows)


def holds_truth(part: pd.DataFrame) -> pd.Series:
    """Per run (``true lift``, ``low``, ``high``): whether its interval holds the true lift."""
    return (part["low"] <= part["true lift"]) & (part["true lift"] <= part["high"])


def coverage_figures(part: pd.DataFrame) -> dict:
    """Of runs (``true lift``, ``estimate``, ``low``, ``high``): coverage with its Wilson 95% interval, the median of
    ``|estimate - true| / |true|`` over the runs whose true lift is not 0, the mean width, and the shares of runs
    whose interval lies above or below the truth."""
    covered = holds_truth(part)
    low, high = wilson(int(covered.sum()), len(part))
    error = (part["estimate"] - part["true lift"]).abs() / part["true lift"].abs().replace(0.0, np.nan)
    return {"runs": len(part), "coverage": float(covered.mean()), "coverage 95% low": low,
            "coverage 95% high": high, "median |estimate - true| / |true|": float(error.median()),
            "mean width": float((part["high"] - part["low"]).mean()),
            "low above truth": float((part["low"] > part["true lift"]).mean()),
            "high below truth": float((part["high"] < part["true lift"]).mean())}


def interval_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per world and over all runs of ``rows`` (``true lift``, ``estimate``, ``low``, ``high``): coverage with its
    Wilson 95% interval, the median of ``|estimate - true| / |true|`` (over runs whose true lift is not 0), the
    mean width, the shares of runs whose interval lies above or below the truth, and the mean estimate and truth."""
    def figures(part: pd.DataFrame) -> dict:
        return {**coverage_figures(part), "mean estimate": float(part["estimate"].mean()),
                "mean true lift": float(part["true lift"].mean())}

    return per_world(rows, figures)


def run_rows(results: list[dict], workdir: Path) -> pd.DataFrame:
    """One row per (world, seed): the true lift beside the run's evidence."""
    rows = []
    for r in results:
        got = r["methods"][OPTIMIZE]
        run = ScoredRun(r, workdir)
        launched_share, launched_harm = run.figures(run.rank1(kept_rows=False))
        as_written_share, as_written_harm = run.figures(run.rank1(kept_rows=True))
        rows.append({"world": r["world"], "seed": r["seed"], "true lift": got["true lift"],
                     "estimate": got.get("reported lift", math.nan), "low": got.get("reported low", math.nan),
                     "high": got.get("reported high", math.nan),
                     "proposals lift (before do-no-harm)": got.get("proposals lift", math.nan),
                     "kept products": got.get("kept products", math.nan), "products": r["products"],
                     "harm share": got["harm share"], "share of oracle lift": got["share of oracle lift"],
                     "share of oracle lift, every proposal launched": launched_share,
                     "harm share, every proposal launched": launched_harm,
                     "share of oracle lift, kept rows as their creative": as_written_share,
                     "harm share, kept rows as their creative": as_written_harm})
    return pd.DataFrame(rows).astype({"low": float, "high": float, "estimate": float})


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Coverage (Wilson 95%), median relative error, mean width and misses, per world and over all runs."""
    def figures(part: pd.DataFrame) -> dict:
        launched = part["share of oracle lift, every proposal launched"]
        return {**coverage_figures(part),
                "mean kept share": float((part["kept products"] / part["products"]).mean()),
                "mean share of oracle lift": float(part["share of oracle lift"].mean()),
                "mean share, every proposal launched": float(launched.mean()),
                "max harm share": float(part["harm share"].max()),
                "max harm share, every proposal launched": float(part["harm share, every proposal launched"].max()),
                "mean share, kept rows as their creative": float(part["share of oracle lift, kept rows as their "
                                                                 "creative"].mean()),
                "mean harm share, kept rows as their creative": float(part["harm share, kept rows as their "
                                                                      "creative"].mean())}

    return per_world(runs, figures)


GRADERS_HEADING = "## Evidence: what the set's lift is graded on (bench/evidence.py --graders)"
CHOOSER_VIEW_HEADING = ("## Evidence with the chooser's calibrated view beside the grader's "
                        "(bench/evidence.py --graders --chooser-view)")
DISATTENUATED_HEADING = ("## Evidence with the set's contrast slope disattenuated "
                         "(bench/evidence.py --graders --disattenuate)")
SLOPE_UNION_HEADING = ("## Evidence with the interval of both contrast slopes "
                       "(bench/evidence.py --graders --slope-union)")
UNSEEN_LIKENESS_HEADING = ("## Evidence with the likeness weights from picks of the judge that never saw the creatives "
                           "(bench/evidence.py --graders --unseen-likeness)")


def cross_fit_again(run: ScoredRun, **options: object):
    """``optimize``'s cross-fitted evidence of one run, computed again with do no harm (``Evidence``), with the
    two half-data judges' picks in fold order: the judge chosen again by ``optimize.run_judge`` with the run's saved
    reward model, its saved combination policy, and ``optimize.cross_fit_judges`` fitting and choosing (the
    benchmark runs have no brand or reviews; a run that made elements is refused). ``options``: settings of the
    run's ``EvidenceConfig`` to change (``chooser_view=True``, ``set_slope="both"``)."""
    if (run.out / "elements.parquet").is_file():
        raise SystemExit(f"{run.out} made elements: --graders does not rebuild such runs")
    config = run.result.get("optimize config", "default")
    config = load_config(OptimizeConfig, None if config == "default" else Path(config))
    market, log = run.market, click_log(run.market)
    judge, _ = run_judge(config, log, MILModel.load(run.out / "models" / "reward"))
    generator = ComboGenerator.load(run.out / "models" / "combo", market, reward_function(judge))
    inputs = RunInputs(run.market_dir, run.out, market, log, None)
    fit, choose = cross_fit_judges(inputs, config, judge, generator)
    picks = []

    def recorded(half_judge) -> pd.DataFrame:
        picks.append(choose(half_judge))
        return picks[-1]

    final = generator.propose(market.products["product_id"].tolist(), k=config.top_k, reward=reward_function(judge))
    settings = dataclasses.replace(config.evidence, **options)
    evidence = proposal_evidence(market, final, fit, recorded, settings, ProposalPolicy(config.policy),
                                 do_no_harm=True)
    return evidence, picks[:FOLDS]


def grader_rows(results: list[dict], workdir: Path, **options: object) -> pd.DataFrame:
    """One row per run: the true lift of the final proposals (every one launched) and of the half-data judges'
    picks (each product's two rank-1 picks averaged), the graders' DR lift before calibration, the evidence's
    estimate and interval (``proposals_lift``, computed again; ``|change| from run.json``: the largest difference
    of its three figures from the run's own, which the half-data judges' refits leave above 0 only by floating-point
    noise in their training), and what do no harm launches by this evidence: ``launched`` products, the ``harm
    share`` and ``share of oracle lift`` of the set with the kept products at their logging policy (as
    ``worlds.score_world`` scores the run). ``options``: ``EvidenceConfig`` settings to change
    (``cross_fit_again``); with any, the run's own figures stand beside as ``run.json estimate``, ``run.json low``,
    ``run.json high``, ``run.json launched``, ``run.json harm share`` and ``run.json share of oracle lift``."""
    rows = []
    for r in results:
        run = ScoredRun(r, workdir)
        if not run.record.get("evidence", {}).get("proposals_lift"):
            continue
        evidence, picks = cross_fit_again(run, **options)
        firsts = [frame.sort_values("rank").drop_duplicates("product_id").set_index("product_id")["elements"]
                  for frame in picks]
        half = {p: float(np.mean([run.scorer.exact(p, list(first[p])) for first in firsts]))
                for p in run.market.products["product_id"] if all(p in first.index for first in firsts)}
        lift, saved = evidence.proposals_lift, run.record["evidence"]["proposals_lift"]
        launched = set(evidence.products.loc[~evidence.products["keep_current"], "product_id"])
        final = run.rank1(kept_rows=False)
        after = {p: final[p] if p in launched else float(run.logging[p]) for p in final}
        share, harm = run.figures(after)
        own = r["methods"][OPTIMIZE]
        rows.append({"world": r["world"], "seed": r["seed"], "true lift": run.lift(final),
                     "half picks' true lift": run.lift(half), "graders' DR lift": evidence.proposals_uncalibrated_lift,
                     "estimate": lift.estimate, "low": lift.low, "high": lift.high, "level": lift.level,
                     "|change| from run.json": float(np.max(np.abs(np.subtract(
                         [lift.estimate, lift.low, lift.high], [saved["estimate"], saved["low"], saved["high"]])))),
                     "launched": len(launched), "harm share": harm, "share of oracle lift": share,
                     **({**{f"run.json {key}": saved[key] for key in ("estimate", "low", "high")},
                         "run.json launched": r["products"] - own["kept products"],
                         "run.json harm share": own["harm share"],
                         "run.json share of oracle lift": own["share of oracle lift"]} if options else {})})
    return pd.DataFrame(rows)


def grader_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per world and over all runs: how often the interval holds the final proposals' truth and the half picks'
    (Wilson 95%), the correlation over runs of the half picks' truth with the graders' DR lift and with the
    estimate, and the means."""
    def figures(part: pd.DataFrame) -> dict:
        half = part["half picks' true lift"]
        final, picks = coverage_figures(part), coverage_figures(part.assign(**{"true lift": half}))
        return {"runs": len(part), "holds final truth": final["coverage"], "holds half picks' truth":
                picks["coverage"], "95% low": picks["coverage 95% low"], "95% high": picks["coverage 95% high"],
                "corr(DR lift, half truth)": float(part["graders' DR lift"].corr(half)),
                "corr(estimate, half truth)": float(part["estimate"].corr(half)),
                "mean true lift": float(part["true lift"].mean()), "mean half picks' true lift": float(half.mean()),
                "mean DR lift": float(part["graders' DR lift"].mean()), "mean estimate": float(part["estimate"].mean()),
                "max |change| from run.json": float(part["|change| from run.json"].max())}

    return per_world(rows, figures)


def paired_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per world and over all runs of ``grader_rows`` with options: the interval figures (``coverage_figures``) of
    the final proposals' true lift under the evidence computed again (*setting on*) and under the run's own
    (*run.json*), with the mean estimates, the runs gained and lost, and the runs whose lower bound lies above the
    truth under the setting only."""
    def figures(part: pd.DataFrame) -> dict:
        own = part.assign(estimate=part["run.json estimate"], low=part["run.json low"], high=part["run.json high"])
        on, off = coverage_figures(part), coverage_figures(own)
        above_on, above_off = part["low"] > part["true lift"], own["low"] > own["true lift"]

        return {"runs": len(part), "coverage, setting on": on["coverage"], "coverage, run.json": off["coverage"],
                "gained": int((holds_truth(part) & ~holds_truth(own)).sum()),
                "lost": int((~holds_truth(part) & holds_truth(own)).sum()),
                "median rel. error, setting on": on["median |estimate - true| / |true|"],
                "median rel. error, run.json": off["median |estimate - true| / |true|"],
                "low above truth, setting on": int(above_on.sum()), "low above truth, run.json": int(above_off.sum()),
                "new low above truth": int((above_on & ~above_off).sum()),
                "high below truth, setting on": int((part["high"] < part["true lift"]).sum()),
                "high below truth, run.json": int((own["high"] < own["true lift"]).sum()),
                "mean width, setting on": on["mean width"], "mean width, run.json": off["mean width"],
                "mean estimate, setting on": float(part["estimate"].mean()),
                "mean estimate, run.json": float(own["estimate"].mean()),
                "mean true lift": float(part["true lift"].mean()),
                "launched, setting on": int(part["launched"].sum()),
                "launched, run.json": int(part["run.json launched"].sum()),
                "max harm share, setting on": float(part["harm share"].max()),
                "max harm share, run.json": float(part["run.json harm share"].max()),
                "runs harm > 0.10, setting on": int((part["harm share"] > 0.10).sum()),
                "runs harm > 0.10, run.json": int((part["run.json harm share"] > 0.10).sum()),
                "mean share of oracle lift, setting on": float(part["share of oracle lift"].mean()),
                "mean share of oracle lift, run.json": float(part["run.json share of oracle lift"].mean())}

    return per_world(rows, figures)


def runs_section(heading: str, rows: pd.DataFrame, label: str, what: str, summary_table: pd.DataFrame) -> str:
    """A results section of per-run ``rows``: which runs (worlds, seeds, ``label``), ``what`` they hold, the
    summary table, then every run."""
    return "\n\n".join([
        heading,
        f"Runs of `bench/worlds.py` (worlds {', '.join(dict.fromkeys(rows['world']))}; seeds "
        f"{', '.join(map(str, sorted(set(rows['seed']))))}; {label}): {what} Written "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        markdown_table(summary_table, 3),
        "Per run:",
        markdown_table(rows, 3),
    ])


GRADERS_WHAT = ("their cross-fitting run again: the set's lift values the picks of the judges fitted on half the logs "
                "each, not the final proposals. Beside the final proposals' true lift (every one launched): the half "
                "picks' true lift (each product's two picks averaged, drawn as the compositor draws them), the "
                "graders' cross-fitted DR lift of them before calibration, and the evidence's estimate and interval "
                "at level {level:g} (`proposals_lift`).")
# --graders again with one evidence setting changed: the flag, the setting, the section's heading, the summary
GRADER_SETTINGS = {
    "chooser_view": ({"chooser_view": True}, CHOOSER_VIEW_HEADING, grader_summary),
    "disattenuate": ({"set_slope": "disattenuated"}, DISATTENUATED_HEADING, paired_summary),
    "slope_union": ({"set_slope": "both"}, SLOPE_UNION_HEADING, paired_summary),
    "unseen_likeness": ({"likeness_from": "unseen_picks"}, UNSEEN_LIKENESS_HEADING, paired_summary),
}


def setting_text(options: dict) -> str:
    """``EvidenceConfig`` settings as the docs write them: ``evidence.chooser_view: true``."""
    return ", ".join(f"`evidence.{key}: {str(value).lower() if isinstance(value, bool) else value}`"
                     for key, value in options.items())


# the sections of per-run rows: the rows, the section's heading, what the rows hold, the summary of them (the
# GRADER_SETTINGS first: with --graders beside one of them, it is --graders with that setting)
SET_SECTIONS = {
    **{flag: (partial(grader_rows, **options), heading,
              GRADERS_WHAT + f" The evidence is computed with {setting_text(options)}"
              + (", beside the run's own (`run.json`), paired by run." if summary is paired_summary else "."), summary)
       for flag, (options, heading, summary) in GRADER_SETTINGS.items()},
    "proposals": (proposal_set_rows, PROPOSALS_HEADING,
                  "each run's `evidence.proposals_lift` (the lift over the logging policy had every product launched "
                  "its rank-1 proposal, before do no harm; intervals at level {level:g}) beside the true lift of "
                  "launching every product's first row not marked `kept`, scored by the world's truth on the PNG the "
                  "run rendered (`sum_p w_p T_p / sum_p w_p L_p - 1`).", interval_summary),
    "graders": (grader_rows, GRADERS_HEADING, GRADERS_WHAT, grader_summary),
}


def publish(text: str, results: Path | None, heading: str) -> None:
    """Print a section and, with ``--results``, replace its heading's section of that file."""
    print(text)
    if results is not None:
        write_section(results, heading, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", nargs="+", default=list(BENCH_WORLDS), choices=BENCH_WORLDS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[8101, 8102])
    parser.add_argument("--products", type=int, default=30)
    parser.add_argument("--impressions", type=int, default=30_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "adcraft-bench" / "worlds")
    parser.add_argument("--out-json", type=Path,
                        default=Path(tempfile.gettempdir()) / "adcraft-bench" / "worlds-results")
    parser.add_argument("--results", type=Path, default=None, help="a Markdown results file to update")
    parser.add_argument("--table-only", action="store_true", help="summarise the JSON files only")
    parser.add_argument("--kept-alternatives", action="store_true",
                        help="instead: score each run's kept products as their logging policy, most shown creative "
                             "and best logged creative (its own section of --results)")
    parser.add_argument("--proposals", action="store_true",
                        help="instead: the evidence of every proposal launched (before do no harm) against its true "
                             "lift (its own section of --results)")
    parser.add_argument("--label", default="",
                        help="what made the runs (code, config), for the text of --proposals and --graders")
    parser.add_argument("--graders", action="store_true",
                        help="instead: run each run's cross-fitting again and score the half-data judges' picks it "
                             "graded with the truth (its own section of --results)")
    for flag, (options, _, _) in GRADER_SETTINGS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", action="store_true",
                            help=f"instead: --graders with {setting_text(options)} (its own section; --graders may be "
                                 "given too)")
    parser.add_argument("--per-product", action="store_true",
                        help="instead: each product's evidence against its proposal's true lift (its own section of "
                             "--results)")
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        for world in args.worlds:
            path = result_path(args.out_json, world, seed, args.products, args.impressions)
            if not path.is_file() and not args.table_only:
                args.workdir.mkdir(parents=True, exist_ok=True)
                try:
                    write_result(path, score_world(world, seed, args))
                except (Exception, SystemExit):  # one failed market must not stop the others
                    print(f"{world} {seed} failed:", flush=True)
                    traceback.print_exc()
                    continue
            if path.is_file():
                results.append(json.loads(path.read_text()))
    if args.kept_alternatives:
        rows = pd.DataFrame([row for r in results for row in ScoredRun(r, args.workdir).kept_alternatives()])
        text = "\n\n".join([
            KEPT_HEADING,
            f"Runs of `bench/worlds.py` (worlds {', '.join(dict.fromkeys(rows['world']))}; seeds "
            f"{', '.join(map(str, sorted(set(rows['seed']))))}): the rank-1 set of each run with its kept products "
            "(do no harm) scored as their logging policy (what `kept` means: nothing is launched), as the creative the "
            "policy shows most, and as the best logged creative (observed CTR shrunk toward the product's, 200 "
            "pseudo-impressions), by the world's truth. A reader who launches every rank-1 creative of "
            "`creatives.parquet` gets the creative the kept row shows. Mean [95% t-interval over the runs]; the "
            f"differences are paired by run. Written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
            markdown_table(kept_summary(rows)),
            "Per run:",
            markdown_table(rows, 3),
        ])
        publish(text, args.results, KEPT_HEADING)
        return
    for flag, (collect, heading, what, summarise) in SET_SECTIONS.items():
        if getattr(args, flag):
            rows = collect(results, args.workdir)
            if rows.empty:
                raise SystemExit("no run with cross-fitted evidence among the results")
            text = runs_section(heading, rows, args.label, what.format(level=rows["level"].iloc[0]), summarise(rows))
            publish(text, args.results, heading)
            return
    if args.per_product:
        rows = pd.DataFrame([row for r in results for row in product_rows(ScoredRun(r, args.workdir))])
        if rows.empty:
            raise SystemExit("no run with per-product evidence among the results")
        worlds, rules = per_product_summary(rows)
        text = "\n\n".join([
            PER_PRODUCT_HEADING,
            f"Runs of `bench/worlds.py` (worlds {', '.join(dict.fromkeys(rows['world']))}; seeds "
            f"{', '.join(map(str, sorted(set(rows['seed']))))}): each product's evidence as `products.parquet` holds "
            "it (the rank-1 proposal's estimated lift over the product's logging policy and its 90% interval, before "
            "do no harm, valued through the half-data judges' picks) beside the true lift of that proposal, scored by "
            "the world's truth on the PNG the run "
            "rendered. Written "
            f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
            markdown_table(worlds, 3),
            "Two launch rules over all products above: do no harm's, and launching wherever the estimate is "
            "positive:",
            markdown_table(rules, 3),
        ])
        publish(text, args.results, PER_PRODUCT_HEADING)
        return
    runs = run_rows([r for r in results if "reported low" in r["methods"][OPTIMIZE]], args.workdir)
    if runs.empty:
        raise SystemExit("no run with cross-fitted evidence among the results")
    text = "\n\n".join([
        HEADING,
        f"Worlds {', '.join(dict.fromkeys(runs['world']))}; seeds {', '.join(map(str, sorted(set(runs['seed']))))}; "
        f"{args.products} products and {args.impressions} impressions per market (the `sparse` world simulates four "
        "times as many products); `adcraft optimize` with its default config; intervals at level 0.9; lifts relative "
        f"to the logging policy's true CTR. Run on {'; '.join(sorted({r['machine'] for r in results}))}; written "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        markdown_table(summary(runs), 3),
        "Per run:",
        markdown_table(runs, 3),
    ])
    publish(text, args.results, HEADING)


if __name__ == "__main__":
    main()
