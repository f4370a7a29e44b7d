"""``OUT/report.html`` of ``adcraft optimize``: per product, the best logged creative beside the proposals."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from adcraft.atomic import write_png
from adcraft.evaluate.evidence import Evidence
from adcraft.evaluate.gallery import Card, Section
from adcraft.evaluate.proposal_value import ProposalValue
from adcraft.evaluate.report import (
    ReportSummary,
    bar_chart_svg,
    calibration_png,
    histogram_svg,
    html_table,
    write_report,
)
from adcraft.generate.combo import ComboHistory
from adcraft.market import Market
from adcraft.market.outputs import kept_products
from adcraft.render.compositor import Placement
from adcraft.render.from_market import MarketRenderer
from adcraft.rewards.mil import MILModel

ATTRIBUTION_LINES = 3
BACKTEST_PLOT = "backtest.png"


def build_report(
    staging: Path,
    market: Market,
    proposals: pd.DataFrame,
    logged: pd.DataFrame,
    model: MILModel,
    value: ProposalValue | None,
    notes: list[str],
    history: ComboHistory,
    logged_images: dict[str, str],
    evidence: Evidence | None = None,
) -> Path:
    """Write ``report.html`` into ``staging``; ``value`` is the off-policy estimate of the proposals (None when
    none was possible), ``logged_images`` from :func:`copy_logged_images`.

    With ``evidence`` (``evaluate.evidence``) the page leads with the lower bound of the cross-fitted lift over
    what runs now, per product too, and shows the judge's backtest (``backtest.png``: predicted against observed
    CTR of held-out logged creatives, the diagonal and the fitted calibration line)."""
    launched = proposals[~proposals["product_id"].isin(kept_products(proposals))]  # kept rows are not proposals
    top = launched[launched["rank"] == 1].set_index("product_id")
    shared = top.index.intersection(logged.index)
    predicted_lift = top.loc[shared, "predicted_ctr"] / logged.loc[shared, "predicted_ctr"] - 1.0
    lift_rows = evidence.products.set_index("product_id") if evidence is not None else None  # per product
    level = f"{evidence.lift.level:.0%}" if evidence is not None else ""
    sections = []
    for pid, row in market.products.set_index("product_id").iterrows():
        cards = []
        if pid in logged.index:
            best = logged.loc[pid]
            cards.append(Card(
                image=logged_images[pid],
                caption=(
                    f"best logged: {best['creative_id']}",
                    f"logged CTR {best['ctr']:.2%} ({int(best['clicks'])}/{int(best['trials'])})",
                    f"predicted CTR {best['predicted_ctr']:.2%}",
                ),
                badge="now",
            ))
        mine = proposals[proposals["product_id"] == pid].sort_values("rank")
        for _, proposal in mine.iterrows():
            if bool(proposal.get("kept", False)):
                caption = ["kept: nothing is launched, what runs now stays (shown: its best logged creative)"]
                if lift_rows is not None and pid in lift_rows.index and math.isfinite(lift_rows.loc[pid, "lift"]):
                    lift = lift_rows.loc[pid]
                    caption.append(f"the best proposal below is not shown better: its lift is at least "
                                   f"{lift['lift_low']:+.1%}, estimate {lift['lift']:+.1%}")
                cards.append(Card(image=proposal["image"], caption=tuple(caption), badge="keep"))
                continue
            caption = [f"predicted CTR {proposal['predicted_ctr']:.2%}"]
            if pid in logged.index:
                caption[0] += (f" ({proposal['predicted_ctr'] / logged.loc[pid, 'predicted_ctr'] - 1:+.1%} vs now, "
                               "by the judge that chose it: not evidence)")
            if proposal["rank"] == 1 and lift_rows is not None and pid in lift_rows.index:
                lift = lift_rows.loc[pid]
                if math.isfinite(lift["lift"]):
                    caption.append(f"lift at least {lift['lift_low']:+.1%} ({level} lower bound), estimate "
                                   f"{lift['lift']:+.1%} [{lift['lift_low']:+.1%}, {lift['lift_high']:+.1%}] "
                                   f"on {int(lift['impressions'])} impressions")
                if not lift["lift_low"] > 0:
                    caption.append("keep the current creative: no lift is assured")
            if "brand_compliant" in proposal:
                caption.append("keeps to the brand" if proposal["brand_compliant"] else
                               f"breaks the brand: {proposal['brand_problems']}")
            placement = Placement.from_row(proposal.to_dict())
            if not placement.is_default:
                caption.append(f"photo at {placement.scale:.0%} of the largest that fits, placed at "
                               f"({placement.x:.2f}, {placement.y:.2f}) of its box (chosen by the demand utility "
                               "of the logged images; no lift above grades it)")
            caption += _attribution_lines(market, model, pid, list(proposal["elements"]),
                                          logged.loc[pid, "elements"] if pid in logged.index else None)
            cards.append(Card(image=proposal["image"], caption=tuple(caption), badge=f"#{int(proposal['rank'])}"))
        sections.append(Section(title=f"{pid} · {row['title']}", subtitle=str(row["category"]), cards=tuple(cards)))
    summary = _summary(market, proposals, logged, predicted_lift, model, value, lift_rows, notes, history)
    if evidence is not None:
        backtest = evidence.backtest
        write_png(staging / BACKTEST_PLOT, calibration_png(
            backtest.points["predicted"], backtest.points["observed"], backtest.points["impressions"],
            "backtest: logged creatives the judge never saw",
            line=(backtest.calibration_intercept, backtest.calibration_slope)))
        summary = _lead_with_evidence(summary, evidence, len(market.products))
    lead = (
        f"{len(market.products)} products, {len(proposals)} proposed creatives. Each row shows the product's best "
        "logged creative (highest observed CTR after shrinkage toward the market's rate) and the proposals, best "
        "first, with the reward model's predicted CTR, the off-policy estimate of the lift of showing proposal #1 "
        "and the elements that changed with their credit (Shapley share of the predicted logit)."
    )
    return write_report(staging / "report.html", "adcraft: proposed creatives", lead, summary, sections)


def copy_logged_images(staging: Path, market: Market, logged: pd.DataFrame) -> dict[str, str]:
    """Copy (or, without an image, render) each product's best logged creative into ``logged/``.

    Returns each product's image path relative to ``staging``.
    """
    folder = staging / "logged"
    folder.mkdir(parents=True, exist_ok=True)
    renderer, out = None, {}
    for k, (pid, row) in enumerate(logged.iterrows()):
        image = row.get("image")
        if isinstance(image, str):
            target = folder / f"{k:05d}{Path(image).suffix.lower()}"
            shutil.copyfile(market.resolve(image), target)
        else:
            renderer = renderer or MarketRenderer(market)
            target = folder / f"{k:05d}.png"
            write_png(target, renderer.render(pid, list(row["elements"])).image)
        out[pid] = f"logged/{target.name}"
    return out


def _attribution_lines(market: Market, model: MILModel, product_id: str, combo: list[str],
                       current: list[str] | None) -> list[str]:
    """The changed elements (all of them without a logged creative) with their credit, largest first."""
    changed = model.changed_credit(product_id, combo, current)
    if not changed:
        return ["same elements as the best logged creative"]
    slots = market.config.slots
    lines = [
        f"{slots[k]}: {_short(market.element_content(e))} ({credit:+.2f})"
        for k, e, credit in changed[:ATTRIBUTION_LINES]
    ]
    if len(changed) > ATTRIBUTION_LINES:
        lines.append(f"+{len(changed) - ATTRIBUTION_LINES} more changed")
    return lines


def _short(text: str, width: int = 34) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _lead_with_evidence(summary: ReportSummary, evidence: Evidence, products: int) -> ReportSummary:
    """``summary`` led by the cross-fitted evidence: the lift's lower bound first, then its estimate and interval,
    the products that keep their creative, the lift had every proposal launched, the backtest and the logged
    support; the launch plan as a note, and where do no harm kept every product while the set of every proposal has
    a lower end above 0, the live test that would confirm the set (``Evidence.proposals_plan``)."""
    lift, backtest, supported = evidence.lift, evidence.backtest, evidence.supported
    level = f"{lift.level:.0%}"
    figures = [
        (f"lift of what is launched over what runs now (the kept products at no change), at least ({level} lower "
         "bound; cross-fitted: no proposal graded by the judge that chose it)", f"{lift.low:+.1%}"),
        (f"estimated lift, {level} interval [{lift.low:+.1%}, {lift.high:+.1%}] (logs' noise and the judge's "
         "backtest error)", f"{lift.estimate:+.1%}"),
        ("products that keep their current creative (lower bound <= 0)",
         f"{int(evidence.products['keep_current'].sum())} / {products}"),
        (f"lift if every product's proposal were launched (before do no harm), estimate [{level} interval]",
         f"{evidence.proposals_lift.estimate:+.1%} [{evidence.proposals_lift.low:+.1%}, "
         f"{evidence.proposals_lift.high:+.1%}]"),
        (f"backtest on {len(backtest.points)} held-out logged creatives: mean abs relative error, calibration "
         "slope, error on creatives like the proposals",
         f"{backtest.mean_abs_relative_error:.0%}, {backtest.calibration_slope:.2f}, {backtest.local_error:+.0%}"),
        ("what the lift rests on, the judge's contrast to a product's logs: share of it that held-out creatives "
         "like the proposals showed, one proposal's error (the larger of the held-out spread's upper bound and "
         "the two half-data judges' disagreement), largest ratio credited",
         f"{backtest.contrast_slope:.2f}, {backtest.proposal_spread:.0%}, {backtest.verified_ratio:.2f}"),
        ("lower bound of a product whose proposal is credited the largest ratio (one rated higher gets no more)",
         f"{backtest.best_product_low:+.1%}"),
        ("impressions of products whose proposal was logged (supported by the logs, not extrapolated)",
         f"{supported.impression_share:.0%}"),
    ]
    notes = (f"Launch plan: {evidence.launch_plan.summary} ({evidence.launch_plan.reference}).",)
    every = evidence.proposals_plan
    if every is not None and every.impressions_per_arm is not None and evidence.products["keep_current"].all():
        notes += (f"No product's proposal is shown better on its own, but the lower end of the lift of every proposal "
                  f"together is {evidence.proposals_lift.low:+.1%} (before do no harm): a live test of every proposal "
                  f"against what runs now needs {every.summary}. Nothing is launched until such a test confirms it.",)
    if backtest.best_product_low <= 0:
        notes += (f"With these logs no proposal can be shown better than what runs now: one credited the largest "
                  f"contrast the backtest verified (ratio {backtest.verified_ratio:.2f}) still has a lower bound of "
                  f"{backtest.best_product_low:+.1%}, whichever combination the judge picks. What would change it is a "
                  "backtest that verifies larger contrasts with less error (more logged creatives and impressions "
                  "per product) or a live test of the proposals (the test of every proposal, when the set is shown "
                  "better).",)
    if not supported.weighted:
        notes += ("The logs carry no propensities (or only aggregated creative_stats): the lift rests on the "
                  "cross-fitted judges' predicted contrasts, recalibrated by the backtest; no importance-weighted "
                  "estimate (IPS, SNIPS, DR) is possible, even where the logs showed a proposal.",)
    if supported.ips is not None and supported.snips is not None and supported.dr is not None:
        notes += (f"Supported part ({supported.products} products whose proposal was logged): IPS "
                  f"{supported.ips.value:.2%}, SNIPS {supported.snips.value:.2%}, DR {supported.dr.value:.2%} against "
                  f"a logged {supported.logging_ctr:.2%}, effective sample size {supported.ess:.0f}.",)
    chart = (f"<img src='{BACKTEST_PLOT}' width='360' height='360' alt='predicted against observed CTR of "
             "held-out logged creatives, with the diagonal of perfect calibration and the fitted calibration line "
             f"(slope {backtest.calibration_slope:.2f})'>")
    return ReportSummary(figures=tuple(figures) + summary.figures, notes=notes + summary.notes,
                         charts=(chart,) + summary.charts, tables=summary.tables)


def _summary(market: Market, proposals: pd.DataFrame, logged: pd.DataFrame, predicted_lift: pd.Series,
             model: MILModel, value: ProposalValue | None, lift_rows: pd.DataFrame | None, notes: list[str],
             history: ComboHistory) -> ReportSummary:
    figures = [
        ("products", f"{len(market.products)}"),
        ("proposals", f"{len(proposals)}"),
        ("median predicted lift of #1 over the best logged creative, by the judge that chose it (not evidence)",
         f"{np.nanmedian(predicted_lift):+.1%}" if len(predicted_lift) else "n/a"),
    ]
    if "brand_compliant" in proposals:
        figures.append(("proposals that keep to the brand guardrails",
                        f"{int(proposals['brand_compliant'].sum())} / {len(proposals)}"))
    if value is not None:
        mine, base = value.proposals, value.logging
        figures += [
            (f"estimated CTR of the proposals ({mine.estimator}, graded by the judge that chose them), "
             f"95% interval [{mine.ci_low:.2%}, {mine.ci_high:.2%}]", f"{mine.value:.2%}"),
            ("CTR of the logging policy", f"{base.value:.2%}"),
            (f"lift graded by the judge that chose (optimistic), 95% interval [{value.lift_ci_low:+.1%}, "
             f"{value.lift_ci_high:+.1%}]", f"{value.lift:+.1%}"),
            ("impressions that show a proposal / all", f"{value.matched_impressions} / {value.impressions}"),
        ]
    charts = [histogram_svg(predicted_lift.to_numpy(), "predicted lift of #1 per product (by the judge that chose it)")]
    if lift_rows is not None:
        charts.append(histogram_svg(lift_rows["lift"].to_numpy(), "cross-fitted lift of #1 per product (the evidence)"))
    effects = model.element_effects()
    if len(effects):
        ordered = effects.sort_values()
        picked = pd.concat([ordered.head(6), ordered.tail(6)]).drop_duplicates() if len(ordered) > 12 else ordered
        labels = [_short(market.element_content(e), 26) if e in set(market.elements["element_id"]) else e
                  for e in picked.index]
        charts.append(bar_chart_svg(labels, picked.to_numpy(), "learned element effects (logit), top and bottom"))
    tables = []
    if history.reward:
        every = max(1, len(history.reward) // 8)
        rows = [[k + 1, f"{history.reward[k]:.4g}", f"{history.kl[k]:.3g}", f"{history.entropy[k]:.3g}"]
                for k in range(0, len(history.reward), every)]
        tables.append(html_table(["RL step", "mean reward", "KL to behaviour cloning", "entropy"], rows,
                                 "combination policy training (per step, before its update)"))
    return ReportSummary(figures=tuple(figures), notes=tuple(notes), charts=tuple(charts), tables=tuple(tables))
