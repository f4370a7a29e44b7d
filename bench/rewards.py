"""Reward models against the simulator's truth, over several simulated markets of the default size.

    python bench/rewards.py [--seeds 101 102 103 104 105] [--workdir out/bench] [--products 120]
                            [--impressions 150000] [--results docs/results.md]

For each seed (none of them used by the tests) it simulates a market, trains every reward model on
the market's logs as a user would (no access to the truth) and scores the models with the truth:

- point-wise CTR and MIL: AUC on the held-out (latest) impressions, beside the AUC of the true CTR on
  the same impressions;
- pairwise (CAIG): accuracy on held-out pairs, beside the Bayes-optimal accuracy on the same pairs;
- MIL: Spearman between learned and true element effects, and log loss against a per-element model
  without interactions;
- demand utility: fitted inverse-U peaks against the true ones (distance as a share of the attribute's
  observed range).

Prints one table per model and writes them, with the seeds and settings, to a section of --results.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from markdown import markdown_table, write_section

from adcraft.evaluate.metrics import click_metrics, spearman
from adcraft.market import load_market
from adcraft.errors import InputError
from adcraft.rewards.ctr import CTRConfig, CTRTrainer
from adcraft.rewards.data import SplitConfig, click_log, time_split
from adcraft.rewards.encoding import EncodingConfig, creative_image_features
from adcraft.rewards.mil import MILConfig, MILTrainer
from adcraft.rewards.pairwise import (
    PairConfig,
    PairwiseConfig,
    PairwiseTrainer,
    bayes_optimal_accuracy,
    pair_split,
)
from adcraft.rewards.utility import UtilityConfig, utility_table
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market

SECTION = "## Reward models (bench/rewards.py)"
SPLIT = SplitConfig()  # every click model is trained and scored on the same time split


def simulated(seed: int, workdir: Path, products: int, impressions: int):
    """The market and truth of one seed, simulated once and reused by later runs."""
    folder = workdir / f"market-{seed}-{products}-{impressions}"
    if not (folder / "market.json").is_file():
        config = SimulatorConfig(seed=seed, n_products=products, n_impressions=impressions)
        simulate_market(config, folder, overwrite=True)
    return load_market(folder), GroundTruth.load(folder.with_name(folder.name + "-truth"))


def true_probabilities(truth: GroundTruth, valid: pd.DataFrame) -> np.ndarray:
    """The true click probability of each held-out row (creative image attributes and context known)."""
    attrs = truth.creatives.set_index("creative_id")
    names = [t.attribute for t in truth.model.click_terms]
    out = np.empty(len(valid))
    for i, (cid, pid, combo, ctx) in enumerate(
        zip(valid["creative_id"], valid["product_id"], valid["elements"], valid["context"])
    ):
        a = {n: float(attrs.at[cid, n]) for n in names}
        out[i] = truth.model.ctr(pid, list(combo), a, json.loads(ctx) if ctx else None)
    return out


@dataclass(frozen=True)
class HeldOut:
    """A market's training and held-out logs, with the truth's probability and metrics on the held-out rows."""

    train: pd.DataFrame
    valid: pd.DataFrame
    true: dict

    @classmethod
    def of(cls, market, truth, split) -> HeldOut:
        train, valid = time_split(click_log(market), split)
        true = true_probabilities(truth, valid)
        return cls(train, valid, click_metrics(valid["clicks"], valid["trials"], true, valid["product_id"]))

    def row(self, name: str, predicted: np.ndarray) -> dict:
        valid = self.valid
        got = click_metrics(valid["clicks"], valid["trials"], predicted, valid["product_id"])
        return {
            "model": name,
            "auc": got["auc"],
            "true_auc": self.true["auc"],
            "auc_gap": self.true["auc"] - got["auc"],
            "log_loss": got["log_loss"],
            "true_log_loss": self.true["log_loss"],
            "ece": got["ece"],
            "valid_impressions": int(got["impressions"]),
        }

    def model_row(self, name: str, model) -> dict:
        valid = self.valid
        return self.row(
            name, model.predict(valid["product_id"].tolist(), valid["elements"].tolist(), valid["context"].tolist())
        )

    def observed_ctr_row(self) -> dict:
        """Reference: each creative's smoothed CTR in the training part (a memoriser of logged creatives)."""
        rate = self.train["clicks"].sum() / self.train["trials"].sum()
        counts = self.train.groupby("creative_id")[["clicks", "trials"]].sum()
        smoothed = (counts["clicks"] + 50 * rate) / (counts["trials"] + 50)
        predicted = self.valid["creative_id"].map(smoothed).fillna(rate).to_numpy()
        return {**self.row("ref: observed CTR per creative", predicted), "train_s": 0.0}


def bench_mil(market, truth, heldout: HeldOut, seed: int) -> tuple[list[dict], list[dict]]:
    """Every pooling and the per-element baseline: held-out AUC and element-effect Spearman vs the truth."""
    marginal = truth.element_marginal_effects(market)
    main = pd.Series(truth.model.element_effect)
    rows, effects = [], []
    variants = {f"mil-{p}": MILConfig(pooling=p, split=SPLIT) for p in ("sum", "attention", "noisy_or")}
    variants["per-element"] = MILConfig.per_element(split=SPLIT)
    for name, config in variants.items():
        started = time.perf_counter()
        model = MILTrainer(config).fit(market)
        train_s = time.perf_counter() - started
        rows.append({"seed": seed, **heldout.model_row(name, model), "train_s": train_s})
        learned = model.element_effects()
        shared = learned.index.intersection(marginal.index)
        non_title = [e for e in shared if truth.model.element_slot[e] != "title"]
        effects.append(
            {
                "seed": seed,
                "model": name,
                "spearman_vs_marginal": spearman(learned[shared], marginal[shared]),
                "spearman_vs_marginal_non_title": spearman(learned[non_title], marginal[non_title]),
                "spearman_vs_main_effect": spearman(learned[shared], main[shared]),
                "elements": len(shared),
            }
        )
    return rows, effects


def bench_pairwise(seed: int, workdir: Path, products: int, impressions: int) -> list[dict]:
    """CAIG's pairwise model on a market with enough impressions per creative to form pairs."""
    folder = workdir / f"pairs-market-{seed}-{products}-{impressions}"
    if not (folder / "market.json").is_file():
        config = SimulatorConfig(seed=seed, n_products=products, n_impressions=impressions, exploration=0.5,
                                 creatives_per_product=6)
        simulate_market(config, folder, overwrite=True)
    market = load_market(folder)
    truth = GroundTruth.load(folder.with_name(folder.name + "-truth"))
    true_ctr = truth.creatives.set_index("creative_id")["true_ctr"]
    rows = []
    bands = {"caig-band-1.05-1.20": (1.05, 1.20), "ratio>=1.05": (1.05, None)}
    for band, (low, high) in bands.items():
        config = PairwiseConfig(pairs=PairConfig(min_impressions="auto", min_ratio=low, max_ratio=high))
        started = time.perf_counter()
        try:
            model = PairwiseTrainer(config).fit(market)
        except InputError as error:
            rows.append({"seed": seed, "pairs": band, "error": str(error)[:120]})
            continue
        _, valid_pairs = pair_split(click_log(market), config)
        images = creative_image_features(
            market, list(valid_pairs["creative_first"]) + list(valid_pairs["creative_second"]), config.encoding
        )
        accuracy = model.pairwise_accuracy(valid_pairs, images)
        bayes = bayes_optimal_accuracy(
            valid_pairs, true_ctr[valid_pairs["creative_first"]], true_ctr[valid_pairs["creative_second"]]
        )
        rows.append(
            {
                "seed": seed,
                "pairs": band,
                "train_pairs": model.n_train_pairs,
                "valid_pairs": len(valid_pairs),
                "accuracy": accuracy,
                "bayes_optimal": bayes,
                "share_of_bayes": accuracy / bayes,
                "train_s": time.perf_counter() - started,
            }
        )
    return rows


def bench_utility(market, truth) -> list[dict]:
    """Fit h on logit CTR of the past creatives and compare peaks with the true click terms."""
    terms = {t.attribute: t for t in truth.model.click_terms}
    config = UtilityConfig(attributes=tuple(terms), target="logit_ctr")
    data = utility_table(market, config)
    model, table = data.fit(config), data.table
    rows = []
    for name, row in model.summary().iterrows():
        span = float(table[name].max() - table[name].min())
        rows.append(
            {
                "attribute": name,
                "true_peak": terms[name].peak,
                "fitted_peak": row["peak"],
                "peak_se": row["peak_se"],
                "error_share_of_range": abs(row["peak"] - terms[name].peak) / span,
                "inverse_u": bool(row["inverse_u"]),
                "r2": model.r2,
                "r2_linear": model.r2_linear,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103, 104, 105])
    parser.add_argument("--workdir", type=Path, default=Path("out/bench"))
    parser.add_argument("--products", type=int, default=120)
    parser.add_argument("--impressions", type=int, default=150_000)
    parser.add_argument("--pair-products", type=int, default=40)
    parser.add_argument("--pair-impressions", type=int, default=600_000)
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args()
    os.environ.setdefault("ADCRAFT_CACHE_DIR", str(args.workdir / "cache"))

    click_rows, utility_rows, timings, effect_rows, pair_rows = [], [], [], [], []
    for seed in args.seeds:
        started = time.perf_counter()
        market, truth = simulated(seed, args.workdir, args.products, args.impressions)
        simulated_s = time.perf_counter() - started
        timings.append({"seed": seed, "simulate_s": simulated_s})
        heldout = HeldOut.of(market, truth, SPLIT)
        variants = {"ctr": EncodingConfig(), "ctr+image": EncodingConfig(image_backbone="efficientnet-lite0")}
        for name, encoding in variants.items():
            started = time.perf_counter()
            model = CTRTrainer(CTRConfig(encoding=encoding, split=SPLIT)).fit(market)
            train_s = time.perf_counter() - started
            click_rows.append({"seed": seed, **heldout.model_row(name, model), "train_s": train_s})
        click_rows.append({"seed": seed, **heldout.observed_ctr_row()})
        mil_rows, mil_effects = bench_mil(market, truth, heldout, seed)
        click_rows += mil_rows
        effect_rows += mil_effects
        utility_rows += [{"seed": seed, **row} for row in bench_utility(market, truth)]
        pair_rows += bench_pairwise(seed, args.workdir, args.pair_products, args.pair_impressions)
        print(pd.DataFrame(click_rows[-7:]).to_string(index=False), flush=True)
        print(pd.DataFrame(effect_rows[-4:]).to_string(index=False), flush=True)
        print(pd.DataFrame(pair_rows[-2:]).to_string(index=False), flush=True)

    clicks = pd.DataFrame(click_rows)
    utility = pd.DataFrame(utility_rows)
    summary = [
        SECTION,
        "",
        f"Seeds {args.seeds}; markets of {args.products} products and {args.impressions} impressions "
        "(`SimulatorConfig` defaults otherwise); validation = the latest 20% of impressions.",
        "",
        "### Click models: AUC on held-out impressions vs the true CTR's AUC",
        "",
        markdown_table(clicks),
        "",
        "`ref: observed CTR per creative` memorises each logged creative's smoothed training CTR: with this much "
        "data it marks what the logs allow, well short of the truth's AUC.",
        "",
        "Mean AUC gap (true - model) by model: "
        + ", ".join(f"{m} {g:.4f}" for m, g in clicks.groupby("model", sort=False)["auc_gap"].mean().items()),
        "",
        "### MIL element effects: Spearman of learned vs true element effects",
        "",
        "`marginal`: each element's true average effect (the additive projection of the true logits of the "
        "past creatives, `GroundTruth.element_marginal_effects`); `main_effect`: the click model's main-effect "
        "parameter alone.",
        "",
        markdown_table(pd.DataFrame(effect_rows)),
        "",
        f"### Pairwise (CAIG) on markets of {args.pair_products} products, {args.pair_impressions} impressions, "
        "exploration 0.5 (pairs need many impressions per creative)",
        "",
        markdown_table(pd.DataFrame(pair_rows)),
        "",
        "### Demand utility h(v): fitted vs true inverse-U peaks (target: logit CTR of past creatives)",
        "",
        markdown_table(utility),
        "",
        f"Peaks within 10% of the attribute's range: {int((utility['error_share_of_range'] <= 0.10).sum())} "
        f"of {len(utility)}.",
        "",
        "### Timings (s)",
        "",
        markdown_table(pd.DataFrame(timings), digits=1),
        "",
    ]
    text = "\n".join(summary)
    print(text)
    write_section(args.results, SECTION, text)



if __name__ == "__main__":
    main()
