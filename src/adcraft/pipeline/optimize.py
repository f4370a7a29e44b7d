"""The main job: a market in, better creatives out, with the evidence.

validate -> reward model (GenCO multi-instance, on cached text features) -> optional new backgrounds
(CAIG prompt model with DPO/PCPO, judged by the pairwise reward model) -> combination policy (behaviour
cloning, then policy gradient against the reward model) -> top-K per product -> render -> off-policy
estimate of the proposals against the logging policy -> ``OUT/creatives.parquet`` (+ ``elements.parquet``
for generated elements), ``OUT/report.html``, ``OUT/run.json`` and the trained models under ``OUT/models/``
(``reward``: the multi-instance model, ``combo``: the policy), and ``OUT/products.parquet`` (per product, the
creative shown now and the estimated lift of proposal #1; see ``_write_products``). Every rendered
proposal is checked to show the product's own pixels unaltered (``evaluate.fidelity``);
a run that would break that fails.

Everything is written to a staging folder beside ``OUT`` and moved into place at the end, so a failed
or refused run leaves no partial output (and an earlier ``OUT`` stays as it was until the new one is
complete). The staging folder also keeps the trained models and training checkpoints until the end, so
a killed run resumes where it stopped when it is run again (``optimize``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

import adcraft
from adcraft.atomic import (
    check_output_folder,
    check_scratch_folder,
    mark_output,
    move_into_place,
    write_json,
    write_png,
    write_text,
)
from adcraft.configuration import check_config, to_mapping
from adcraft.errors import AdcraftError, InputError
from adcraft.evaluate.evidence import Evidence, EvidenceConfig, proposal_evidence
from adcraft.evaluate.fidelity import product_fidelity
from adcraft.evaluate.proposal_value import (
    ProposalPolicy,
    estimate_proposals,
    lift_by_product,
    policy_arrays,
)
from adcraft.features.cache import file_sha256
from adcraft.generate.backgrounds import BackgroundsConfig, generate_backgrounds
from adcraft.generate.combo import CHECKPOINT_FILE as COMBO_CHECKPOINT
from adcraft.generate.combo import ComboConfig, ComboGenerator, ComboTrainer
from adcraft.learning.artifacts import CONFIG_FILE
from adcraft.learning.checkpoint import fingerprint
from adcraft.learning.checkpoint import position as checkpoint_position
from adcraft.learning.training import CHECKPOINT_FILE as FIT_CHECKPOINT
from adcraft.market import Market, load_market, write_proposals
from adcraft.market.click_log import best_logged_creatives, click_log
from adcraft.render.backend import RenderConfig
from adcraft.render.from_market import MarketRenderer
from adcraft.rewards.mil import MILConfig, MILModel, MILTrainer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackgroundStep:
    """Whether and how ``optimize`` writes new background prompts before combining elements."""

    enabled: bool = False
    generator: BackgroundsConfig = field(default_factory=BackgroundsConfig)

    def __post_init__(self) -> None:
        check_config(self)


@dataclass(frozen=True)
class OptimizeConfig:
    """Settings of ``adcraft optimize`` (a YAML file's keys are these fields, nested)."""

    top_k: int = 3
    reward: MILConfig = field(default_factory=MILConfig)
    combo: ComboConfig = field(default_factory=ComboConfig)
    backgrounds: BackgroundStep = field(default_factory=BackgroundStep)
    estimator: Literal["ips", "snips", "dr", "switch-dr", "dm"] = "dr"  # off-policy estimator of the proposals
    policy: Literal["top1", "softmax"] = "top1"  # how proposals become a policy for the estimate
    n_bootstrap: int = 500
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)  # cross-fitted lift, backtest, launch plan
    prior_impressions: float = 200.0  # shrinkage of logged CTRs toward the product's (best_logged_creatives)
    render: RenderConfig = field(default_factory=RenderConfig)  # compositor (default) or diffusion backgrounds

    @classmethod
    def smoke(cls, **overrides: object) -> OptimizeConfig:
        """A seconds-long run for smoke tests and trying the pipeline: the tiny hashed text encoder, a few
        epochs and policy steps, top-2, 50 bootstrap draws. Its proposals are not worth showing to anyone."""
        from adcraft.generate.combo import BehaviourCloningConfig, PolicyConfig, ProposalConfig, RLConfig
        from adcraft.learning.training import TrainConfig
        from adcraft.rewards.encoding import EncodingConfig

        tiny_text = EncodingConfig(text_backbone="tiny", embedding_dim=8)
        settings: dict[str, object] = dict(
            top_k=2,
            reward=MILConfig(encoding=tiny_text, train=TrainConfig(epochs=3, batch_size=512, learning_rate=0.02)),
            combo=ComboConfig(
                policy=PolicyConfig(encoding=tiny_text, hidden=16),
                bc=BehaviourCloningConfig(epochs=5),
                rl=RLConfig(steps=10, products_per_step=8),
                proposals=ProposalConfig(samples=8, beam_width=4),
            ),
            n_bootstrap=50,
        )
        return cls(**{**settings, **overrides})

    def __post_init__(self) -> None:
        check_config(self)  # types and FIELD_LIMITS (top_k, n_bootstrap, prior_impressions), also when built directly


@dataclass(frozen=True)
class OptimizeResult:
    out: Path
    proposals: pd.DataFrame
    run: dict


class _Steps:
    """Wall-clock time of each step, with a status line per step when asked to talk."""

    def __init__(self, progress: bool) -> None:
        self.timings: dict[str, float] = {}
        self.console = Console(stderr=True, quiet=not progress)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        with self.console.status(name):
            yield
        self.timings[name] = round(time.perf_counter() - started, 2)
        self.console.log(f"{name}: {self.timings[name]:.1f} s")


RESUME_FILE = "resume.json"  # in the staging folder: the fingerprint of the run it belongs to
CHECKPOINTS = "checkpoints"  # in the staging folder: finished models and training checkpoints


def optimize(market_dir: Path, out: Path, config: OptimizeConfig | None = None, progress: bool = False,
             extra_elements: Path | None = None, fresh: bool = False) -> OptimizeResult:
    """Run the main job on the market at ``market_dir`` and write its outputs to ``out``.

    ``extra_elements``: an ``elements.parquet`` written by another run (e.g. ``adcraft generate
    backgrounds``) whose elements the proposals may use beside the market's.

    A run killed at any moment is resumed by running it again with the same market and config: the
    staging folder ``.OUT.partial`` keeps the trained models and the training checkpoints
    (``checkpoints/``), and ``resume.json`` holds the run's fingerprint (market files, config, extra
    elements); a staging folder of another run is discarded. Finished models are loaded, not retrained,
    and a killed training continues from its last checkpoint, so the outputs equal an uninterrupted
    run's; ``run.json`` records what was reused under ``resumed_from``. ``fresh`` discards the staging
    folder instead. A failed run removes it; an interrupted one (Ctrl-C) keeps it.
    """
    config = config or OptimizeConfig()
    out = Path(os.path.abspath(out))
    staging = out.parent / f".{out.name}.partial"
    discarded = out.parent / f".{out.name}.checkpoints.old"
    check_output_folder(out, "optimize", inputs=[Path(market_dir)], scratch=[staging, discarded])
    check_scratch_folder(staging, "optimize", _own_staging)
    steps = _Steps(progress)
    started = time.perf_counter()
    with steps("validate market"):
        market = load_market(market_dir)
        log = click_log(market)  # refuses, before anything is written, a market the reward model cannot learn from
        extra = read_extra_elements(extra_elements, market) if extra_elements is not None else None
        config.render.check_available()
    shutil.rmtree(discarded, ignore_errors=True)  # left by a run killed while finishing
    run = _fingerprint(Path(market_dir), config, extra_elements)
    try:
        resumable = _open_staging(staging, run, fresh, steps)  # a new staging folder that cannot be written is removed
        result = _run(market, log, Path(market_dir), staging, out, config, steps, progress, extra,
                      _Resume(staging / CHECKPOINTS, resumable))
        result.run["timings"]["total"] = round(time.perf_counter() - started, 2)
        write_json(staging / "run.json", result.run, default=str)
        mark_output(staging, "optimize")
        os.replace(staging / CHECKPOINTS, discarded)  # the staging folder now holds only the outputs
        (staging / RESUME_FILE).unlink()
        move_into_place(staging, out)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(discarded, ignore_errors=True)
        raise
    shutil.rmtree(discarded, ignore_errors=True)
    return result


def _fingerprint(market_dir: Path, config: OptimizeConfig, extra_elements: Path | None) -> str:
    """The identity of a run: its config, the market's files (tables by content, images by size and
    modification time) and the extra elements file's content."""
    files = []
    for path in sorted(p for p in market_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        table = path.suffix.lower() in TABLE_SUFFIXES
        files.append([str(path.relative_to(market_dir)), file_sha256(path) if table else
                      [stat.st_size, stat.st_mtime_ns]])
    extra = None
    if extra_elements is not None:
        file = Path(extra_elements) / "elements.parquet" if Path(extra_elements).is_dir() else Path(extra_elements)
        extra = file_sha256(file)
    return fingerprint("optimize", adcraft.__version__, to_mapping(config), files, extra)


TABLE_SUFFIXES = (".parquet", ".csv", ".json", ".jsonl", ".yaml", ".yml", ".txt")


def _own_staging(staging: Path) -> bool:
    """True when ``staging`` is an interrupted attempt's staging folder: it holds ``resume.json`` or only
    ``checkpoints/``."""
    return (staging / RESUME_FILE).is_file() or {p.name for p in staging.iterdir()} <= {CHECKPOINTS}


def _open_staging(staging: Path, run: str, fresh: bool, steps: _Steps) -> bool:
    """Make the staging folder ready; True when it holds a resumable earlier attempt of this run."""
    marker = staging / RESUME_FILE
    if not fresh and marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") == run:
                steps.console.log(f"resuming an interrupted run from {staging}")
                return True
        except (OSError, ValueError):
            pass
        logger.warning("discarding %s: it belongs to a run with another market or config", staging)
    shutil.rmtree(staging, ignore_errors=True)
    (staging / CHECKPOINTS).mkdir(parents=True)
    write_text(marker, json.dumps({"fingerprint": run}))
    return False


@dataclass
class _Resume:
    """Where a run keeps its finished models and training checkpoints, and what it reused from them."""

    folder: Path
    resumable: bool
    reused: dict[str, str] = field(default_factory=dict)

    def finished(self, name: str, label: str) -> Path | None:
        """The finished model ``name`` of an earlier attempt, or None (noted under ``label`` when found)."""
        path = self.folder / name
        if self.resumable and (path / CONFIG_FILE).is_file():
            self.reused[label] = "finished model"
            return path
        return None

    def training(self, name: str, label: str, file: str) -> Path:
        """The checkpoint folder of a training (its position noted under ``label`` when there is one)."""
        path = self.folder / f"{name}-training"
        where = checkpoint_position(path / file) if self.resumable else None
        if where is not None:
            self.reused[label] = f"checkpoint at {where}"
        return path

    def keep(self, model, name: str) -> None:
        """Save a finished model, then drop its training checkpoint."""
        model.save(self.folder / name)
        shutil.rmtree(self.folder / f"{name}-training", ignore_errors=True)


def _run(market: Market, log: pd.DataFrame, market_dir: Path, staging: Path, out: Path, config: OptimizeConfig,
         steps: _Steps, progress: bool, extra: pd.DataFrame | None, resume: _Resume) -> OptimizeResult:
    notes: list[str] = []
    with steps("reward model (multi-instance)"):
        saved = resume.finished("reward", "reward model")
        if saved is not None:
            reward_model = MILModel.load(saved)
        else:
            checkpoint = resume.training("reward", "reward model", FIT_CHECKPOINT)
            reward_model = MILTrainer(config.reward).fit(market, progress=progress, checkpoint=checkpoint)
            resume.keep(reward_model, "reward")
    new_elements, working = extra, market
    if config.backgrounds.enabled:
        made = _new_backgrounds(market, config.backgrounds, steps, notes, progress)
        if made is not None:
            new_elements = made if new_elements is None else pd.concat([new_elements, made], ignore_index=True)
        if new_elements is not None and len(new_elements):
            working = dataclasses.replace(market, elements=pd.concat([market.elements, new_elements],
                                                                      ignore_index=True))
            reward_model = reward_model.with_elements(new_elements)

    def reward(product_ids, combos) -> np.ndarray:
        return reward_model.predict(list(product_ids), [list(c) for c in combos])

    with steps("combination policy (behaviour cloning + policy gradient)"):
        saved = resume.finished("combo", "combination policy")
        if saved is not None:
            generator = ComboGenerator.load(saved, working, reward)
        else:
            checkpoint = resume.training("combo", "combination policy", COMBO_CHECKPOINT)
            generator = ComboTrainer(config.combo).fit(working, reward, progress=progress, checkpoint=checkpoint)
            resume.keep(generator, "combo")
    with steps("proposals"):
        proposals = generator.propose(working.products["product_id"].tolist(), k=config.top_k)
        proposals["predicted_ctr"] = reward(proposals["product_id"], proposals["elements"])
    with steps("render"):
        renderer = MarketRenderer(working, config=config.render)
        proposals = _render(renderer, proposals, staging, progress)
        fidelity = product_fidelity(working, proposals, staging, renderer=renderer)
    if not fidelity["passed"].all():
        bad = fidelity[~fidelity["passed"]]
        raise AdcraftError(
            f"{len(bad)} rendered proposals altered the product's pixels (first: {bad.iloc[0].to_dict()})"
        )
    reward_model.save(staging / "models" / "reward")
    generator.save(staging / "models" / "combo")
    logged = _best_logged(market, log, reward_model, config.prior_impressions)
    with steps("off-policy estimate"):
        ope, lifts = _estimate(market, proposals, reward_model, config, notes)
    with steps("cross-fitted evidence"):
        evidence = _evidence(market, proposals, generator, new_elements, config, notes, ope.get("lift"))
        lifts = evidence.products if evidence is not None else lifts
    if new_elements is not None and len(new_elements):
        used = {e for combo in proposals["elements"] for e in combo}
        new_elements = new_elements[new_elements["element_id"].isin(used)].reset_index(drop=True)
    write_proposals(staging, proposals[["product_id", "rank", "elements", "image", "product_bbox", "predicted_ctr"]],
                    new_elements if new_elements is not None and len(new_elements) else None)
    with steps("report"):
        from adcraft.pipeline.report import build_report, copy_logged_images

        logged_images = copy_logged_images(staging, working, logged)
        build_report(staging, working, proposals, logged, reward_model, ope, lifts, notes, generator.history,
                     logged_images, evidence)
        _write_products(staging, market, logged, logged_images, lifts)
    run = {
        "market": str(Path(market_dir).resolve()),
        "out": str(out.resolve()),
        "config": to_mapping(config),
        "seeds": {"reward": config.reward.train.seed, "combo": config.combo.seed},
        "versions": _versions(),
        "counts": {
            "products": len(market.products),
            "proposals": len(proposals),
            "new_elements": 0 if new_elements is None else len(new_elements),
        },
        "ope": ope,
        "evidence": evidence.to_json() if evidence is not None else {"possible": False},
        "fidelity": {"checked": len(fidelity), "passed": int(fidelity["passed"].sum())},
        "notes": notes,
        "resumed_from": resume.reused or None,
        "timings": steps.timings,
    }
    return OptimizeResult(out, proposals, run)


PRODUCT_COLUMNS = (
    "product_id", "current_creative_id", "current_image", "current_elements", "current_logged_ctr",
    "current_predicted_ctr", "lift_impressions", "estimated_lift", "lift_low", "lift_high", "keep_current",
)


def _write_products(staging: Path, market: Market, logged: pd.DataFrame, logged_images: dict[str, str],
                    lifts: pd.DataFrame | None) -> None:
    """``OUT/products.parquet``: per product, the creative shown now and the estimated lift of proposal #1.

    An optional output beside the contract's ``creatives.parquet`` (one row per product of the market),
    read by the review page. Columns: ``PRODUCT_COLUMNS``; the current creative is the best logged one
    (null when the product has none), ``current_image`` is relative to OUT; the lift columns are the
    per-product lift and its interval (the cross-fitted evidence's when there is one, else the off-policy
    estimate's; NaN when no estimate was possible); ``keep_current`` is True where the lower bound is not above 0
    or unknown (do no harm: keep showing the current creative).
    """
    lift_rows = lifts.set_index("product_id") if lifts is not None else None
    rows = []
    for pid in market.products["product_id"]:
        has_logged = pid in logged.index
        best = logged.loc[pid] if has_logged else None
        lift = lift_rows.loc[pid] if lift_rows is not None and pid in lift_rows.index else None
        rows.append((
            pid,
            best["creative_id"] if has_logged else None,
            logged_images.get(pid),
            [str(e) for e in best["elements"]] if has_logged else None,
            float(best["ctr"]) if has_logged else np.nan,
            float(best["predicted_ctr"]) if has_logged else np.nan,
            int(lift["impressions"]) if lift is not None else 0,
            float(lift["lift"]) if lift is not None else np.nan,
            float(lift["lift_low"]) if lift is not None else np.nan,
            float(lift["lift_high"]) if lift is not None else np.nan,
            not (lift is not None and float(lift["lift_low"]) > 0),
        ))
    frame = pd.DataFrame(rows, columns=list(PRODUCT_COLUMNS))
    table = pa.Table.from_pandas(frame, preserve_index=False, schema=pa.schema([
        ("product_id", pa.string()), ("current_creative_id", pa.string()), ("current_image", pa.string()),
        ("current_elements", pa.list_(pa.string())), ("current_logged_ctr", pa.float64()),
        ("current_predicted_ctr", pa.float64()), ("lift_impressions", pa.int64()), ("estimated_lift", pa.float64()),
        ("lift_low", pa.float64()), ("lift_high", pa.float64()), ("keep_current", pa.bool_()),
    ]))
    pq.write_table(table, staging / "products.parquet")


def load_run_reward(run_dir: Path, market: Market) -> tuple[Market, MILModel]:
    """An optimize run's reward model (``OUT/models/reward``) and ``market`` extended with the elements the run
    made (``OUT/elements.parquet``, if any), which the model then scores by their words."""
    folder = Path(run_dir) / "models" / "reward"
    if not folder.is_dir():
        raise InputError(f"{folder} is missing: is {run_dir} the output of `adcraft optimize`?")
    model = MILModel.load(folder)
    extra_file = Path(run_dir) / "elements.parquet"
    if not extra_file.is_file():
        return market, model
    extra = read_extra_elements(extra_file, market)
    market = dataclasses.replace(market, elements=pd.concat([market.elements, extra], ignore_index=True))
    return market, model.with_elements(extra)


def read_extra_elements(path: Path, market: Market) -> pd.DataFrame:
    """Elements made by another run (``elements.parquet``, or a folder holding one), checked against ``market``."""
    from adcraft.market.coerce import typed_frame
    from adcraft.market.schema import ELEMENTS

    path = Path(path)
    file = path / "elements.parquet" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{file}: no such elements table")
    try:
        frame = pd.read_parquet(file)
    except (OSError, ValueError) as exc:
        raise InputError(f"{file}: not a readable Parquet table ({exc})") from exc
    typed = typed_frame(ELEMENTS, frame, file.name)
    problems = [str(p) for p in typed.problems]
    frame = typed.frame
    clash = sorted(set(frame.get("element_id", [])) & set(market.elements["element_id"]))
    if clash:
        problems.append(f"{file.name}: element ids already in the market: {clash[:5]}")
    slots = sorted(set(frame.get("slot", [])) - set(market.config.slots))
    if slots:
        problems.append(f"{file.name}: slots the market does not use: {slots}")
    owners = sorted(set(frame.get("product_id", pd.Series(dtype=object)).dropna()) - set(market.products["product_id"]))
    if owners:
        problems.append(f"{file.name}: products the market does not have: {owners[:5]}")
    if problems:
        raise InputError("; ".join(problems))
    return frame.reset_index(drop=True)


def _new_backgrounds(market: Market, step: BackgroundStep, steps: _Steps, notes: list[str], progress: bool
                     ) -> pd.DataFrame | None:
    if "background" not in market.config.slots:
        notes.append("Background generation was skipped: the market has no background slot.")
        return None
    try:
        with steps("background prompts (pairwise judge, prompt model, DPO/PCPO rounds)"):
            return generate_backgrounds(market, step.generator, progress=progress)
    except InputError as exc:
        notes.append(f"Background generation was skipped: {exc}")
        return None


def _file_stem(product_id: str, rank: int, seen: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", product_id)[:60].strip("._") or "product"
    name, k = f"{stem}-{rank}", 1
    while name in seen:
        k += 1
        name = f"{stem}~{k}-{rank}"
    seen.add(name)
    return name


def _render(renderer: MarketRenderer, proposals: pd.DataFrame, staging: Path, progress: bool) -> pd.DataFrame:
    from rich.progress import track

    images, boxes, seen = [], [], set()
    folder = staging / "creatives"
    folder.mkdir(parents=True, exist_ok=True)
    rows = list(zip(proposals["product_id"], proposals["rank"], proposals["elements"]))
    for pid, rank, combo in track(rows, description="rendering proposals", disable=not progress, transient=True):
        creative = renderer.render(pid, list(combo))
        name = f"creatives/{_file_stem(str(pid), int(rank), seen)}.png"
        write_png(staging / name, creative.image)
        images.append(name)
        boxes.append([int(v) for v in creative.product_bbox])
    return proposals.assign(image=images, product_bbox=boxes)


def _best_logged(market: Market, log: pd.DataFrame, model: MILModel, prior_impressions: float) -> pd.DataFrame:
    """Each product's best logged creative (``best_logged_creatives``), with its logged and predicted CTR."""
    best = best_logged_creatives(log, prior_impressions)
    images = market.creatives.set_index("creative_id")["image"] if "image" in market.creatives else None
    best["image"] = [images.get(c) if images is not None else None for c in best["creative_id"]]
    best["elements"] = [list(e) for e in best["elements"]]
    best["predicted_ctr"] = model.predict(best.index.tolist(), best["elements"].tolist())
    return best


def _estimate(market: Market, proposals: pd.DataFrame, model: MILModel, config: OptimizeConfig,
              notes: list[str]) -> tuple[dict, pd.DataFrame | None]:
    """The proposals' off-policy value against the logging policy, overall and per product (or why not)."""
    policy = ProposalPolicy(config.policy)
    try:
        arrays = policy_arrays(market, proposals, config.estimator, policy, model.predict)
        value = estimate_proposals(market, proposals, config.estimator, policy, n_bootstrap=config.n_bootstrap,
                                   arrays=arrays)
        lifts = lift_by_product(market, proposals, model.predict, config.estimator, policy,
                                n_bootstrap=min(config.n_bootstrap, 300), arrays=arrays)
    except InputError as exc:
        notes.append(f"Off-policy estimation was not possible: {exc}")
        return {"possible": False, "reason": str(exc)}, None
    notes.extend(f"Off-policy estimate: {warning}." for warning in value.warnings)
    share = value.matched_impressions / max(value.impressions, 1)
    if share < 0.01:
        notes.append(
            f"Only {value.matched_impressions} of {value.impressions} logged impressions showed a proposed creative: "
            f"the {config.estimator} estimate rests almost entirely on the reward model's predictions, and its "
            "interval covers the logs' sampling noise, not the model's error. Confirm the lift with an A/B test "
            "before rolling out."
        )
    return {"possible": True, **value.to_json()}, lifts


def _evidence(market: Market, proposals: pd.DataFrame, generator: ComboGenerator, new_elements: pd.DataFrame | None,
              config: OptimizeConfig, notes: list[str], self_graded_lift: float | None) -> Evidence | None:
    """The cross-fitted evidence (``evaluate.evidence``): judges fitted as the run's on each half of the logs,
    choosing as the run chose, grading each other's picks; None (with a note) where the logs cannot support it."""
    if not config.evidence.enabled:
        return None

    def fit(part: Market) -> MILModel:
        judge = MILTrainer(config.reward).fit(part)
        return judge.with_elements(new_elements) if new_elements is not None and len(new_elements) else judge

    def choose(judge: MILModel) -> pd.DataFrame:
        return generator.propose(market.products["product_id"].tolist(), k=config.top_k, reward=judge.predict)

    try:
        return proposal_evidence(market, proposals, fit, choose, config.evidence, ProposalPolicy(config.policy),
                                 self_graded_lift)
    except InputError as exc:
        notes.append(f"Cross-fitted evidence was not possible: {exc}")
        return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("adcraft", "torch", "numpy", "pandas", "pyarrow", "pillow"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out
