"""``pipeline/report.py``: the report's evidence section leads with the lower bound and names the test of every
proposal where no product is shown better on its own."""

from __future__ import annotations

import dataclasses

import pytest

from adcraft.evaluate.evidence import EvidenceConfig, LiftInterval, launch_plan, proposal_evidence
from adcraft.evaluate.report import ReportSummary
from adcraft.market.click_log import click_log
from adcraft.pipeline.report import _lead_with_evidence
from adcraft.rewards.additive import AdditiveConfig, fit_additive

SET_TEST = "a live test of every proposal against what runs now needs"


@pytest.fixture(scope="module")
def evidence(logged_market):
    """The cross-fitted evidence of each product's first logged creative, as if proposed, on a small market."""
    market, _ = logged_market
    first = market.creatives.groupby("product_id", sort=True).head(1)[["product_id", "elements"]].assign(rank=1)

    def fit(part):
        return fit_additive(click_log(part), AdditiveConfig())

    return market, proposal_evidence(market, first.reset_index(drop=True), fit, lambda judge: first,
                                     EvidenceConfig(n_bootstrap=50, seed=1), do_no_harm=True)


def notes_of(evidence, products: int = 10) -> str:
    return " ".join(_lead_with_evidence(ReportSummary(), evidence, products).notes)


def test_the_set_test_is_named_only_where_the_set_is_shown_better_and_no_product_is(evidence):
    market, found = evidence
    logging, config = found.logging_ctr, EvidenceConfig()
    shown = LiftInterval(0.20, 0.08, 0.33, 0.9)
    nothing = launch_plan(logging, LiftInterval(0.0, 0.0, 0.0, 0.9), market, config)
    every = launch_plan(logging, shown, market, config)
    kept_all = dataclasses.replace(found, lift=LiftInterval(0.0, 0.0, 0.0, 0.9), launch_plan=nothing,
                                   proposals_lift=shown, proposals_plan=every,
                                   products=found.products.assign(keep_current=True))
    text = notes_of(kept_all)
    assert SET_TEST in text and every.summary in text and "+8.0%" in text
    assert "Nothing is launched until such a test confirms it" in text
    # a product launched: what do no harm launches has its own launch plan, and the set's test is not offered
    some = found.products.assign(keep_current=[False] + [True] * (len(found.products) - 1))
    assert SET_TEST not in notes_of(dataclasses.replace(kept_all, products=some))
    # the set not shown better, or no plan: nothing to test
    unshown = LiftInterval(0.05, -0.02, 0.12, 0.9)
    flat = dataclasses.replace(kept_all, proposals_lift=unshown, proposals_plan=launch_plan(logging, unshown, market,
                                                                                            config))
    assert SET_TEST not in notes_of(flat)
    assert SET_TEST not in notes_of(dataclasses.replace(kept_all, proposals_plan=None))


def test_the_lift_of_every_proposal_is_a_figure_beside_the_lift_after_do_no_harm(evidence):
    _, found = evidence
    figures = dict(_lead_with_evidence(ReportSummary(), found, 10).figures)
    label = next(k for k in figures if k.startswith("lift if every product's proposal were launched"))
    every = found.proposals_lift
    assert figures[label] == f"{every.estimate:+.1%} [{every.low:+.1%}, {every.high:+.1%}]"
    assert list(figures).index(label) > 0  # after the lower bound of what is launched, which leads
