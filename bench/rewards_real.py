"""Reward models on real data: AES creative CTRs, VISUELLE 12-week sales and Open Bandit Dataset clicks.

    python bench/rewards_real.py [--data ../shared/data] [--seeds 0 1 2] [--workdir out/bench-real]
                                 [--impressions 120000] [--results docs/results.md]

Three benchmarks on the shared real-data bundle (its README gives every file's provenance); prints a
message and exits 0 when the data folder is absent.

- AES (real online CTRs of 200 composited banners, one ad): clicks are drawn from the real CTRs on
  impressions spread uniformly over the creatives and 14 days; MIL (three poolings and the per-element
  baseline) and the point-wise CTR model are trained on the first 80% of the impressions (by time)
  and scored by the Spearman of their predicted CTRs with the real ones, the Spearman of their element
  effects with the real CTR's additive element effects, and the log loss on the latest 20%.
- VISUELLE (551 fast-fashion cut-outs with 12-week sales): the demand utility h(v) of log1p(sales) on
  visual attributes and EfficientNet-Lite0 uniqueness within the category, in sample (``summary()``)
  and 5-fold cross-validated against the linear-only fit.
- OBD (ZOZOTOWN, random and Bernoulli-TS logs, 80 items x 3 positions): the CTR model (context:
  user features and position) against position-only and item-only baselines, AUC on the latest 20%
  of impressions with a bootstrap interval (about 8 held-out clicks per file).

Tables go to the section "## Reward models on real data (bench/rewards_real.py)" of --results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from intervals import t_half_width
from markdown import markdown_table, write_section
from PIL import Image
from real_markets import AESMarket, aes_market, obd_market

from adcraft.learning.metrics import auc, click_metrics, spearman
from adcraft.features.attributes import compute_attributes, uniqueness
from adcraft.features.cache import FeatureCache, encode_image_files
from adcraft.features.image_encoder import build_image_encoder
from adcraft.market import Market
from adcraft.rewards.ctr import CTRConfig, CTRTrainer
from adcraft.market.click_log import click_log
from adcraft.rewards.encoding import EncodingConfig
from adcraft.rewards.mil import MILConfig, MILTrainer
from adcraft.learning.training import TrainConfig
from adcraft.rewards.utility import UtilityConfig, fit_utility, one_hot_controls

SECTION = "## Reward models on real data (bench/rewards_real.py)"
HELD_OUT = 0.2  # the latest share of impressions every click model is scored on
TEXT_BACKBONE = "tiny"  # AES elements are codes and OBD titles are "item <id>": no words worth MiniLM
VISUELLE_ATTRIBUTES = ("brightness", "colourfulness", "symmetry", "product_area", "clutter", "uniqueness")
CV_FOLDS = 5
BOOTSTRAP_DRAWS = 200


# ---------------------------------------------------------------- shared


def hold_out_latest(market: Market, fraction: float = HELD_OUT) -> tuple[Market, pd.DataFrame]:
    """(market with only the earlier impressions, click log of the latest ``fraction`` of impressions).

    The cut is at an impression time, not a day: the trainers' own early-stopping split then lies
    inside the training part, and no model sees a held-out impression, even for early stopping.
    """
    impressions = market.impressions
    ts = np.sort(impressions["ts"].to_numpy())
    cutoff = ts[int(len(ts) * (1.0 - fraction))]
    late = (impressions["ts"] >= cutoff).to_numpy()
    train = replace(market, impressions=impressions[~late].reset_index(drop=True), creative_stats=None)
    test = replace(market, impressions=impressions[late].reset_index(drop=True), creative_stats=None)
    return train, click_log(test)


def predict_rows(model, log: pd.DataFrame) -> np.ndarray:
    """A click model's CTR for each row of a click log (its product, combination and context)."""
    return model.predict(log["product_id"].tolist(), log["elements"].tolist(), log["context"].tolist())


# ---------------------------------------------------------------- AES


def identified_effects(effects: pd.Series, slot_of: dict[str, str], parent_of: dict[str, str]) -> pd.Series:
    """Element effects in the one parameterisation a full-factorial click log identifies.

    An additive model ``μ + Σ_s a[e_s]`` is unchanged by a constant moved between slots, and, for a
    slot nested in another (AES text colours exist per background), by a constant moved from a
    parent element to all its children. So: each nested element gives its group's mean to its parent
    (children centred within the parent), then every slot is centred to mean zero.
    """
    out = effects.astype(float).copy()
    children: dict[str, list[str]] = {}
    for child, parent in parent_of.items():
        if child in out.index and parent in out.index:
            children.setdefault(parent, []).append(child)
    for parent, group in children.items():
        mean = out[group].mean()
        out[group] -= mean
        out[parent] += mean
    slots = pd.Series({e: slot_of[e] for e in out.index})
    return out - out.groupby(slots).transform("mean")


def additive_projection(combos: list[list[str]], target: np.ndarray) -> tuple[pd.Series, float, np.ndarray]:
    """Least-squares fit ``target ≈ μ + Σ_s a[e_s]`` on one-hot elements: (a by element, R², fitted values).

    The one-hot groups are collinear with the intercept (and nested slots with their parent), so the
    minimum-norm solution is taken; ``identified_effects`` then removes what the fit cannot tell apart.
    """
    elements = sorted({e for combo in combos for e in combo})
    column = {e: j + 1 for j, e in enumerate(elements)}
    design = np.zeros((len(combos), len(elements) + 1))
    design[:, 0] = 1.0
    for row, combo in enumerate(combos):
        for element in combo:
            design[row, column[element]] = 1.0
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    r2 = 1.0 - float(residual @ residual) / float(np.sum((target - target.mean()) ** 2))
    return pd.Series(coef[1:], index=elements), r2, design @ coef


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def aes_variants(seed: int) -> dict[str, tuple[str, object]]:
    """The click models trained on AES: name -> (trainer kind, config)."""
    encoding = EncodingConfig(text_backbone=TEXT_BACKBONE, image_backbone="none")
    mil_train = replace(MILConfig().train, seed=seed)
    variants: dict[str, tuple[str, object]] = {
        f"mil-{pooling}": ("mil", MILConfig(encoding=encoding, pooling=pooling, train=mil_train))
        for pooling in ("sum", "attention", "noisy_or")
    }
    variants["mil-per-element"] = ("mil", MILConfig.per_element(encoding=encoding, train=mil_train))
    variants["ctr"] = ("ctr", CTRConfig(encoding=encoding, train=TrainConfig(seed=seed)))
    return variants


AES_COLUMNS = ["seed", "model", "ctr_spearman", "effects_spearman", "projected_effects_spearman",
               "test_log_loss", "gain_vs_base_x1e4", "train_s"]


def aes_seed_rows(aes: AESMarket, seed: int, facts: dict) -> list[dict]:
    """Reference rows and one row per trained model for one seed's simulated AES log."""
    market = aes.market
    creatives = market.creatives
    combos = [list(c) for c in creatives["elements"]]
    products = creatives["product_id"].tolist()
    real = aes.real_ctr.reindex(creatives["creative_id"]).to_numpy()
    slot_of = dict(zip(market.elements["element_id"], market.elements["slot"]))
    raw_truth, additive_r2, additive_logit = additive_projection(combos, logit(real))
    truth = identified_effects(raw_truth, slot_of, aes.colour_background)
    train, test = hold_out_latest(market)
    train_log = click_log(train)
    facts["additive_r2"] = additive_r2
    facts.setdefault("train_clicks", []).append(int(train_log["clicks"].sum()))
    facts.setdefault("test_impressions", []).append(int(test["trials"].sum()))

    def effects_rho(effects: pd.Series) -> float:
        learned = identified_effects(effects, slot_of, aes.colour_background)
        return spearman(learned[truth.index], truth)

    def projected_rho(ctr: np.ndarray) -> float:
        return effects_rho(additive_projection(combos, logit(ctr))[0])

    def test_loss(probs: np.ndarray) -> float:
        return click_metrics(test["clicks"], test["trials"], probs)["log_loss"]

    base_rate = train_log["clicks"].sum() / train_log["trials"].sum()
    base_loss = test_loss(np.full(len(test), base_rate))
    counts = train_log.groupby("creative_id")[["clicks", "trials"]].sum().reindex(creatives["creative_id"])
    references = {
        "ref: real CTR": real,
        "ref: additive part of real CTR": 1.0 / (1.0 + np.exp(-additive_logit)),
        "ref: observed CTR": ((counts["clicks"] + 2.0) / (counts["trials"] + 2.0 / base_rate)).to_numpy(),
        "ref: base rate": np.full(len(real), base_rate),
    }
    rows = []
    for name, ctr in references.items():
        constant = name == "ref: base rate"
        by_row = pd.Series(ctr, index=creatives["creative_id"]).reindex(test["creative_id"]).to_numpy()
        loss = test_loss(by_row)
        rows.append({"seed": seed, "model": name, "effects_spearman": np.nan, "train_s": 0.0,
                     "ctr_spearman": np.nan if constant else spearman(ctr, real),
                     "projected_effects_spearman": np.nan if constant else projected_rho(ctr),
                     "test_log_loss": loss, "gain_vs_base_x1e4": (base_loss - loss) * 1e4})
    for name, (kind, config) in aes_variants(seed).items():
        started = time.perf_counter()
        model = (MILTrainer(config) if kind == "mil" else CTRTrainer(config)).fit(train)
        elapsed = time.perf_counter() - started
        predicted = model.predict(products, combos)
        loss = test_loss(predict_rows(model, test))
        rows.append(
            {
                "seed": seed,
                "model": name,
                "ctr_spearman": spearman(predicted, real),
                "effects_spearman": effects_rho(model.element_effects()) if kind == "mil" else np.nan,
                "projected_effects_spearman": projected_rho(predicted),
                "test_log_loss": loss,
                "gain_vs_base_x1e4": (base_loss - loss) * 1e4,
                "train_s": elapsed,
            }
        )
        print(f"  aes seed {seed} {name}: ctr rho {rows[-1]['ctr_spearman']:.3f}, "
              f"trained in {elapsed:.1f}s", flush=True)
    return rows


def bench_aes(data: Path, workdir: Path, seeds: list[int], n_impressions: int) -> tuple[pd.DataFrame, dict]:
    rows: list[dict] = []
    facts: dict = {}
    for seed in seeds:
        rows += aes_seed_rows(aes_market(data, workdir, n_impressions, seed), seed, facts)
    return pd.DataFrame(rows)[AES_COLUMNS], facts


# ---------------------------------------------------------------- VISUELLE


def white_page(path: Path) -> Image.Image:
    """A palette cut-out (RGBA, transparent background) composited onto white, as RGB."""
    rgba = Image.open(path).convert("RGBA")
    page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(page, rgba).convert("RGB")


def square_page(page: Image.Image) -> Image.Image:
    """The page padded with white to a square, so the encoder's centre crop keeps the whole garment."""
    side = max(page.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(page, ((side - page.width) // 2, (side - page.height) // 2))
    return square


def visuelle_table(data: Path, workdir: Path) -> pd.DataFrame:
    """One row per product: category, season, log1p(total12) and the six visual attributes."""
    products = pd.read_csv(data / "visuelle" / "products.csv")
    pages_dir = workdir / "visuelle-pages"
    pages_dir.mkdir(parents=True, exist_ok=True)
    records, square_paths = [], []
    for pid, category, season, total, image in zip(
        products["product_id"], products["category"], products["season"], products["total12"], products["image"]
    ):
        page = white_page(data / "visuelle" / image)
        square = pages_dir / f"{pid}.png"
        if not square.is_file():
            square_page(page).save(square)
        square_paths.append(square)
        attributes = compute_attributes(page)
        records.append({"product_id": pid, "category": category, "season": season,
                        "log_demand": float(np.log1p(total)), **attributes})
    table = pd.DataFrame(records)
    features = encode_image_files(build_image_encoder(), square_paths, FeatureCache(workdir / "cache"))
    table["uniqueness"] = uniqueness(features, table["category"].tolist())
    return table


def _design(x: np.ndarray, squares: bool) -> np.ndarray:
    columns = [np.ones(len(x))]
    for k in range(x.shape[1]):
        columns += [x[:, k], x[:, k] ** 2] if squares else [x[:, k]]
    return np.column_stack(columns)


def cv_r2(table: pd.DataFrame, seed: int, squares: bool | None, controls: bool) -> float:
    """Out-of-sample R² of least squares over ``CV_FOLDS`` shuffled folds: 1 − Σ SSE_test / Σ (y − ȳ)².

    ``squares``: None leaves the attributes out, False linear terms, True linear and square terms
    (attributes standardised on each training fold). ``controls``: one-hot category and season.
    Rank-deficient designs (a category absent from a training fold) take the minimum-norm solution.
    """
    y = table["log_demand"].to_numpy()
    x = table[list(VISUELLE_ATTRIBUTES)].to_numpy(dtype=float)
    dummies = one_hot_controls([table["category"].tolist(), table["season"].tolist()])
    folds = np.random.default_rng(seed).permutation(len(y)) % CV_FOLDS
    sse = 0.0
    for fold in range(CV_FOLDS):
        fit, test = folds != fold, folds == fold
        mean, scale = x[fit].mean(axis=0), x[fit].std(axis=0)
        z = (x - mean) / scale
        design = _design(z, squares) if squares is not None else np.ones((len(y), 1))
        if controls:
            design = np.hstack([design, dummies])
        coef, *_ = np.linalg.lstsq(design[fit], y[fit], rcond=None)
        sse += float(np.sum((y[test] - design[test] @ coef) ** 2))
    return 1.0 - sse / float(np.sum((y - y.mean()) ** 2))


def bench_visuelle(data: Path, workdir: Path, seeds: list[int]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    table = visuelle_table(data, workdir)
    config = UtilityConfig(attributes=VISUELLE_ATTRIBUTES, target="log_demand")
    model = fit_utility(table, "log_demand", config)
    summary = model.summary().reset_index()
    summary = summary[["attribute", "b1", "b1_se", "b2", "b2_se", "b2_t", "peak", "peak_se",
                       "observed_min", "observed_max", "inverse_u"]]
    fits = {
        "intercept only": (None, False),
        "linear": (False, False),
        "quadratic (h(v))": (True, False),
        "category + season": (None, True),
        "category + season + linear": (False, True),
        "category + season + quadratic": (True, True),
    }
    cv_rows = []
    for name, (squares, controls) in fits.items():
        scores = [cv_r2(table, seed, squares, controls) for seed in seeds]
        cv_rows.append({"fit": name, "cv_r2_mean": float(np.mean(scores)), "cv_r2_min": float(np.min(scores)),
                        "cv_r2_max": float(np.max(scores))})
    with_controls = fit_utility(
        table, "log_demand", config, controls=one_hot_controls([table["category"].tolist(), table["season"].tolist()])
    )
    facts = {
        "n_rows": model.n_rows,
        "r2": model.r2,
        "adj_r2": model.adj_r2,
        "r2_linear": model.r2_linear,
        "r2_controls": with_controls.r2,
        "r2_controls_linear": with_controls.r2_linear,
        "inverse_u_controls": [a for a, u in with_controls.summary()["inverse_u"].items() if u],
        "demand_sd": float(table["log_demand"].std()),
    }
    return summary, pd.DataFrame(cv_rows), facts


# ---------------------------------------------------------------- OBD


def positions(log: pd.DataFrame) -> np.ndarray:
    """The page position of each click-log row (click_log puts it into the context JSON)."""
    return np.array([json.loads(c)["position"] for c in log["context"]], dtype=int)


def bootstrap_auc(test: pd.DataFrame, scores: dict[str, np.ndarray], seed: int) -> pd.DataFrame:
    """Percentile 95% intervals of each model's AUC over ``BOOTSTRAP_DRAWS`` resamples of the held-out
    impressions (the same resamples for every model); a resample without a click is skipped."""
    trials = test["trials"].to_numpy(dtype=int)
    clicks = test["clicks"].to_numpy(dtype=int)
    row = np.concatenate([np.repeat(np.arange(len(test)), clicks), np.repeat(np.arange(len(test)), trials - clicks)])
    label = np.concatenate([np.ones(clicks.sum()), np.zeros((trials - clicks).sum())])
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in scores}
    for _ in range(BOOTSTRAP_DRAWS):
        weight = np.bincount(rng.integers(0, len(label), len(label)), minlength=len(label)).astype(float)
        if weight[label == 1].sum() == 0:
            continue
        for name, score in scores.items():
            draws[name].append(auc(label, score[row], weight))
    return pd.DataFrame(
        {
            "model": list(draws),
            "auc_ci_low": [float(np.percentile(d, 2.5)) for d in draws.values()],
            "auc_ci_high": [float(np.percentile(d, 97.5)) for d in draws.values()],
            "draws": [len(d) for d in draws.values()],
        }
    )


def bench_obd(data: Path, workdir: Path, seeds: list[int]) -> pd.DataFrame:
    rows = []
    for policy in ("random", "bts"):
        market = obd_market(data, workdir, policy)
        train, test = hold_out_latest(market)
        train_log = click_log(train)
        rate = train_log["clicks"].sum() / train_log["trials"].sum()
        by_position = train_log.assign(position=positions(train_log)).groupby("position")[["clicks", "trials"]].sum()
        position_ctr = (by_position["clicks"] / by_position["trials"]).to_dict()
        by_item = train_log.groupby("product_id")[["clicks", "trials"]].sum()
        item_ctr = ((by_item["clicks"] + 2.0) / (by_item["trials"] + 2.0 / rate)).to_dict()
        scores = {
            "position-only": np.array([position_ctr.get(p, rate) for p in positions(test)]),
            "item-only (smoothed)": np.array([item_ctr.get(p, rate) for p in test["product_id"]]),
        }
        for seed in seeds:
            config = CTRConfig(encoding=EncodingConfig(text_backbone=TEXT_BACKBONE, image_backbone="none"),
                               train=TrainConfig(seed=seed))
            started = time.perf_counter()
            model = CTRTrainer(config).fit(train)
            print(f"  obd {policy} seed {seed}: CTR model trained in {time.perf_counter() - started:.1f}s", flush=True)
            scores[f"ctr (seed {seed})"] = predict_rows(model, test)
        intervals = bootstrap_auc(test, scores, seeds[0]).set_index("model")
        for name, probs in scores.items():
            metrics = click_metrics(test["clicks"], test["trials"], probs)
            rows.append(
                {
                    "log": policy,
                    "model": name,
                    "train_clicks": int(train_log["clicks"].sum()),
                    "test_impressions": int(metrics["impressions"]),
                    "test_clicks": int(metrics["clicks"]),
                    "auc": metrics["auc"],
                    "auc_ci_low": intervals.at[name, "auc_ci_low"],
                    "auc_ci_high": intervals.at[name, "auc_ci_high"],
                    "log_loss": metrics["log_loss"],
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- report

PAIRED_BASE = "mil-per-element"  # GenCO's ablation: the multi-instance models against the per-element one
PAIRED_MEASURES = ("ctr_spearman", "projected_effects_spearman", "gain_vs_base_x1e4")


def paired_against(aes: pd.DataFrame, base: str = PAIRED_BASE) -> pd.DataFrame:
    """Per model (reference rows aside), model minus ``base`` on each seed's market, on ``PAIRED_MEASURES``:
    the mean over seeds with a 95% paired t-interval (t with seeds - 1 degrees of freedom)."""
    models = aes[~aes["model"].str.startswith("ref:")]
    mine = models[models["model"] == base].set_index("seed")
    rows = []
    for model, group in models[models["model"] != base].groupby("model", sort=False):
        row = {"model": f"{model} - {base}", "seeds": len(group)}
        for measure in PAIRED_MEASURES:
            diff = (group.set_index("seed")[measure] - mine[measure]).dropna().to_numpy(dtype=float)
            if len(diff) < 2:
                row[measure] = f"{diff.mean():+.3f}" if len(diff) else "n/a"
                continue
            half = t_half_width(diff)
            row[measure] = f"{diff.mean():+.3f} [{diff.mean() - half:+.3f}, {diff.mean() + half:+.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def report(args: argparse.Namespace, aes: pd.DataFrame, aes_facts: dict, summary: pd.DataFrame,
           cv: pd.DataFrame, vis: dict, obd: pd.DataFrame, timings: dict[str, float]) -> str:
    measures = ["ctr_spearman", "effects_spearman", "projected_effects_spearman", "test_log_loss", "gain_vs_base_x1e4"]
    means = aes.groupby("model", sort=False)[measures].mean().reset_index()
    lines = [
        SECTION,
        "",
        (f"Data: `{args.data}` (provenance and caveats in its README). Seeds {args.seeds}; text backbone "
         f"`{TEXT_BACKBONE}` (AES elements are codes, OBD titles are \"item <id>\"), no image features; "
         f"every click model is trained on the earliest {1 - HELD_OUT:.0%} of impressions and scored on the "
         f"latest {HELD_OUT:.0%} (cut at an impression time; early stopping uses a split inside the training part)."),
        "",
        "### AES: 200 composited banners with real online CTRs (one ad)",
        "",
        (f"Clicks are drawn (Bernoulli) from the real CTRs on {args.impressions:,} impressions per seed, spread "
         "uniformly over the 200 creatives (propensity 1/200) and 14 days; training clicks per seed: "
         f"{aes_facts['train_clicks']}, held-out impressions {aes_facts['test_impressions']}. Slots background, "
         "picture_size, text_color (nested in background), font; colour and font values are placeholders "
         "(undocumented codes). `ctr_spearman`: predicted vs real CTR of the 200 creatives. Element effects are "
         "compared with the additive projection of logit(real CTR) on one-hot elements (least squares, R² "
         f"{aes_facts['additive_r2']:.3f}: that share of the real CTR's variation is additive), expressed in the "
         "identified parameterisation (text colours centred within their background, whose mean moves to the "
         "background; every slot centred): `effects_spearman` uses MIL's `element_effects()`, "
         "`projected_effects_spearman` the same projection of each model's predicted logits (any model). "
         "`gain_vs_base_x1e4`: held-out log loss below the training base rate's, in 1e-4 nats per impression "
         "(positive is better). Reference rows: the real CTR itself (the attainable floor of the log loss), its "
         "additive part (the fitted projection: the best any purely additive element model can do), the observed "
         "CTR of each creative in the training part (smoothed with two pseudo-clicks at the base rate) and the "
         "training part's base rate."),
        "",
        markdown_table(aes),
        "",
        "Mean over seeds:",
        "",
        markdown_table(means),
        "",
        (f"Paired by seed, each model minus the per-element model (`{PAIRED_BASE}`: one effect per element, no "
         "product, context or interactions), the multi-instance against per-element ablation on real CTRs; mean "
         "over seeds and a 95% paired t-interval:"),
        "",
        markdown_table(paired_against(aes)),
        "",
        "### VISUELLE: demand utility h(v) of log1p(12-week sales) on visual attributes",
        "",
        (f"{vis['n_rows']} products; attributes from `compute_attributes` on each cut-out composited on white; "
         "`uniqueness` = 1 − mean cosine to the other products of the same category, on EfficientNet-Lite0 "
         "features of the white page padded to a square. In sample: R² "
         f"{vis['r2']:.3f} (adjusted {vis['adj_r2']:.3f}) vs linear-only {vis['r2_linear']:.3f}; sd of the "
         f"target {vis['demand_sd']:.3f}. With one-hot category and season controls: R² {vis['r2_controls']:.3f} "
         f"vs {vis['r2_controls_linear']:.3f} linear-only; attributes with an inverse U there: "
         f"{', '.join(vis['inverse_u_controls']) or 'none'}."),
        "",
        markdown_table(summary),
        "",
        (f"{CV_FOLDS}-fold cross-validated R² (pooled out-of-fold SSE against the overall mean; one shuffle per "
         "seed, mean and range over seeds):"),
        "",
        markdown_table(cv),
        "",
        "### OBD: ZOZOTOWN clicks, 80 items x 3 positions (random and Bernoulli-TS logs)",
        "",
        ("The CTR model's context holds the four user features and the position; baselines from the training "
         "part: observed CTR per position, and per item smoothed with two pseudo-clicks at the base rate. AUC "
         "on the held-out impressions with a percentile 95% interval over "
         f"{BOOTSTRAP_DRAWS} bootstrap resamples of those impressions (seed {args.seeds[0]}, the same "
         "resamples for every model). With so few held-out clicks the intervals are wide: read them before "
         "the point estimates."),
        "",
        markdown_table(obd),
        "",
        "### Timings (s)",
        "",
        markdown_table(pd.DataFrame([timings]), digits=1),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", type=Path, default=Path("out/bench-real"))
    parser.add_argument("--impressions", type=int, default=120_000)
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args()
    needed = ["aes/ctr_online.csv", "visuelle/products.csv", "obd/random_all.csv.gz", "obd/bts_all.csv.gz"]
    missing = [n for n in needed if not (args.data / n).is_file()]
    if missing:
        print(f"skipping the real-data benchmarks: {args.data} lacks {', '.join(missing)} "
              "(point --data at the shared data bundle)")
        sys.exit(0)
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ADCRAFT_CACHE_DIR", str(args.workdir / "cache"))
    print(f"seeds {args.seeds}; AES impressions {args.impressions:,}; held out: latest {HELD_OUT:.0%}; "
          f"text backbone {TEXT_BACKBONE}; workdir {args.workdir}", flush=True)

    timings = {}
    started = time.perf_counter()
    aes, aes_facts = bench_aes(args.data, args.workdir, args.seeds, args.impressions)
    timings["aes"] = time.perf_counter() - started
    print(aes.to_string(index=False), flush=True)
    started = time.perf_counter()
    summary, cv, vis = bench_visuelle(args.data, args.workdir, args.seeds)
    timings["visuelle"] = time.perf_counter() - started
    print(summary.to_string(index=False), cv.to_string(index=False), sep="\n", flush=True)
    started = time.perf_counter()
    obd = bench_obd(args.data, args.workdir, args.seeds)
    timings["obd"] = time.perf_counter() - started
    print(obd.to_string(index=False), flush=True)

    text = report(args, aes, aes_facts, summary, cv, vis, obd, timings)
    print(text)
    write_section(args.results, SECTION, text)


if __name__ == "__main__":
    main()
