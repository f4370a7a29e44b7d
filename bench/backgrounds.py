"""CAIG's background prompt model after DPO and PCPO rounds, measured against the simulator's truth.

    python bench/backgrounds.py [--seeds 0 1 2] [--market-seed 7] [--products 40] [--impressions 60000]
                                [--workdir $TMPDIR/adcraft-bench/backgrounds] [--results docs/results.md]

One market is simulated (``--market-seed``) and reused by later runs. On it, as ``generate_backgrounds``
does and without access to the truth:

- the judge is CAIG's pairwise reward model (``BackgroundsConfig().reward``), trained once on the
  market's logs and kept in the workdir, behind ``PairwiseJudge`` on each product's current best
  combination (``build_judge``);
- per training seed, the supervised prompt model (``PromptTrainer``, ``PromptModelConfig(seed=seed)``) is
  fitted once and both methods start from it: ``PreferenceTrainer`` runs ``--rounds`` rounds of DPO and,
  separately, of PCPO (``PreferenceConfig(method, seed=seed)``, other settings the library's defaults).

After every round (round 0 is the supervised start) the policy draws ``--samples`` prompts per product at
temperature 1 (the same draw seed for every policy) and the truth scores them:

- match rate: the share of drawn prompts whose true product-background relevance is positive
  (``GroundTruth.background_match``, CAIG's product-background match);
- true CTR: the mean context-averaged true CTR of each drawn prompt rendered as the background of its
  product's current best combination (``PairwiseJudge.render``; the truth learns each new prompt's
  parameters by ``GroundTruth.with_elements``, then ``ctr_of_image`` reads the rendered pixels).

The current backgrounds (those of the best combinations) are scored the same way as a reference. The
judge's own view is the round's ``chosen_reward`` (mean judge P(chosen prompt beats the current
background)). The target, PCPO >= DPO + 10 points of match rate after the last round at comparable
reward (PCPO's mean true CTR at least 95% of DPO's), is checked on the means over training seeds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from markdown import markdown_table, write_section
from structured_reference import fit_selected

from adcraft.generate.backgrounds import BackgroundsConfig, build_judge
from adcraft.generate.preference import PairwiseJudge, PhotoMasker, PreferenceConfig, PreferenceTrainer
from adcraft.generate.prompt import BackgroundPromptModel, PromptTrainer, normalize_prompt
from adcraft.learning.metrics import spearman
from adcraft.market import Market, load_market
from adcraft.market.click_log import click_log
from adcraft.rewards.pairwise import PairwiseModel, PairwiseTrainer
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market

SECTION = "## Background prompts: DPO vs PCPO (bench/backgrounds.py)"
METHODS = ("dpo", "pcpo")
EVAL_SEED = 999  # draw seed of the evaluation samples, the same for every policy
TARGET_POINTS = 10.0  # PCPO's match rate must exceed DPO's by this many points ...
COMPARABLE_CTR = 0.95  # ... with a mean true CTR at least this share of DPO's


def simulated(seed: int, workdir: Path, products: int, impressions: int) -> tuple[Market, GroundTruth]:
    """The market and truth of one seed, simulated once and reused by later runs."""
    folder = workdir / f"market-{seed}-{products}-{impressions}"
    if not (folder / "market.json").is_file():
        # the legacy world: the structured reference (structured_reference.py) knows only its functional form
        config = SimulatorConfig(seed=seed, world="legacy", n_products=products, n_impressions=impressions)
        simulate_market(config, folder, overwrite=True)
    return load_market(folder), GroundTruth.load(folder.with_name(folder.name + "-truth"))


def pairwise_reward_model(market: Market, folder: Path, config: BackgroundsConfig) -> tuple[PairwiseModel, float]:
    """CAIG's pairwise model trained on the market's logs, saved to ``folder`` and loaded from it later;
    (model, training seconds, 0 when loaded)."""
    if (folder / "config.json").is_file():
        return PairwiseModel.load(folder), 0.0
    started = time.perf_counter()
    model = PairwiseTrainer(config.reward).fit(market)
    seconds = time.perf_counter() - started
    model.save(folder)
    return model, seconds


class TruthScorer:
    """Match and true CTR of (product, prompt) pairs, each prompt drawn on its product's best combination.

    Every new prompt becomes one background element of a growing copy of the truth (id from the hash of
    its canonical spelling); prompts the simulator made keep their exact parameters (``with_elements``).
    """

    def __init__(self, truth: GroundTruth, judge: PairwiseJudge) -> None:
        self.truth, self.judge = truth, judge
        self.element: dict[str, str] = {}  # canonical prompt -> element id in self.truth
        self.ctr_cache: dict[tuple[str, str], float] = {}
        self.match_cache: dict[tuple[str, str], bool] = {}

    def _elements(self, prompts: Sequence[str]) -> None:
        new = sorted({normalize_prompt(q) for q in prompts} - set(self.element))
        if not new:
            return
        ids = ["bench-bg-" + hashlib.sha1(q.encode()).hexdigest()[:12] for q in new]
        rows = pd.DataFrame({"element_id": ids, "slot": "background", "product_id": None, "value": new})
        self.truth = self.truth.with_elements(rows)
        self.element.update(zip(new, ids))

    def match(self, product_ids: Sequence[str], prompts: Sequence[str]) -> np.ndarray:
        out = []
        for pid, prompt in zip(product_ids, prompts):
            key = (pid, normalize_prompt(prompt))
            if key not in self.match_cache:
                self.match_cache[key] = self.truth.background_match(pid, prompt)
            out.append(self.match_cache[key])
        return np.array(out, dtype=float)

    def ctr(self, product_ids: Sequence[str], prompts: Sequence[str]) -> np.ndarray:
        self._elements(prompts)
        slot = self.judge.slot
        out = []
        for pid, prompt in zip(product_ids, prompts):
            key = (pid, normalize_prompt(prompt))
            if key not in self.ctr_cache:
                combo = list(self.judge.base_combos[pid])
                combo[slot] = self.element[key[1]]
                self.ctr_cache[key] = self.truth.ctr_of_image(pid, combo, self.judge.render(pid, key[1]))
            out.append(self.ctr_cache[key])
        return np.array(out, dtype=float)

    def score(self, product_ids: Sequence[str], prompts: Sequence[str]) -> dict[str, float]:
        return {"match": float(self.match(product_ids, prompts).mean()),
                "true_ctr": float(self.ctr(product_ids, prompts).mean())}

    def policy(self, policy: BackgroundPromptModel, samples: int) -> dict[str, float]:
        """Match rate and mean true CTR of ``samples`` prompts per product drawn at temperature 1."""
        products = policy.product_ids
        drawn = policy.sample(products, n=samples, temperature=1.0, seed=EVAL_SEED)
        ids = [pid for pid, prompts in zip(products, drawn) for _ in prompts]
        prompts = [q for qs in drawn for q in qs]
        return {**self.score(ids, prompts), "distinct_per_product": float(np.mean([len(set(qs)) for qs in drawn]))}


def run_method(
    method: str, seed: int, rounds: int, reference: BackgroundPromptModel, judge: PairwiseJudge,
    baseline: dict[str, str], masker: PhotoMasker, scorer: TruthScorer, samples: int,
) -> list[dict]:
    """One method's rounds from the supervised ``reference``: a row per round (0 = the start)."""
    measured: list[dict] = []

    def match_rate(policy: BackgroundPromptModel) -> float:
        measured.append(scorer.policy(policy, samples))
        return measured[-1]["match"]

    config = PreferenceConfig(method=method, rounds=rounds, seed=seed)
    started = time.perf_counter()
    result = PreferenceTrainer(config).fit(reference, judge, masker=masker, baseline=baseline, match_rate=match_rate)
    total = time.perf_counter() - started
    rows = [{"seed": seed, "method": method, "round": 0, **measured[0], "chosen_reward": float("nan"),
             "pairs": 0, "round_s": 0.0}]
    for record, scores in zip(result.history.rounds, measured[1:]):
        rows.append({"seed": seed, "method": method, "round": record.round, **scores,
                     "chosen_reward": record.chosen_reward, "pairs": record.pairs, "round_s": record.seconds})
    print(f"{method} seed {seed}: {total:.1f} s (rounds {sum(r['round_s'] for r in rows):.1f} s, "
          "the rest measuring)", flush=True)
    return rows


def final_comparison(rounds: pd.DataFrame) -> pd.DataFrame:
    """Per training seed, the last round of both methods side by side and PCPO - DPO."""
    last = rounds[rounds["round"] == rounds["round"].max()].set_index(["seed", "method"])
    rows = []
    for seed in sorted(rounds["seed"].unique()):
        dpo, pcpo = last.loc[(seed, "dpo")], last.loc[(seed, "pcpo")]
        rows.append({
            "seed": str(seed),
            "dpo_match": dpo["match"],
            "pcpo_match": pcpo["match"],
            "pcpo_minus_dpo_points": 100 * (pcpo["match"] - dpo["match"]),
            "dpo_true_ctr": dpo["true_ctr"],
            "pcpo_true_ctr": pcpo["true_ctr"],
            "ctr_ratio_pcpo_dpo": pcpo["true_ctr"] / dpo["true_ctr"],
            "dpo_chosen_reward": dpo["chosen_reward"],
            "pcpo_chosen_reward": pcpo["chosen_reward"],
        })
    table = pd.DataFrame(rows)
    mean = table.drop(columns="seed").mean()
    mean["ctr_ratio_pcpo_dpo"] = mean["pcpo_true_ctr"] / mean["dpo_true_ctr"]
    return pd.concat([table, pd.DataFrame([{"seed": "mean", **mean.to_dict()}])], ignore_index=True)


def verdict(final: pd.DataFrame) -> str:
    mean = final[final["seed"] == "mean"].iloc[0]
    points, ratio = mean["pcpo_minus_dpo_points"], mean["ctr_ratio_pcpo_dpo"]
    wins = int((final.loc[final["seed"] != "mean", "pcpo_minus_dpo_points"] > 0).sum())
    met = points >= TARGET_POINTS and ratio >= COMPARABLE_CTR
    return (f"Target: PCPO's match rate >= DPO's + {TARGET_POINTS:.0f} points after the last round, at comparable "
            f"reward (PCPO's mean true CTR >= {COMPARABLE_CTR:.0%} of DPO's). Measured: PCPO - DPO = "
            f"{points:+.1f} points on average (PCPO ahead on {wins} of {len(final) - 1} seeds), true CTR ratio "
            f"PCPO/DPO {ratio:.3f}. Target {'met' if met else 'not met'}.")


def relevance_knowledge(market: Market, truth: GroundTruth, judge: PairwiseJudge, scorer: TruthScorer) -> dict:
    """How much of the true product-background relevance the logs reveal, over the market's own backgrounds.

    - judge: per product, Spearman between the judge's predicted CTR of each background (on the product's
      best combination) and the background's true relevance to the product; mean over products;
    - true CTR: the same with the truth's CTR of those renders in place of the judge (how much relevance
      moves CTR at all);
    - structured reference: the click model told the simulator's functional form (category x background
      indicators among its features; ``structured_reference.py``) fitted on all the logs; correlation of
      its category x background coefficients with the true relevance.
    """
    backgrounds = market.elements.loc[market.elements["slot"] == "background", "value"].tolist()
    judge_rho, ctr_rho, top_match = [], [], []
    for pid in sorted(judge.base_combos):
        ids = [pid] * len(backgrounds)
        relevance = np.array([truth.background_relevance(pid, b) for b in backgrounds])
        predicted = judge.predicted_ctr(ids, backgrounds)
        judge_rho.append(spearman(predicted, relevance))
        ctr_rho.append(spearman(scorer.ctr(ids, backgrounds), relevance))
        top_match.append(float(np.mean(relevance[np.argsort(-predicted)[:3]] > 0)))
    reference = fit_selected(truth, click_log(market))
    cells = reference.relevance_coefficients()
    by_category = {c: p for p, c in truth.model.product_category.items()}
    prompt = market.elements.set_index("element_id")["value"]
    true = np.array([truth.background_relevance(by_category[c], prompt[b])
                     for c, b in zip(cells["category"], cells["background"])])
    return {
        "backgrounds": len(backgrounds),
        "judge_spearman_with_relevance": float(np.nanmean(judge_rho)),
        "true_ctr_spearman_with_relevance": float(np.nanmean(ctr_rho)),
        "match_of_judge_top3": float(np.mean(top_match)),
        "reference_cells": len(cells),
        "reference_corr_with_relevance": float(np.corrcoef(cells["coefficient"], true)[0, 1]),
        "reference_sign_agreement": float(np.mean((cells["coefficient"].to_numpy() > 0) == (true > 0))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--market-seed", type=int, default=7)
    parser.add_argument("--products", type=int, default=40)
    parser.add_argument("--impressions", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=8, help="prompts drawn per product to measure a policy")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "adcraft-bench" / "backgrounds")
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args()
    os.environ.setdefault("ADCRAFT_CACHE_DIR", str(args.workdir / "cache"))
    began = time.perf_counter()

    started = time.perf_counter()
    market, truth = simulated(args.market_seed, args.workdir, args.products, args.impressions)
    timings = {"simulate (0 when reused)": time.perf_counter() - started}
    config = BackgroundsConfig()
    reward_dir = args.workdir / f"pairwise-{args.market_seed}-{args.products}-{args.impressions}"
    reward_model, timings["pairwise judge training (0 when reused)"] = pairwise_reward_model(market, reward_dir, config)
    judge, baseline = build_judge(market, reward_model, config)
    judge_note = (f"held-out pair accuracy {reward_model.valid_accuracy or float('nan'):.3f} "
                  f"({reward_model.n_train_pairs} training, {reward_model.n_valid_pairs} held-out pairs)")
    print(f"pairwise judge: {judge_note}", flush=True)
    scorer = TruthScorer(truth, judge)
    products = list(baseline)
    current = scorer.score(products, [baseline[p] for p in products])
    print(f"current backgrounds: match {current['match']:.3f}, true CTR {current['true_ctr']:.5f}", flush=True)
    knowledge = relevance_knowledge(market, truth, judge, scorer)
    print(f"relevance knowledge: {knowledge}", flush=True)

    rows, sft_seconds = [], []
    for seed in args.seeds:
        started = time.perf_counter()
        reference = PromptTrainer(replace(config.prompt, seed=seed)).fit(market)
        sft_seconds.append(time.perf_counter() - started)
        masker = PhotoMasker(market, reference)
        for method in METHODS:
            rows += run_method(method, seed, args.rounds, reference, judge, baseline, masker, scorer, args.samples)
            print(pd.DataFrame(rows[-(args.rounds + 1):]).to_string(index=False), flush=True)
    timings["supervised fit (mean per seed)"] = float(np.mean(sft_seconds))
    rounds = pd.DataFrame(rows)
    timings["preference round (mean)"] = float(rounds.loc[rounds["round"] > 0, "round_s"].mean())
    timings["total"] = time.perf_counter() - began

    by_round = (rounds.groupby(["method", "round"])[["match", "true_ctr", "chosen_reward"]].mean().unstack("method"))
    by_round.columns = [f"{method}_{name}" for name, method in by_round.columns]
    by_round = by_round.reset_index()[["round", "dpo_match", "pcpo_match", "dpo_true_ctr", "pcpo_true_ctr",
                                       "dpo_chosen_reward", "pcpo_chosen_reward"]]
    final = final_comparison(rounds)
    per_round = rounds.drop(columns=["round_s"])
    text = "\n".join([
        SECTION,
        "",
        f"Market seed {args.market_seed}: {args.products} products, {args.impressions} impressions "
        f"(`SimulatorConfig` defaults otherwise); training seeds {args.seeds}; {args.rounds} rounds; "
        f"{args.samples} prompts drawn per product at temperature 1 to measure each policy. Library defaults "
        "(`BackgroundsConfig()`) for the prompt model, the rounds and the pairwise judge; nothing tuned here.",
        "",
        f"Pairwise judge: {judge_note}.",
        "",
        "`match`: share of drawn prompts with a positive true product-background relevance; `true_ctr`: mean "
        "true CTR of the drawn prompts rendered on the product's current best combination; `chosen_reward`: "
        "the judge's mean P(the round's chosen prompt beats the current background). Round 0 is the "
        "supervised model, the same for both methods of a seed (no chosen prompts: `nan`).",
        "",
        f"Reference, the current backgrounds: match {current['match']:.4f}, true CTR {current['true_ctr']:.5f}.",
        "",
        "### What the logs reveal of product-background relevance (the market's own backgrounds)",
        "",
        "Per product, every background of the market drawn on the product's best combination: Spearman of the "
        "judge's predicted CTR, and of the true CTR, with the true relevance (mean over products); the true "
        "match rate of the judge's top 3. `reference`: a click model told the simulator's functional form, "
        "category x background indicators included (`bench/structured_reference.py`), fitted on all the logs: "
        "correlation and sign agreement of its category x background coefficients with the true relevance.",
        "",
        markdown_table(pd.DataFrame([knowledge])),
        "",
        "### Mean over training seeds, by round",
        "",
        markdown_table(by_round),
        "",
        "### After the last round",
        "",
        markdown_table(final),
        "",
        verdict(final),
        "",
        "### Every seed and round",
        "",
        markdown_table(per_round),
        "",
        "### Timings (s, 2-core CPU)",
        "",
        "The judge keeps the image features of every (product, prompt) it rendered, across runs: the first "
        "rounds pay for most renders. `total` includes measuring every policy against the truth.",
        "",
        markdown_table(pd.DataFrame([timings]), digits=1),
        "",
    ])
    print(text)
    write_section(args.results, SECTION, text)


if __name__ == "__main__":
    main()
