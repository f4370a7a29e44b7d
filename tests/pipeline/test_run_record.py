"""run.json is written from a RunRecord and read back by RunRecord.load, which refuses what is not a run record."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from adcraft.atomic import json_text
from adcraft.errors import InputError
from adcraft.evaluate.evidence import LiftInterval
from adcraft.evaluate.ope import PolicyEstimate
from adcraft.evaluate.proposal_value import ProposalPolicy, ProposalValue
from adcraft.pipeline.optimize import OptimizeConfig, RunRecord
from adcraft.pipeline.run_record import (
    Counts,
    EvidenceRecord,
    FidelityCheck,
    OffPolicyRecord,
    Seeds,
    StageTimings,
    Versions,
    content_run_id,
    run_id_of,
)

PROPOSALS = PolicyEstimate(value=0.06, ci_low=0.05, ci_high=0.07, ess=120.0, estimator="dr", n=1000, std_error=0.004)
LOGGING = PolicyEstimate(value=0.05, ci_low=0.045, ci_high=0.055, ess=1000.0, estimator="dr", n=1000, std_error=0.002)


def a_record(**changes: object) -> RunRecord:
    value = ProposalValue(PROPOSALS, LOGGING, matched_impressions=40, impressions=1000,
                          policy=ProposalPolicy("softmax", 0.5), lift_ci_low=math.nan, lift_ci_high=0.5,
                          warnings=("it rests on few clicks",))
    record = RunRecord(
        market=Path("/data/market"), out=Path("/data/out"), config=OptimizeConfig.smoke(top_k=3),
        seeds=Seeds(reward=0, combo=7), versions=Versions.installed(), counts=Counts(products=6, proposals=18,
                                                                                     new_elements=2),
        ope=OffPolicyRecord(value),
        evidence=EvidenceRecord(LiftInterval(estimate=0.12, low=0.03, high=0.4, level=0.9),
                                {"scheme": {"folds": 2}, "products_to_keep": 1}),
        fidelity=FidelityCheck(checked=18, passed=18), notes=("a note",),
        resumed_from={"reward model": "finished model"},
        timings=StageTimings((("validate market", 0.5), ("report", 1.25)), total=3.0),
    )
    return dataclasses.replace(record, **changes)


def test_a_record_reads_back_as_it_was_written(tmp_path):
    record = a_record()
    loaded = RunRecord.load(record.write(tmp_path / "run.json"))
    assert loaded.config == record.config and loaded.config.top_k == 3
    assert (loaded.market, loaded.out, loaded.seeds, loaded.counts) == (record.market, record.out, record.seeds,
                                                                       record.counts)
    assert loaded.versions == record.versions and loaded.fidelity == record.fidelity
    assert loaded.ope.possible and loaded.ope.value.proposals == PROPOSALS and loaded.ope.value.logging == LOGGING
    assert loaded.ope.value.policy == ProposalPolicy("softmax", 0.5)
    assert loaded.ope.value.lift == pytest.approx(0.2)
    assert math.isnan(loaded.ope.value.lift_ci_low)  # written as null, read back as NaN
    assert loaded.ope.value.warnings == ("it rests on few clicks",)
    assert loaded.notes == ("a note",) and loaded.resumed_from == {"reward model": "finished model"}
    assert loaded.timings == record.timings
    assert loaded.evidence == record.evidence and loaded.evidence.lift.low == 0.03
    assert json_text(loaded.to_json()) == json_text(record.to_json())


def test_run_json_keeps_its_field_names(tmp_path):
    data = json.loads(a_record(resumed_from={}).write(tmp_path / "run.json").read_text())
    assert list(data) == ["run_id", "market", "out", "config", "seeds", "versions", "counts", "ope", "evidence",
                          "fidelity", "notes", "resumed_from", "timings", "not_finite"]
    assert data["evidence"] == {"possible": True, "lift": {"estimate": 0.12, "low": 0.03, "high": 0.4, "level": 0.9},
                                "scheme": {"folds": 2}, "products_to_keep": 1}
    assert data["resumed_from"] is None  # nothing reused
    assert data["timings"] == {"validate market": 0.5, "report": 1.25, "total": 3.0}
    assert data["seeds"] == {"reward": 0, "combo": 7}
    assert data["counts"] == {"products": 6, "proposals": 18, "new_elements": 2}
    assert set(data["versions"]) == {"python", "adcraft", "torch", "numpy", "pandas", "pyarrow", "pillow"}
    assert list(data["ope"])[:6] == ["possible", "proposals", "logging", "lift", "lift_ci_low", "lift_ci_high"]
    assert data["ope"]["lift_ci_low"] is None and data["not_finite"] == {"ope.lift_ci_low": "NaN"}


def test_a_run_without_an_estimate_says_why(tmp_path):
    record = a_record(ope=OffPolicyRecord(None, "the impressions carry no propensities"))
    assert record.to_json()["ope"] == {"possible": False, "reason": "the impressions carry no propensities"}
    loaded = RunRecord.load(record.write(tmp_path / "run.json"))
    assert not loaded.ope.possible and loaded.ope.value is None
    assert loaded.ope.reason == "the impressions carry no propensities"


def test_a_run_without_evidence_says_why(tmp_path):
    record = a_record(evidence=EvidenceRecord.of(None, enabled=False))
    assert record.to_json()["evidence"] == {"possible": False, "reason": "switched off (evidence.enabled: false)"}
    loaded = RunRecord.load(record.write(tmp_path / "run.json"))
    assert not loaded.evidence.possible and loaded.evidence.lift is None
    assert loaded.evidence.reason == "switched off (evidence.enabled: false)"


def _broken(data: dict, change: str) -> None:
    if change == "no counts":
        del data["counts"]
    elif change == "text count":
        data["counts"]["products"] = "six"
    elif change == "text estimate":
        data["ope"]["proposals"]["value"] = "high"
    elif change == "bad setting":
        data["config"]["top_k"] = 0
    elif change == "timings list":
        data["timings"] = [1.0, 2.0]
    elif change == "no config":
        del data["config"]
    elif change == "unknown policy":
        data["ope"]["policy"]["kind"] = "top2"


@pytest.mark.parametrize(("change", "field"), [
    ("no counts", "counts"), ("text count", "counts.products"), ("text estimate", "ope.proposals.value"),
    ("bad setting", "top_k"), ("timings list", "timings"), ("no config", "config"),
    ("unknown policy", "ope.policy"),
])
def test_a_broken_run_json_is_refused_naming_the_file_and_the_field(tmp_path, change, field):
    path = a_record().write(tmp_path / "run.json")
    data = json.loads(path.read_text())
    _broken(data, change)
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as refused:
        RunRecord.load(path)
    assert str(path) in str(refused.value) and field in str(refused.value)


def test_a_missing_or_unreadable_run_json_is_refused(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        RunRecord.load(tmp_path / "run.json")
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(InputError, match="not a readable JSON file"):
        RunRecord.load(tmp_path / "run.json")
    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="expected a mapping"):
        RunRecord.load(tmp_path / "run.json")


def test_the_run_id_names_the_content_and_a_run_json_without_one_gets_a_stable_one(tmp_path):
    first = json.loads(a_record().write(tmp_path / "a" / "run.json").read_text())
    other = json.loads(a_record(notes=("another note",)).write(tmp_path / "b" / "run.json").read_text())
    assert first["run_id"].startswith("run-") and first["run_id"] != other["run_id"]
    assert run_id_of(tmp_path / "a") == first["run_id"] == content_run_id(a_record().to_json())
    older = tmp_path / "older"
    older.mkdir()
    (older / "run.json").write_text(json.dumps({k: v for k, v in first.items() if k != "run_id"}))
    derived = run_id_of(older)
    assert derived.startswith("run-") and derived == run_id_of(older) and derived != first["run_id"]
    with pytest.raises(InputError, match="run.json"):
        run_id_of(tmp_path / "nowhere")
