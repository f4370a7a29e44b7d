"""The parts of ``OUT/run.json`` that ``adcraft optimize`` writes, as records: the seeds, the counts, the
fidelity check, the off-policy estimate (``ope``), the time of each stage and the versions the run used.

``pipeline.optimize.RunRecord`` holds them with the run's settings; ``read_run_json`` and ``record_parts``
read them back from a run.json, refusing (``InputError``, naming the file and the field) one that is not a
run record. run.json is strict JSON, so a non-finite number was written as null: it reads back as NaN.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adcraft.errors import InputError
from adcraft.evaluate.evidence import Evidence, LiftInterval
from adcraft.evaluate.ope import PolicyEstimate
from adcraft.evaluate.proposal_value import ProposalPolicy, ProposalValue


@dataclass(frozen=True)
class Seeds:
    """The seeds of the run's two trainings."""

    reward: int
    combo: int


@dataclass(frozen=True)
class Counts:
    """How many products the market has, proposals the run made and generated elements they use."""

    products: int
    proposals: int
    new_elements: int


@dataclass(frozen=True)
class FidelityCheck:
    """How many rendered proposals were checked to show the product's own pixels, and how many did."""

    checked: int
    passed: int


@dataclass(frozen=True)
class EvidenceRecord:
    """run.json's ``evidence``: the cross-fitted lift of the proposals over the logging policy (``lift``, its
    lower bound the headline) and the rest of the evidence as written (``detail``: scheme, backtest, supported
    part, launch plan, products to keep); without a lift, ``reason`` says why."""

    lift: LiftInterval | None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    reason: str = ""

    @classmethod
    def of(cls, evidence: Evidence | None, enabled: bool) -> EvidenceRecord:
        if evidence is None:
            return cls(None, reason="switched off (evidence.enabled: false)" if not enabled else
                       "the logs could not support it (see the notes)")
        data = evidence.to_json()
        return cls(evidence.lift, {k: v for k, v in data.items() if k not in ("possible", "lift")})

    @property
    def possible(self) -> bool:
        return self.lift is not None

    def to_json(self) -> dict[str, Any]:
        if self.lift is None:
            return {"possible": False, "reason": self.reason}
        return {"possible": True, "lift": dataclasses.asdict(self.lift), **self.detail}

    @classmethod
    def from_json(cls, data: Any, where: str) -> EvidenceRecord:
        mapping = _mapping(data, where)
        if not mapping.get("possible"):
            return cls(None, reason=_text(mapping.get("reason", ""), f"{where}.reason"))
        lift = _mapping(_part(mapping, "lift", where), f"{where}.lift")
        interval = LiftInterval(**{name: _number(_part(lift, name, f"{where}.lift"), f"{where}.lift.{name}")
                                   for name in ("estimate", "low", "high", "level")})
        return cls(interval, {k: v for k, v in mapping.items() if k not in ("possible", "lift")})


@dataclass(frozen=True)
class OffPolicyRecord:
    """run.json's ``ope``: the proposals' off-policy value against the logging policy (``value``), or, when
    none could be estimated, ``reason`` (``possible`` is then False)."""

    value: ProposalValue | None
    reason: str = ""

    @property
    def possible(self) -> bool:
        return self.value is not None

    def to_json(self) -> dict[str, Any]:
        if self.value is None:
            return {"possible": False, "reason": self.reason}
        return {"possible": True, **self.value.to_json()}

    @classmethod
    def from_json(cls, data: Any, where: str) -> OffPolicyRecord:
        if not _flag(_part(data, "possible", where), f"{where}.possible"):
            return cls(None, _text(_part(data, "reason", where), f"{where}.reason"))
        policy = _part(data, "policy", where)
        try:
            kind = ProposalPolicy(_text(_part(policy, "kind", f"{where}.policy"), f"{where}.policy.kind"),
                                  _number(_part(policy, "temperature", f"{where}.policy"),
                                          f"{where}.policy.temperature"))
        except InputError as exc:
            raise InputError(f"{where}.policy: {exc}") from None
        value = ProposalValue(
            proposals=_flat_record(PolicyEstimate, _part(data, "proposals", where), f"{where}.proposals"),
            logging=_flat_record(PolicyEstimate, _part(data, "logging", where), f"{where}.logging"),
            matched_impressions=_whole(_part(data, "matched_impressions", where), f"{where}.matched_impressions"),
            impressions=_whole(_part(data, "impressions", where), f"{where}.impressions"),
            policy=kind,
            lift_ci_low=_number(_part(data, "lift_ci_low", where), f"{where}.lift_ci_low"),
            lift_ci_high=_number(_part(data, "lift_ci_high", where), f"{where}.lift_ci_high"),
            warnings=tuple(_text(w, f"{where}.warnings") for w in _list(_part(data, "warnings", where),
                                                                       f"{where}.warnings")),
        )
        return cls(value)


@dataclass(frozen=True)
class StageTimings:
    """Wall-clock seconds of each stage that ran, in order, and of the whole run (run.json's ``timings``:
    one number per stage name, and ``total``)."""

    stages: tuple[tuple[str, float], ...]
    total: float

    def to_json(self) -> dict[str, float]:
        return {**dict(self.stages), "total": self.total}

    @classmethod
    def from_json(cls, data: Any, where: str) -> StageTimings:
        stages = tuple((name, _number(seconds, f"{where}.{name}")) for name, seconds in _mapping(data, where).items()
                       if name != "total")
        return cls(stages, _number(_part(data, "total", where), f"{where}.total"))


VERSIONED_PACKAGES = ("adcraft", "torch", "numpy", "pandas", "pyarrow", "pillow")


@dataclass(frozen=True)
class Versions:
    """The Python and package versions the run used (``"not installed"`` for a package that is absent)."""

    python: str
    adcraft: str
    torch: str
    numpy: str
    pandas: str
    pyarrow: str
    pillow: str

    @classmethod
    def installed(cls) -> Versions:
        from importlib.metadata import PackageNotFoundError, version

        found = {}
        for package in VERSIONED_PACKAGES:
            try:
                found[package] = version(package)
            except PackageNotFoundError:
                found[package] = "not installed"
        return cls(python=platform.python_version(), **found)


RUN_ID_FIELD = "run_id"


def content_run_id(content: dict[str, Any]) -> str:
    """The identifier a run records in run.json (``run_id``): a hash of the rest of run.json's content
    (paths, settings, seeds, versions, counts, estimates, timings), so two runs differ and the same
    content always names the same run."""
    body = {key: value for key, value in content.items() if key != RUN_ID_FIELD}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return "run-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def run_id_of(run_dir: Path) -> str:
    """The identifier of the run in ``run_dir``: run.json's ``run_id``, or for a run.json written before
    runs recorded one, the same form derived from the file's bytes (stable while the file is unchanged).

    Raises ``InputError`` when run.json is missing or unreadable, or its ``run_id`` is not text.
    """
    path = Path(run_dir) / "run.json"
    data = read_run_json(path)
    if RUN_ID_FIELD in data:
        return _text(data[RUN_ID_FIELD], f"{path}: {RUN_ID_FIELD}")
    return "run-" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def read_run_json(path: Path) -> dict[str, Any]:
    """The parsed ``run.json`` at ``path``; ``InputError`` when it is missing, unreadable or not a mapping."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (the run.json of `adcraft optimize`)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON file ({exc})") from None
    return _mapping(data, str(path))


def record_parts(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Every field of a run record but its settings (``config``), read from run.json's ``data``."""
    resumed = _part(data, "resumed_from", where)
    notes = _list(_part(data, "notes", where), f"{where}: notes")
    return {
        "market": Path(_text(_part(data, "market", where), f"{where}: market")),
        "out": Path(_text(_part(data, "out", where), f"{where}: out")),
        "seeds": _flat_record(Seeds, _part(data, "seeds", where), f"{where}: seeds"),
        "versions": _flat_record(Versions, _part(data, "versions", where), f"{where}: versions"),
        "counts": _flat_record(Counts, _part(data, "counts", where), f"{where}: counts"),
        "ope": OffPolicyRecord.from_json(_part(data, "ope", where), f"{where}: ope"),
        "evidence": EvidenceRecord.from_json(_part(data, "evidence", where), f"{where}: evidence"),
        "fidelity": _flat_record(FidelityCheck, _part(data, "fidelity", where), f"{where}: fidelity"),
        "notes": tuple(_text(note, f"{where}: notes") for note in notes),
        "resumed_from": {} if resumed is None else {
            label: _text(what, f"{where}: resumed_from.{label}")
            for label, what in _mapping(resumed, f"{where}: resumed_from").items()},
        "timings": StageTimings.from_json(_part(data, "timings", where), f"{where}: timings"),
    }


def _mapping(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping, got {type(data).__name__}")
    return data


def _part(data: Any, key: str, where: str) -> Any:
    mapping = _mapping(data, where)
    if key not in mapping:
        raise InputError(f"{where}: missing field {key!r}")
    return mapping[key]


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InputError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where}: expected text, got {type(value).__name__}")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{where}: expected true or false, got {type(value).__name__}")
    return value


def _whole(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where}: expected a whole number, got {type(value).__name__}")
    return value


def _number(value: Any, where: str) -> float:
    """A number; null reads as NaN (``write_json`` writes a non-finite number as null)."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: expected a number, got {type(value).__name__}")
    return float(value)


def _flat_record(kind: type, data: Any, where: str) -> Any:
    """The record ``kind`` (a dataclass of text and number fields) from the mapping ``data``."""
    readers = {"str": _text, "int": _whole, "float": _number}
    return kind(**{
        spec.name: readers[spec.type if isinstance(spec.type, str) else spec.type.__name__](
            _part(data, spec.name, where), f"{where}.{spec.name}")
        for spec in dataclasses.fields(kind)})
