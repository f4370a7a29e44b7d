"""CAIG's background prompt model after DPO and PCPO rounds, measured against the simulator's truth.

    python bench/backgrounds.py [--world legacy] [--seeds 0 1 2] [--market-seed 7 | --market-seeds 7 8 9]
                                [--products 40] [--impressions 60000]
                                [--workdir $TMPDIR/adcraft-bench/backgrounds] [--results docs/results.md]

Markets are simulated in ``--world`` (``SimulatorConfig(seed, world, n_products, n_impressions)``) and
reused by later runs. With ``--market-seed`` one market serves every training seed of ``--seeds``; with
``--market-seeds`` (as many as ``--seeds``) the i-th training seed runs on its own market, simulated from
the i-th market seed, so that each (market seed, training seed) pair is one independent replicate. On
each market, as ``generate_backgrounds`` does and without access to the truth:

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

Paired comparison: per (market seed, training seed) replicate, d_i = PCPO - DPO after the last round, of
the match rate (points) and of the true CTR. Their mean over the n replicates is reported with the 95%
paired t-interval  mean(d) +- t_{0.975, n-1} sd(d) / sqrt(n)  (``intervals.t_half_width``).
With one market the replicates share it, so the interval covers training noise only.

Worlds: in ``legacy`` the product-background relevance is random (a latent per category and per
background), so no text can learn it; in ``semantic`` (``docs/worlds.md``) it is a category x scene
affinity and the prompts' words name the scene (``adcraft.simulator.scenes``). The structured reference
(``structured_reference.py``, the click model told the legacy functional form) is measured only on
``legacy``.
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

from intervals import t_half_width
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
from adcraft.simulator.worlds import WORLDS

SECTION = "## Background prompts: DPO vs PCPO (bench/backgrounds.py)"
METHODS = ("dpo", "pcpo")
EVAL_SEED = 999  # draw seed of the evaluation samples, the same for every policy
TARGET_POINTS = 10.0  # PCPO's match rate must exceed DPO's by this many points ...
COMPARABLE_CTR = 0.95  # ... with a mean true CTR at least this share of DPO's
LEGACY = "legacy"

def section_title(world: str) -> str:
    """The results section of a world (``legacy`` keeps the original title)."""
    if world == LEGACY:
        return SECTION
    return f"## Background prompts on the {world} world: DPO vs PCPO (bench/backgrounds.py --world {world})"


def paired_interval(differences: Sequence[float]) -> dict[str, float]:
    """Mean of paired differences with its 95% t-interval, mean +- t_{0.975, n-1} sd / sqrt(n) (nan for n < 2)."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    half = t_half_width(d)
    return {"n": n, "mean": mean, "ci_low": mean - half, "ci_high": mean + half,
            "pcpo_ahead": int((d > 0).sum()), "dpo_ahead": int((d < 0).sum())}


def simulated(seed: int, workdir: Path, products: int, impressions: int,
              world: str = LEGACY) -> tuple[Market, GroundTruth]:
    """The market and truth of one seed in ``world``, simulated once and reused by later runs."""
    name = f"market-{seed}-{products}-{impressions}" if world == LEGACY else (
        f"market-{world}-{seed}-{products}-{impressions}")
    folder = workdir / name
    if not (folder / "market.json").is_file():
        config = SimulatorConfig(seed=seed, world=world, n_products=products, n_impressions=impressions)
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
    """Per (market seed, training seed), the last round of both methods side by side and PCPO - DPO."""
    last = rounds[rounds["round"] == rounds["round"].max()].set_index(["market_seed", "seed", "method"])
    rows = []
    for market_seed, seed in sorted(set(zip(rounds["market_seed"], rounds["seed"]))):
        dpo, pcpo = last.loc[(market_seed, seed, "dpo")], last.loc[(market_seed, seed, "pcpo")]
        rows.append({
            "market_seed": str(market_seed),
            "seed": str(seed),
            "dpo_match": dpo["match"],
            "pcpo_match": pcpo["match"],
            "pcpo_minus_dpo_points": 100 * (pcpo["match"] - dpo["match"]),
            "dpo_true_ctr": dpo["true_ctr"],
            "pcpo_true_ctr": pcpo["true_ctr"],
            "pcpo_minus_dpo_true_ctr": pcpo["true_ctr"] - dpo["true_ctr"],
            "ctr_ratio_pcpo_dpo": pcpo["true_ctr"] / dpo["true_ctr"],
            "dpo_chosen_reward": dpo["chosen_reward"],
            "pcpo_chosen_reward": pcpo["chosen_reward"],
        })
    table = pd.DataFrame(rows)
    mean = table.drop(columns=["market_seed", "seed"]).mean()
    mean["ctr_ratio_pcpo_dpo"] = mean["pcpo_true_ctr"] / mean["dpo_true_ctr"]
    summary = pd.DataFrame([{"market_seed": "mean", "seed": "", **mean.to_dict()}])
    return pd.concat([table, summary], ignore_index=True)


def paired_statistics(final: pd.DataFrame) -> pd.DataFrame:
    """PCPO - DPO after the last round over the replicates: mean, 95% paired t-interval, who is ahead."""
    per_seed = final[final["market_seed"] != "mean"]
    rows = []
    for metric, column in (("match rate (points)", "pcpo_minus_dpo_points"),
                           ("true CTR", "pcpo_minus_dpo_true_ctr"),
                           ("true CTR (% of DPO's)", None)):
        if column is None:
            d = 100 * (per_seed["pcpo_true_ctr"] / per_seed["dpo_true_ctr"] - 1)
        else:
            d = per_seed[column]
        rows.append({"pcpo_minus_dpo": metric, **paired_interval(d.to_numpy(dtype=float))})
    return pd.DataFrame(rows)


def verdict(final: pd.DataFrame) -> str:
    mean = final[final["market_seed"] == "mean"].iloc[0]
    points, ratio = mean["pcpo_minus_dpo_points"], mean["ctr_ratio_pcpo_dpo"]
    wins = int((final.loc[final["market_seed"] != "mean", "pcpo_minus_dpo_points"] > 0).sum())
    met = points >= TARGET_POINTS and ratio >= COMPARABLE_CTR
    return (f"Target: PCPO's match rate >= DPO's + {TARGET_POINTS:.0f} points after the last round, at comparable "
            f"reward (PCPO's mean true CTR >= {COMPARABLE_CTR:.0%} of DPO's). Measured: PCPO - DPO = "
            f"{points:+.1f} points on average (PCPO ahead on {wins} of {len(final) - 1} seeds), true CTR ratio "
            f"PCPO/DPO {ratio:.3f}. Target {'met' if met else 'not met'}.")


def paired_sentence(paired: pd.DataFrame) -> str:
    """The paired intervals in words, whichever way they point."""
    parts = []
    for row in paired.itertuples(index=False):
        if row.n < 2:
            parts.append(f"{row.pcpo_minus_dpo}: {row.mean:+.4g} (one replicate, no interval)")
            continue
        if row.ci_low > 0:
            side = "PCPO higher"
        elif row.ci_high < 0:
            side = "DPO higher"
        else:
            side = "the interval includes 0"
        parts.append(f"{row.pcpo_minus_dpo}: {row.mean:+.4g} [{row.ci_low:+.4g}, {row.ci_high:+.4g}] ({side}; "
                     f"PCPO ahead on {row.pcpo_ahead}, DPO on {row.dpo_ahead} of {row.n})")
    return "PCPO - DPO after the last round, mean [95% paired t-interval]: " + "; ".join(parts) + "."


def relevance_knowledge(market: Market, truth: GroundTruth, judge: PairwiseJudge, scorer: TruthScorer,
                        structured: bool = True) -> dict:
    """How much of the true product-background relevance the logs reveal, over the market's own backgrounds.

    - judge: per product, Spearman between the judge's predicted CTR of each background (on the product's
      best combination) and the background's true relevance to the product; mean over products;
    - true CTR: the same with the truth's CTR of those renders in place of the judge (how much relevance
      moves CTR at all);
    - structured reference (``structured`` only: the legacy world): the click model told the simulator's
      functional form (category x background indicators among its features; ``structured_reference.py``)
      fitted on all the logs; correlation of its category x background coefficients with the true relevance.
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
    out = {
        "backgrounds": len(backgrounds),
        "judge_spearman_with_relevance": float(np.nanmean(judge_rho)),
        "true_ctr_spearman_with_relevance": float(np.nanmean(ctr_rho)),
        "match_of_judge_top3": float(np.mean(top_match)),
    }
    if not structured:
        return out
    reference = fit_selected(truth, click_log(market))
    cells = reference.relevance_coefficients()
    by_category = {c: p for p, c in truth.model.product_category.items()}
    prompt = market.elements.set_index("element_id")["value"]
    true = np.array([truth.background_relevance(by_category[c], prompt[b])
                     for c, b in zip(cells["category"], cells["background"])])
    return {
        **out,
        "reference_cells": len(cells),
        "reference_corr_with_relevance": float(np.corrcoef(cells["coefficient"], true)[0, 1]),
        "reference_sign_agreement": float(np.mean((cells["coefficient"].to_numpy() > 0) == (true > 0))),
    }


def replicates(args: argparse.Namespace) -> list[tuple[int, list[int]]]:
    """(market seed, its training seeds): one market for all of ``--seeds``, or one per seed (``--market-seeds``)."""
    if args.market_seeds is None:
        return [(args.market_seed, list(args.seeds))]
    if len(args.market_seeds) != len(args.seeds):
        raise SystemExit(f"--market-seeds pairs each market seed with one training seed: got "
                         f"{len(args.market_seeds)} market seeds and {len(args.seeds)} training seeds")
    return [(m, [s]) for m, s in zip(args.market_seeds, args.seeds)]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default=LEGACY, choices=WORLDS,
                        help="simulated world (legacy: random relevance; semantic: scenes the words name)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--market-seed", type=int, default=7, help="the one market of every training seed")
    parser.add_argument("--market-seeds", type=int, nargs="+", default=None,
                        help="one market per training seed, paired in order with --seeds (replaces --market-seed)")
    parser.add_argument("--products", type=int, default=40)
    parser.add_argument("--impressions", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=8, help="prompts drawn per product to measure a policy")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "adcraft-bench" / "backgrounds")
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"))
    return parser.parse_args(argv)


def run(args: argparse.Namespace, config: BackgroundsConfig | None = None) -> str:
    """Run the benchmark, write its section to ``args.results`` and return the section's text."""
    config = config or BackgroundsConfig()
    os.environ.setdefault("ADCRAFT_CACHE_DIR", str(args.workdir / "cache"))
    began = time.perf_counter()
    world, structured = args.world, args.world == LEGACY
    pairs = replicates(args)
    rows, markets, sft_seconds = [], [], []
    timings = {"simulate (0 when reused)": 0.0, "pairwise judge training (0 when reused)": 0.0}
    for market_seed, seeds in pairs:
        started = time.perf_counter()
        market, truth = simulated(market_seed, args.workdir, args.products, args.impressions, world)
        timings["simulate (0 when reused)"] += time.perf_counter() - started
        tag = "" if structured else f"{world}-"
        reward_dir = args.workdir / f"pairwise-{tag}{market_seed}-{args.products}-{args.impressions}"
        reward_model, seconds = pairwise_reward_model(market, reward_dir, config)
        timings["pairwise judge training (0 when reused)"] += seconds
        judge, baseline = build_judge(market, reward_model, config)
        judge_note = (f"held-out pair accuracy {reward_model.valid_accuracy or float('nan'):.3f} "
                      f"({reward_model.n_train_pairs} training, {reward_model.n_valid_pairs} held-out pairs)")
        print(f"market {market_seed}: pairwise judge {judge_note}", flush=True)
        scorer = TruthScorer(truth, judge)
        products = list(baseline)
        current = scorer.score(products, [baseline[p] for p in products])
        print(f"current backgrounds: match {current['match']:.3f}, true CTR {current['true_ctr']:.5f}", flush=True)
        knowledge = relevance_knowledge(market, truth, judge, scorer, structured=structured)
        print(f"relevance knowledge: {knowledge}", flush=True)
        markets.append({"market_seed": str(market_seed), "judge_valid_accuracy": reward_model.valid_accuracy,
                        "judge_train_pairs": reward_model.n_train_pairs,
                        "judge_valid_pairs": reward_model.n_valid_pairs, "current_match": current["match"],
                        "current_true_ctr": current["true_ctr"], **knowledge, "judge_note": judge_note})
        for seed in seeds:
            started = time.perf_counter()
            reference = PromptTrainer(replace(config.prompt, seed=seed)).fit(market)
            sft_seconds.append(time.perf_counter() - started)
            masker = PhotoMasker(market, reference)
            for method in METHODS:
                measured = run_method(method, seed, args.rounds, reference, judge, baseline, masker, scorer,
                                      args.samples)
                rows += [{"market_seed": market_seed, **r} for r in measured]
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
    paired = paired_statistics(final)
    per_round = rounds.drop(columns=["round_s"])
    market_table = pd.DataFrame(markets).drop(columns="judge_note")
    title = section_title(world)
    if args.market_seeds is None:
        design = (f"Market seed {args.market_seed}: {args.products} products, {args.impressions} impressions "
                  f"(`SimulatorConfig(world={world!r})` defaults otherwise); training seeds {args.seeds}")
    else:
        design = (f"{len(pairs)} replicates, each its own market: (market seed, training seed) "
                  f"{[(m, s[0]) for m, s in pairs]}; {args.products} products, {args.impressions} impressions "
                  f"per market (`SimulatorConfig(world={world!r})` defaults otherwise)")
    if len(markets) == 1:
        judge_text = [f"Pairwise judge: {markets[0]['judge_note']}.", "",
                      f"Reference, the current backgrounds: match {markets[0]['current_match']:.4f}, "
                      f"true CTR {markets[0]['current_true_ctr']:.5f}."]
    else:
        judge_text = ["Per market, the pairwise judge (held-out pair accuracy, pairs) and the current "
                      "backgrounds (those of the best combinations) scored as the policies are: "
                      "`current_match`, `current_true_ctr`; the other columns are described in the next part."]
    knowledge_text = ("Per product, every background of the market drawn on the product's best combination: "
                      "Spearman of the judge's predicted CTR, and of the true CTR, with the true relevance (mean "
                      "over products); the true match rate of the judge's top 3.")
    if structured:
        knowledge_text += (" `reference`: a click model told the simulator's functional form, category x background "
                           "indicators included (`bench/structured_reference.py`), fitted on all the logs: "
                           "correlation and sign agreement of its category x background coefficients with the "
                           "true relevance.")
    else:
        knowledge_text += (" The structured reference of the legacy section (`bench/structured_reference.py`) is "
                           f"not measured here: it knows only the legacy world's functional form, not the {world} "
                           "world's.")
    text = "\n".join([
        title,
        "",
        f"{design}; {args.rounds} rounds; {args.samples} prompts drawn per product at temperature 1 to measure "
        "each policy. Library defaults (`BackgroundsConfig()`) for the prompt model, the rounds and the pairwise "
        "judge; nothing tuned here.",
        "",
        *judge_text,
        "",
        "`match`: share of drawn prompts with a positive true product-background relevance; `true_ctr`: mean "
        "true CTR of the drawn prompts rendered on the product's current best combination; `chosen_reward`: "
        "the judge's mean P(the round's chosen prompt beats the current background). Round 0 is the "
        "supervised model, the same for both methods of a seed (no chosen prompts: `nan`).",
        "",
        "### What the logs reveal of product-background relevance (the market's own backgrounds)",
        "",
        knowledge_text,
        "",
        markdown_table(market_table if len(markets) > 1 else pd.DataFrame([
            {k: v for k, v in markets[0].items() if k not in ("market_seed", "judge_note", "judge_valid_accuracy",
                                                               "judge_train_pairs", "judge_valid_pairs",
                                                               "current_match", "current_true_ctr")}])),
        "",
        "### Mean over seeds, by round",
        "",
        markdown_table(by_round),
        "",
        "### After the last round",
        "",
        markdown_table(final),
        "",
        verdict(final),
        "",
        "### PCPO - DPO, paired by seed",
        "",
        "Per replicate d = PCPO - DPO after the last round; mean over the n replicates with the 95% paired "
        "t-interval mean +- t(0.975, n-1) sd(d) / sqrt(n)."
        + (" One market: the interval covers the training seeds' noise, not the market's." if len(markets) == 1
           else ""),
        "",
        markdown_table(paired),
        "",
        paired_sentence(paired),
        "",
        "### Every seed and round",
        "",
        markdown_table(per_round),
        "",
        "### Timings (s, 2-core CPU)",
        "",
        "The judge keeps the image features of every (product, prompt) it rendered, across runs: the first "
        "rounds pay for most renders. Simulation and judge training are summed over markets; `total` includes "
        "measuring every policy against the truth.",
        "",
        markdown_table(pd.DataFrame([timings]), digits=1),
        "",
    ])
    print(text)
    write_section(args.results, title, text)
    return text


def main() -> None:
    run(parse_args())


if __name__ == "__main__":
    main()
