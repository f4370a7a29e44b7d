"""adcraft logs export: a run's served log appended to its market, as a market that validates and optimizes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from adcraft.cli import app
from adcraft.market import load_market, validate_market
from adcraft.pipeline.optimize import OptimizeConfig, optimize
from adcraft.pipeline.reviews import sqlite_url
from adcraft.serve.decisions import DecisionStore
from adcraft.serve.impression_log import ImpressionLog
from adcraft.serve.policy import ServingPolicy, ServingPolicyConfig
from adcraft.serve.run_view import RunView

runner = CliRunner()


@pytest.fixture(scope="module")
def served_log(served_run, tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """A database where the run served 60 impressions of two products (an approved proposal among the arms of
    the first), every third one clicked; returns the database file and each impression's answer."""
    database = tmp_path_factory.mktemp("log") / "decisions.sqlite"
    view = RunView.load(*served_run)
    store = DecisionStore(sqlite_url(database), view)
    log = ImpressionLog(store, ServingPolicy(ServingPolicyConfig(seed=3)))
    first, second = view.product_ids[:2]
    for proposal in view.review(first).proposals[:2]:
        store.record(first, proposal.creative_id, "approve")
    answers = {}
    for n in range(60):
        served = log.serve(first if n % 3 else second, {"device": "mobile"} if n % 2 else None)
        if n % 3 == 0:
            log.click(served.impression_id)
        answers[served.impression_id] = {"propensity": served.propensity, "arm": served.arm,
                                         "click": int(n % 3 == 0)}
    store.dispose()
    return database, answers


def export(db: Path, run_dir: Path, market_dir: Path, out: Path):
    return runner.invoke(app, ["logs", "export", "--db", str(db), "--run", str(run_dir), "--market", str(market_dir),
                               "--out", str(out)])


def test_the_export_is_a_valid_market_with_the_served_log_appended(served_run, served_log, tmp_path) -> None:
    run_dir, market_dir = served_run
    database, answers = served_log
    out = tmp_path / "next-market"
    result = export(database, run_dir, market_dir, out)
    assert result.exit_code == 0, result.output
    assert "60 served impressions (20 clicked)" in result.output
    assert validate_market(out) == []
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0
    before, after = load_market(market_dir), load_market(out)
    assert len(after.impressions) == len(before.impressions) + 60
    pd.testing.assert_frame_equal(after.impressions.iloc[:len(before.impressions)].reset_index(drop=True),
                                  before.impressions.reset_index(drop=True))
    served = after.impressions.set_index("impression_id").loc[list(answers)]
    assert served["propensity"].tolist() == [a["propensity"] for a in answers.values()]  # exactly as logged
    assert served["click"].tolist() == [a["click"] for a in answers.values()]
    assert set(served["context"]) == {"{}", '{"device": "mobile"}'}
    creatives = after.creatives.set_index("creative_id")
    new = creatives.loc[[c for c in creatives.index if c not in set(before.creatives["creative_id"])]]
    approved = {a["arm"].elements for a in answers.values() if a["arm"].source == "approved"}
    logged = {tuple(e) for e in before.creatives["elements"]}  # a kept proposal is a logged creative already
    assert approved - logged and {tuple(e) for e in new["elements"]} == approved - logged  # the new ones shown
    assert all((out / image).is_file() for image in new["image"])
    for impression_id, answer in answers.items():  # each served impression names a creative with its elements
        assert tuple(creatives.loc[served.loc[impression_id, "creative_id"], "elements"]) == answer["arm"].elements
    again = export(database, run_dir, market_dir, out)  # a non-empty --out is refused and left as it was
    assert again.exit_code == 2 and "not empty" in again.output
    assert len(load_market(out).impressions) == len(after.impressions)


def test_an_export_without_served_impressions_is_refused_and_writes_nothing(served_run, tmp_path) -> None:
    run_dir, market_dir = served_run
    database = tmp_path / "empty.sqlite"
    DecisionStore(sqlite_url(database), RunView.load(run_dir, market_dir)).dispose()
    result = export(database, run_dir, market_dir, tmp_path / "out")
    assert result.exit_code == 2 and "no impressions served by the run" in result.output
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    missing = export(tmp_path / "nothing.sqlite", run_dir, market_dir, tmp_path / "out")
    assert missing.exit_code == 2 and "no such database file" in missing.output


@pytest.mark.slow
def test_optimize_reads_the_exported_market(served_run, served_log, tmp_path) -> None:
    run_dir, market_dir = served_run
    out = tmp_path / "next-market"
    assert export(served_log[0], run_dir, market_dir, out).exit_code == 0
    result = optimize(out, tmp_path / "next-run", OptimizeConfig.smoke())
    assert len(result.proposals) > 0 and result.record.ope.possible
