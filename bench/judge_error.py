"""How large is the judge's error on a creative it never saw, and does the backtest measure it?

    python bench/judge_error.py --seeds S [S ...] [--worlds W ...] [--products 30] [--impressions 30000]
        [--traffic N [N ...]] [--workdir DIR] [--out-json DIR] [--results docs/results.md] [--label TEXT]
        [--table-only]

Do no harm launches a product only where its lower bound is above 0, and a product's interval carries one new
creative's contrast error in full, of spread ``tau_w+`` (``evaluate.evidence``: the backtest's contrast spread
beyond binomial noise, at its upper bound over resamples, floored by the half-judges' disagreement). Whether that
spread is the judge's real error or an artefact of measuring it on creatives of a few clicks each is a question the
truth answers. For each benchmark market (``bench/worlds.py``'s simulation) the cross-fitted evidence runs as
``adcraft optimize`` runs it with the additive judge (do no harm on), once per arm, and the same backtest is fitted
again with the world's true expected CTRs in place of the observed ones (``noise_free_contrast``: each held-out
creative's and each reference's true CTR, context by context as the logs showed them, so no binomial noise is
left): its spread is the judge's real error on new creatives' contrasts, which the backtest's own spread estimates.

Arms (``ARMS``): ``additive``, the additive judge with one L2 strength for products and elements (optimize's default
until this measurement); ``additive, own product strength``, the same with the product weights' own strength chosen
beside the elements' (``AdditiveConfig.product_l2_grid``, optimize's default since). Per market and arm: the true
lift and harm share of launching every proposal and after do no harm, the products launched, the evidence's estimate
and interval of every proposal launched, the backtest's contrast slope and spread with its bound, the half-judges'
disagreement, the verified ratio, the lower bound of a product credited it, and the noise-free slope and spread
(split into the spread of the products' mean error and the spread within products), with the noise the backtest
subtracts as a share of the squared noise truly in the observed contrasts (1: it subtracts exactly the noise). Every
figure is graded by the truth on the logged creative's own image or the rendered proposal, context-averaged,
weighted by the products' traffic shares as ``bench/worlds.py`` weighs them.

With ``--traffic N ...`` the same markets (each world and seed: the same products, creatives and truth) are logged
with N impressions each, and one section compares the sizes (``traffic_table``): which part of the judge's real
error is the noise of estimating it from few clicks, which falls as the log grows, and which stays, and whether do
no harm launches at a larger traffic.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from evidence_ceiling import TruthJudge, additive_picks, graded_market, markets_text, rounded
from markdown import markdown_table, write_section
from worlds import machine, market_options, mean_interval, read_results, run_markets

from adcraft.evaluate.evidence import Contrast, EvidenceConfig, contrast_fit, creative_folds, proposal_evidence
from adcraft.evaluate.proposal_value import ProposalPolicy
from adcraft.market import Market
from adcraft.market.click_log import click_log
from adcraft.pipeline.optimize import OptimizeConfig, additive_config
from adcraft.rewards.additive import AdditiveConfig, fit_additive

# ``additive``: one strength for products and elements (the default before the product weights got their own)
ARMS: dict[str, dict] = {"additive": {"product_l2_grid": ()},
                         "additive, own product strength": {"product_l2_grid": (0.3, 3.0)}}
METRICS = ("true lift, every proposal launched", "harm share, every proposal launched", "launched share",
           "true lift after do no harm", "harm share after do no harm", "estimate", "low", "high", "contrast slope",
           "contrast spread", "contrast spread bound", "disagreement", "verified ratio", "best product low",
           "noise-free slope", "noise-free spread", "noise-free spread between products",
           "noise-free spread within products", "subtracted / true noise")
TRAFFIC = ("noise-free spread", "noise-free spread within products", "noise-free slope", "contrast spread bound",
           "best product low", "launched share", "true lift after do no harm", "harm share after do no harm",
           "true lift, every proposal launched", "harm share, every proposal launched", "estimate", "low")
PAIRED = ("true lift, every proposal launched", "harm share, every proposal launched", "launched share",
          "true lift after do no harm", "contrast spread", "noise-free spread", "disagreement")


def heading(args) -> str:
    """One section per market size."""
    return (f"## The judge's error on new creatives, measured and true: {args.products} products and "
            f"{args.impressions} impressions (bench/judge_error.py)")


@dataclasses.dataclass(frozen=True)
class NoiseFree:
    """The backtest's contrast fitted on true CTRs (``noise_free_contrast``)."""

    contrast: Contrast  # slope and spread with no binomial noise left (``spread``: the judge's real error)
    between: float  # the spread of the products' mean relative error
    within: float  # the spread of the relative error about its product's mean
    noise_share: float  # the binomial noise the backtest subtracts over the squared noise in the observed contrasts


def noise_free_contrast(points: pd.DataFrame, true_ctr: np.ndarray, true_reference: np.ndarray) -> NoiseFree:
    """``contrast_fit`` of the backtest's ``points`` (``Backtest.points``) with each held-out creative's observed CTR
    replaced by its true one ``true_ctr`` and its reference's by ``true_reference`` (the product's creatives in the
    other fold, impression-weighted), and no noise to subtract: the slope of the true contrast on the predicted one
    and the relative spread of what is left, ``sqrt(sum n r^2 / sum n e^2)`` with ``r = t - T (1 + gamma (pi - 1))``
    and ``e = T (1 + gamma (pi - 1))`` (the backtest's own ``tau_w`` with the truth in place of the clicks). The
    relative residuals ``r / e`` are split into their products' impression-weighted means and the rest. The noise
    share compares the backtest's ``contrast_noise`` with ``(o - t)^2 + pi^2 (O - T)^2``, the squared noise truly in
    each observed contrast (summed with the backtest's weights)."""
    ratio = points["predicted_ratio"].to_numpy(dtype=float)
    weight = points["contrast_weight"].to_numpy(dtype=float)
    usable = (weight > 0) & np.isfinite(true_reference) & (true_reference > 0)
    base = np.where(usable, true_reference, 0.0)
    clean = points.assign(contrast_base=base, contrast_x=base * (ratio - 1.0),
                          contrast_y=np.where(usable, true_ctr - base, 0.0), contrast_noise=0.0,
                          contrast_weight=np.where(usable, weight, 0.0))
    likeness = clean["likeness"].to_numpy(dtype=float) if "likeness" in clean else np.zeros(len(clean))
    contrast = contrast_fit(clean, likeness)
    expected = base * np.maximum(1.0 + contrast.slope * (ratio - 1.0), 0.0)
    w = clean["contrast_weight"].to_numpy(dtype=float)
    keep = w * (expected > 0) > 0
    relative = (np.where(usable, true_ctr, 0.0)[keep] - expected[keep]) / expected[keep]
    frame = pd.DataFrame({"product": points["product_id"].to_numpy()[keep], "r": relative, "w": w[keep]})
    means = (frame["r"] * frame["w"]).groupby(frame["product"]).sum() / frame["w"].groupby(frame["product"]).sum()
    frame["mean"] = frame["product"].map(means)
    between = within = math.nan
    if len(frame):
        between = math.sqrt(float(np.average(frame["mean"] ** 2, weights=frame["w"])))
        within = math.sqrt(float(np.average((frame["r"] - frame["mean"]) ** 2, weights=frame["w"])))
    observed = points["observed"].to_numpy(dtype=float)
    reference = points["reference_observed"].to_numpy(dtype=float)
    true_noise = np.where(usable, (observed - true_ctr) ** 2 + ratio**2 * (np.nan_to_num(reference) - base) ** 2, 0.0)
    subtracted = float((weight * points["contrast_noise"].to_numpy(dtype=float)).sum())
    share = subtracted / float((weight * true_noise).sum()) if (weight * true_noise).sum() > 0 else math.nan
    return NoiseFree(contrast, between, within, share)


def true_creative_ctrs(market: Market, truth_judge: TruthJudge, folds: dict[str, int]
                       ) -> tuple[pd.Series, pd.Series]:
    """Each logged creative's true CTR over the contexts of its own impressions, and each (product, fold)'s: the
    impression-weighted truth of the product's creatives in that fold."""
    log = click_log(market)
    expected = truth_judge.predict(log["product_id"].tolist(), log["elements"].tolist(), log["context"].tolist())
    log = log.assign(expected=expected * log["trials"].to_numpy(dtype=float),
                     fold=[folds[str(c)] for c in log["creative_id"]])
    per = log.groupby("creative_id").agg(expected=("expected", "sum"), trials=("trials", "sum"))
    groups = log.groupby(["product_id", "fold"]).agg(expected=("expected", "sum"), trials=("trials", "sum"))
    return per["expected"] / per["trials"], groups["expected"] / groups["trials"]


def score_market(world: str, seed: int, args) -> dict:
    """Every arm's evidence and the backtest on true CTRs for one (world, seed) market."""
    started = time.perf_counter()
    market, truth, scorer, products, share, logging = graded_market(world, seed, args)
    config = EvidenceConfig()
    folds = creative_folds(market.creatives, config.seed)
    true_ctr, true_groups = true_creative_ctrs(market, TruthJudge(market, truth, scorer), folds)
    out = {}
    for arm, settings in ARMS.items():
        begun = time.perf_counter()
        judge_config: AdditiveConfig = dataclasses.replace(additive_config(OptimizeConfig()), **settings)

        def fit(part: Market, judge_config: AdditiveConfig = judge_config):
            return fit_additive(click_log(part), judge_config)

        def choose(judge) -> pd.DataFrame:
            return additive_picks(market, judge)

        judge = fit(market)
        final = choose(judge)
        evidence = proposal_evidence(market, final, fit, choose, config, ProposalPolicy(), do_no_harm=True)
        picks = dict(zip(final["product_id"], final["elements"]))
        proposed = np.array([scorer.exact(p, list(picks[p])) for p in products])
        kept = set(evidence.products.loc[evidence.products["keep_current"], "product_id"])
        launched = np.array([p not in kept for p in products])
        after = np.where(launched, proposed, logging)
        points = evidence.backtest.points
        reference = true_groups.reindex(pd.MultiIndex.from_arrays(
            [points["product_id"], 1 - np.array([folds[str(c)] for c in points["creative_id"]])])).to_numpy()
        clean = noise_free_contrast(points, true_ctr.reindex(points["creative_id"]).to_numpy(dtype=float),
                                    reference.astype(float))
        backtest = evidence.backtest
        out[arm] = {
            "true lift, every proposal launched": float(np.sum(share * proposed) / np.sum(share * logging) - 1.0),
            "harm share, every proposal launched": float(np.mean(proposed < logging)),
            "launched share": float(launched.mean()),
            "true lift after do no harm": float(np.sum(share * after) / np.sum(share * logging) - 1.0),
            "harm share after do no harm": float(np.mean(after < logging)),
            "estimate": evidence.proposals_lift.estimate, "low": evidence.proposals_lift.low,
            "high": evidence.proposals_lift.high,
            "contrast slope": backtest.contrast_slope, "contrast spread": backtest.contrast_spread,
            "contrast spread bound": backtest.contrast_spread_bound, "disagreement": backtest.disagreement,
            "verified ratio": backtest.verified_ratio, "best product low": backtest.best_product_low,
            "noise-free slope": clean.contrast.slope, "noise-free spread": clean.contrast.spread,
            "noise-free spread between products": clean.between, "noise-free spread within products": clean.within,
            "subtracted / true noise": clean.noise_share,
            "l2": judge.l2, "product l2": judge.product_l2, "seconds": time.perf_counter() - begun,
        }
    return {
        "world": world, "seed": seed, "configured products": args.products, "configured impressions": args.impressions,
        "products": len(products), "impressions": len(market.impressions),
        "seconds": time.perf_counter() - started, "machine": machine(),
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "arms": out,
    }


def metric_cells(figures: list[dict], metrics: Sequence[str]) -> dict[str, str]:
    """Each metric's mean and 95% t-interval over ``figures`` (one arm's figures per market), its missing and
    non-finite values left out; "-" where none is left."""
    cells = {}
    for metric in metrics:
        values = [v for v in (f[metric] for f in figures) if v is not None and np.isfinite(v)]
        cells[metric] = mean_interval(values) if values else "-"
    return cells


def table(results: list[dict]) -> pd.DataFrame:
    """Per world and arm (and over all worlds): each metric's mean and 95% t-interval over the markets."""
    rows = []
    worlds = list(dict.fromkeys(r["world"] for r in results))
    for world in [*worlds, "all"]:
        mine = [r for r in results if world in ("all", r["world"])]
        for arm in ARMS:
            rows.append({"world": world, "arm": arm, "markets": len(mine),
                         **metric_cells([r["arms"][arm] for r in mine], METRICS)})
    return pd.DataFrame(rows)


def paired(results: list[dict]) -> pd.DataFrame:
    """Per world (and over all worlds), the second arm minus the first on ``PAIRED``'s metrics: mean and 95% paired
    t-interval over the markets, and the markets whose harm share after do no harm exceeds 0.10 under each arm."""
    first, second = ARMS
    rows = []
    worlds = list(dict.fromkeys(r["world"] for r in results))
    for world in [*worlds, "all"]:
        mine = [r for r in results if world in ("all", r["world"])]
        cells = {"world": world, "markets": len(mine)}
        for metric in PAIRED:
            cells[metric] = mean_interval([r["arms"][second][metric] - r["arms"][first][metric] for r in mine], "+.3f")
        for arm in ARMS:
            cells[f"harm after do no harm > 0.10, {arm}"] = sum(r["arms"][arm]["harm share after do no harm"] > 0.10
                                                                for r in mine)
        rows.append(cells)
    return pd.DataFrame(rows)


def traffic_table(results: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per logged size (``configured impressions``) and arm, ``TRAFFIC``'s metrics over the markets of every world
    (mean [95% t-interval]), the markets where the set of every proposal launched is shown better (its lower end
    ``low`` above 0; do no harm judges each product alone), and of them those where its true lift is above 0 and
    those where ``low`` is above the true lift (a test sized on ``low`` would be short of its power there); and per
    world and size, the default arm's (the last of ``ARMS``) noise-free spread and launched share."""
    sizes = sorted({r["configured impressions"] for r in results})
    rows = []
    for size in sizes:
        mine = [r for r in results if r["configured impressions"] == size]
        for arm in ARMS:
            figures = [r["arms"][arm] for r in mine]
            cells = {"impressions": size, "arm": arm, "markets": len(mine), **metric_cells(figures, TRAFFIC)}
            shown = [a for a in figures if a["low"] > 0]
            cells["set shown better"] = f"{len(shown)} of {len(mine)}"
            cells["of them truly better"] = sum(a["true lift, every proposal launched"] > 0 for a in shown)
            cells["of them with the lower end above the true lift"] = sum(
                a["low"] > a["true lift, every proposal launched"] for a in shown)
            rows.append(cells)
    default = list(ARMS)[-1]
    worlds = list(dict.fromkeys(r["world"] for r in results))
    per_world = []
    for world in worlds:
        cells = {"world": world}
        for size in sizes:
            mine = [r["arms"][default] for r in results if r["world"] == world and r["configured impressions"] == size]
            cells.update({f"{metric}, {size}": value
                          for metric, value in metric_cells(mine, ("noise-free spread", "launched share")).items()})
        per_world.append(cells)
    return pd.DataFrame(rows), pd.DataFrame(per_world)


def at_size(args, impressions: int | str) -> argparse.Namespace:
    """``args`` with ``impressions`` logged impressions per market (a text naming several, for a description)."""
    return argparse.Namespace(**{**vars(args), "impressions": impressions})


def traffic_heading(args) -> str:
    sizes = ", ".join(str(n) for n in args.traffic)
    return (f"## The judge's error as the logs grow: {args.products} products, {sizes} impressions "
            "(bench/judge_error.py --traffic)")


def write_traffic(args) -> None:
    results = [r for size in args.traffic for r in read_results(at_size(args, size))]
    overall, per_world = traffic_table(results)
    sizes = at_size(args, ", ".join(str(n) for n in args.traffic))  # the description names every size
    text = markets_text(sizes, results, " ".join(__doc__.split("\n\n")[2:5]))
    body = "\n\n".join([traffic_heading(args), text, markdown_table(overall),
                         f"Per world, *{list(ARMS)[-1]}*:", markdown_table(per_world)])
    write_section(args.results, traffic_heading(args), body)
    print(markdown_table(overall))


def write_table(args) -> None:
    results = read_results(args)
    first, second = ARMS
    text = markets_text(args, results, " ".join(__doc__.split("\n\n")[2:4]))
    differences = markdown_table(paired(results))
    body = "\n\n".join([heading(args), text, markdown_table(table(results)),
                        f"Paired, *{second}* minus *{first}*:", differences])
    write_section(args.results, heading(args), body)
    print(differences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    market_options(parser, seeds=[7001, 7002, 7003], out_json="judge-error")
    parser.add_argument("--label", default="", help="a sentence appended to the section's description")
    parser.add_argument("--traffic", type=int, nargs="+", default=None,
                        help="log each market with each of these impressions and compare them in one section "
                             "(instead of --impressions)")
    args = parser.parse_args()
    if args.traffic:
        for size in args.traffic:
            if not args.table_only:
                run_markets(at_size(args, size), score_market, lambda r: rounded(r["arms"]))
        write_traffic(args)
        return
    if not args.table_only:
        run_markets(args, score_market, lambda r: rounded(r["arms"]))
    write_table(args)


if __name__ == "__main__":
    main()
