"""RunView: what the review page shows of a run, read from the run's tables and its reward model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from adcraft.errors import InputError
from adcraft.rewards.mil import MILModel
from adcraft.serve.run_view import RunView


@pytest.fixture(scope="module")
def view(served_run: tuple[Path, Path]) -> RunView:
    return RunView.load(*served_run)


def test_every_product_has_its_current_creative_and_ranked_proposals(view: RunView, served_run) -> None:
    run_dir, _ = served_run
    creatives = pd.read_parquet(run_dir / "creatives.parquet")
    products = pd.read_parquet(run_dir / "products.parquet").set_index("product_id")
    assert len(view) == len(products)
    for review in view.page(0, len(view)):
        current = products.loc[review.product_id]
        assert review.current is not None and review.current.creative_id == current["current_creative_id"]
        assert review.current.elements == tuple(current["current_elements"])
        mine = creatives[creatives["product_id"] == review.product_id].sort_values("rank")
        assert [p.rank for p in review.proposals] == mine["rank"].tolist()
        assert [p.creative_id for p in review.proposals] == [Path(i).stem for i in mine["image"]]
        for proposal in review.proposals:
            expected = proposal.predicted_ctr / current["current_predicted_ctr"] - 1
            assert proposal.predicted_lift == pytest.approx(expected)
            assert (proposal.estimated_lift is not None) == (proposal.rank == 1)
        top = review.proposals[0].estimated_lift
        assert top.lift == pytest.approx(current["estimated_lift"])
        assert top.low <= top.lift <= top.high
        assert top.impressions == current["lift_impressions"]


def test_changes_are_the_differing_slots_with_the_models_credit(view: RunView, served_run) -> None:
    model = MILModel.load(served_run[0] / "models" / "reward")
    checked = 0
    for review in view.page(0, len(view)):
        for proposal in review.proposals:
            differ = {slot for slot, new, old in zip(view.slots, proposal.elements, review.current.elements)
                      if new != old}
            assert {change.slot for change in proposal.changes} == differ
            credit = model.attributions(review.product_id, list(proposal.elements))
            for change in proposal.changes:
                assert change.element_id == proposal.elements[view.slots.index(change.slot)]
                assert change.credit == pytest.approx(credit[change.element_id], abs=1e-6)
                assert change.content == view.market.element_content(change.element_id)
            sizes = [abs(change.credit) for change in proposal.changes]
            assert sizes == sorted(sizes, reverse=True)
            checked += len(proposal.changes)
    assert checked > 0


def test_paging_and_lookups(view: RunView) -> None:
    ids = [r.product_id for r in view.page(0, 2)] + [r.product_id for r in view.page(2, 100)]
    assert ids == list(view.product_ids)
    assert view.page(len(view), 10) == []
    first = view.review(view.product_ids[0])
    assert view.proposal(first.product_id, first.proposals[-1].creative_id) == first.proposals[-1]
    other = view.review(view.product_ids[1]).proposals[0].creative_id
    with pytest.raises(InputError, match="no proposed creative"):
        view.proposal(first.product_id, other)
    with pytest.raises(InputError, match="no product"):
        view.review("no-such-product")
    with pytest.raises(InputError):
        view.page(-1, 5)


def test_a_run_without_products_table_is_refused_with_a_clear_message(served_run, tmp_path: Path) -> None:
    run_dir, market_dir = served_run
    old = tmp_path / "old-run"
    shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns("creatives", "logged", "report.html"))
    (old / "products.parquet").unlink()
    with pytest.raises(InputError, match="products.parquet is missing.*adcraft optimize"):
        RunView.load(old, market_dir)


def test_a_run_of_another_market_is_refused(served_run, tmp_path: Path) -> None:
    run_dir, market_dir = served_run
    other = tmp_path / "run"
    shutil.copytree(run_dir, other, ignore=shutil.ignore_patterns("creatives", "logged", "report.html"))
    creatives = pd.read_parquet(other / "creatives.parquet")
    creatives.loc[0, "product_id"] = "p-elsewhere"
    creatives.to_parquet(other / "creatives.parquet")
    with pytest.raises(InputError, match="does not have"):
        RunView.load(other, market_dir)
