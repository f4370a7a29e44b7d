"""The main job: a market in, better creatives out, with the evidence.

``optimize`` runs ``check_inputs`` and then these stages over one ``RunState`` (what each stage hands
the next), each a function below:

1. ``train_judges``: the reward model (GenCO multi-instance, on cached text features) and the judge that
   chooses and values the proposals (``OptimizeConfig.judge``);
2. ``new_backgrounds`` (optional): new background prompts (CAIG prompt model with DPO/PCPO, judged by the
   pairwise reward model, and taught by reviewers' approved-over-rejected background pairs with ``--decisions``,
   whose creative pairs also join the pairwise reward model's training pairs);
3. ``extend_market``: the market with the elements other runs or step 2 made, known to the reward model;
4. ``train_generator``: the combination policy (behaviour cloning, then policy gradient against the
   reward model);
5. ``propose``: the top-K combinations per product, with their predicted CTR (with a brand file, only
   combinations it allows, ``generate.brand``, and spares to replace those refused after rendering; with
   reviewers' decisions, none they rejected last and the ones they approved last among the candidates,
   ranked by the CTR times a learned P(approve), ``pipeline.reviews``);
6. ``estimate``: the off-policy estimate of the proposals against the logging policy (an ``Estimate``),
   graded by the judge that chose them (shown labelled as such, never as evidence);
7. ``cross_fit`` (unless ``evidence.enabled`` is off): the cross-fitted evidence (``evaluate.evidence``):
   the conservative lift, per product and for the set, the backtest and a launch plan;
8. ``keep_unproven``: do no harm: a product whose proposal the evidence does not show to be better launches
   nothing; its rank 1 is a row marked ``kept`` standing for what runs now (every product's, when there is no
   evidence);
9. ``choose_render_settings``: where each proposal's product photo sits (scale, position), best-of-N by the
   demand utility of the logged images where the held-out logs show it predicts clicks (``generate.placement``,
   ``placement.enabled``), else the default placement; recorded in ``creatives.parquet``;
10. ``render``: each proposal drawn with its placement, and checked to show the product's own pixels unaltered
   (``evaluate.fidelity``; a run that would break that fails); with a brand file, each rendered proposal
   is checked against it too (product area, title as laid out) and a refused one is replaced by the next
   (a kept creative stays, marked with what the brand says of it);
11. ``write_outputs``: ``OUT/creatives.parquet`` (+ ``elements.parquet`` for generated elements),
   ``OUT/products.parquet`` (per product, the creative shown now and the estimated lift of proposal #1),
   ``OUT/report.html`` and the trained models under ``OUT/models/`` (``reward``: the multi-instance
   model, ``combo``: the policy).

``OUT/run.json`` is then written from a ``RunRecord`` (settings, versions, counts, estimate, fidelity,
notes, the time of each stage), which ``RunRecord.load`` reads back.

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
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
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
from adcraft.configuration import check_config, from_mapping, to_mapping
from adcraft.errors import AdcraftError, InputError
from adcraft.evaluate.evidence import ChooseWith, Evidence, EvidenceConfig, FitJudge, proposal_evidence
from adcraft.evaluate.fidelity import product_fidelity
from adcraft.evaluate.proposal_value import (
    ProposalPolicy,
    estimate_proposals,
    policy_arrays,
)
from adcraft.features.cache import file_sha256
from adcraft.generate.backgrounds import BackgroundsConfig, generate_backgrounds
from adcraft.generate.brand import Brand, brand_columns, load_brand
from adcraft.generate.combo import CHECKPOINT_FILE as COMBO_CHECKPOINT
from adcraft.generate.combo import ComboConfig, ComboGenerator, ComboTrainer
from adcraft.generate.placement import PlacementSearchConfig, choose_placements, placement_columns
from adcraft.generate.preference import ReviewedPrompt
from adcraft.learning.artifacts import CONFIG_FILE
from adcraft.learning.checkpoint import fingerprint
from adcraft.learning.checkpoint import position as checkpoint_position
from adcraft.learning.training import CHECKPOINT_FILE as FIT_CHECKPOINT
from adcraft.market import Market, load_market, write_proposals
from adcraft.market.click_log import best_logged_creatives, click_log
from adcraft.market.extra import read_extra_elements, with_extra_elements
from adcraft.market.outputs import write_products
from adcraft.pipeline.reviews import (
    ReviewerConfig,
    ReviewerPreference,
    approvals,
    background_pairs,
    fit_reviewer_preference,
    latest_decisions,
    preference_pairs,
    read_decisions,
    rejections,
)
from adcraft.pipeline.run_record import (
    RUN_ID_FIELD,
    Counts,
    EvidenceRecord,
    FidelityCheck,
    OffPolicyRecord,
    Seeds,
    StageTimings,
    Versions,
    content_run_id,
    read_run_json,
    record_parts,
)
from adcraft.render.backend import RenderConfig
from adcraft.render.compositor import PLACEMENT_COLUMNS, Placement, placements_of
from adcraft.render.from_market import MarketRenderer
from adcraft.rewards.additive import AdditiveConfig, AdditiveJudge, choose_judge, fit_additive
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
    # Which judge chooses and values the proposals: "auto" takes the multi-instance model or the additive logistic
    # one, whichever predicts the latest 20% of the log better (rewards.additive.choose_judge); "mil" or
    # "additive" fixes it. The additive judge's cross-fitted evidence overstated the lift on the benchmark worlds
    # (docs/results.md, "Judge: additive as the default, tried and withdrawn").
    judge: Literal["auto", "mil", "additive"] = "auto"
    additive: AdditiveConfig = field(default_factory=AdditiveConfig)
    prior_impressions: float = 200.0  # shrinkage of logged CTRs toward the product's (best_logged_creatives)
    render: RenderConfig = field(default_factory=RenderConfig)  # compositor (default) or diffusion backgrounds
    # How reviewers' decisions of earlier runs (--decisions) steer the proposal search (pipeline.reviews).
    reviewers: ReviewerConfig = field(default_factory=ReviewerConfig)
    # Render settings as decisions: each proposal's photo scale and position chosen best-of-N by the demand
    # utility h(v) of the logged images, where the held-out logs show h predicts (generate.placement).
    placement: PlacementSearchConfig = field(default_factory=PlacementSearchConfig)

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


# --------------------------------------------------------------------------- run.json, as a record


@dataclass(frozen=True)
class RunRecord:
    """Everything ``OUT/run.json`` says about a run of ``optimize``: where it read and wrote, its settings
    and seeds, the versions it ran on, what it made, the off-policy estimate, the fidelity check, the notes
    of the report, what it reused from an interrupted attempt (label -> what; empty when nothing) and the
    time of each stage. ``to_json`` gives run.json's content, ``load`` reads and checks it."""

    market: Path
    out: Path
    config: OptimizeConfig
    seeds: Seeds
    versions: Versions
    counts: Counts
    ope: OffPolicyRecord
    evidence: EvidenceRecord
    fidelity: FidelityCheck
    notes: tuple[str, ...]
    resumed_from: dict[str, str]
    timings: StageTimings

    def to_json(self) -> dict[str, Any]:
        """run.json's content, led by ``run_id`` (``content_run_id`` of the rest), which names the run in the
        logs of a database that several runs share."""
        content = {
            "market": str(self.market),
            "out": str(self.out),
            "config": to_mapping(self.config),
            "seeds": dataclasses.asdict(self.seeds),
            "versions": dataclasses.asdict(self.versions),
            "counts": dataclasses.asdict(self.counts),
            "ope": self.ope.to_json(),
            "evidence": self.evidence.to_json(),
            "fidelity": dataclasses.asdict(self.fidelity),
            "notes": list(self.notes),
            "resumed_from": dict(self.resumed_from) or None,
            "timings": self.timings.to_json(),
        }
        return {RUN_ID_FIELD: content_run_id(content), **content}

    def write(self, path: Path) -> Path:
        """Write run.json at ``path`` (strict JSON: a non-finite number is written as null)."""
        return write_json(path, self.to_json(), default=str)

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        """Read the ``run.json`` at ``path``; ``InputError`` naming the file and the field for a file that is
        missing, not JSON or not a run record (a number written as null reads back as NaN)."""
        data = read_run_json(path)
        if "config" not in data:
            raise InputError(f"{path}: missing field 'config'")
        config = from_mapping(OptimizeConfig, data["config"], f"{path}: config")
        return cls(config=config, **record_parts(data, str(path)))


@dataclass(frozen=True)
class OptimizeResult:
    """What ``optimize`` returns: the output folder, the proposals it wrote and the run's record."""

    out: Path
    proposals: pd.DataFrame
    record: RunRecord

    @property
    def run(self) -> dict[str, Any]:
        """run.json's content as plain data (``record.to_json()``)."""
        return self.record.to_json()


# --------------------------------------------------------------------------- what one stage hands the next


@dataclass(frozen=True, eq=False)
class RunInputs:
    """What ``check_inputs`` found usable: the market as loaded, its click log, the extra elements and the
    brand guardrails (None without a brand file)."""

    market_dir: Path
    out: Path
    market: Market
    log: pd.DataFrame
    extra: pd.DataFrame | None
    brand: Brand | None = None
    rejected: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)  # per product, by reviewers
    approved: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)  # per product, by reviewers
    reviewer: ReviewerPreference | None = None  # the learned reviewer (pipeline.reviews), with --decisions
    reviewer_note: str | None = None  # why there is no learned reviewer despite --decisions
    reviewed_backgrounds: tuple[ReviewedPrompt, ...] = ()  # reviewers' prompt pairs for the background step
    reviewed_creatives: pd.DataFrame | None = None  # their approved-over-rejected pairs, for its pairwise judge


@dataclass(frozen=True, eq=False)
class Estimate:
    """What the ``estimate`` stage finds: run.json's ``ope`` and the notes it adds to the report."""

    ope: OffPolicyRecord
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class RunState:
    """What one stage of ``optimize`` hands the next: the inputs and settings, then each stage's product.

    A stage takes the state and returns it with its own fields set (``dataclasses.replace``); the fields
    after ``notes`` are None until the stage named beside them has run. ``market`` is the market the
    proposals draw on: the input market with the elements of other runs and ``new_backgrounds``.
    """

    inputs: RunInputs
    config: OptimizeConfig
    staging: Path
    resume: _Resume
    progress: bool
    notes: tuple[str, ...] = ()
    reward_model: MILModel | None = None  # train_judges, then extend_market (saved, served, explains the report)
    judge: Any = None  # train_judges, then extend_market: the judge that chooses and values the proposals
    made_elements: pd.DataFrame | None = None  # new_backgrounds
    new_elements: pd.DataFrame | None = None  # extend_market: extra + made elements; write_outputs keeps the used
    market: Market | None = None  # extend_market
    generator: ComboGenerator | None = None  # train_generator
    proposals: pd.DataFrame | None = None  # propose, then render (image, product_bbox)
    fidelity: pd.DataFrame | None = None  # render
    estimate: Estimate | None = None  # estimate
    evidence: Evidence | None = None  # cross_fit (None: switched off or not possible, with a note)


class _StageClock:
    """Wall-clock time of each stage, with a status line per stage when asked to talk."""

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
             extra_elements: Path | None = None, fresh: bool = False, brand: Path | None = None,
             decisions: str | None = None) -> OptimizeResult:
    """Run the main job on the market at ``market_dir`` and write its outputs to ``out``.

    ``extra_elements``: an ``elements.parquet`` written by another run (e.g. ``adcraft generate
    backgrounds``) whose elements the proposals may use beside the market's. ``brand``: a brand file
    (``generate.brand``) that every proposal keeps to; it only steers proposing and rendering, so a
    resumed run reuses the trained models whatever the brand. ``decisions``: the review page's database of earlier
    runs (a SQLAlchemy URL or an SQLite file, ``pipeline.reviews``): combinations reviewers rejected last are not
    proposed again, and a reviewer preference learned from every decision steers the proposal search
    (``OptimizeConfig.reviewers``).

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
    clock = _StageClock(progress)
    started = time.perf_counter()
    with clock("validate market"):
        inputs = check_inputs(Path(market_dir), out, config, extra_elements, brand, decisions)
    shutil.rmtree(discarded, ignore_errors=True)  # left by a run killed while finishing
    run = _fingerprint(Path(market_dir), config, extra_elements)
    try:
        resumable = _open_staging(staging, run, fresh, clock)  # a new staging folder that cannot be written is removed
        state = RunState(inputs, config, staging, _Resume(staging / CHECKPOINTS, resumable), progress)
        state = _run_stages(state, clock)
        record = _run_record(state, clock.timings, total=round(time.perf_counter() - started, 2))
        record.write(staging / "run.json")
        mark_output(staging, "optimize")
        os.replace(staging / CHECKPOINTS, discarded)  # the staging folder now holds only the outputs
        (staging / RESUME_FILE).unlink()
        move_into_place(staging, out)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(discarded, ignore_errors=True)
        raise
    shutil.rmtree(discarded, ignore_errors=True)
    return OptimizeResult(out, state.proposals, record)


def _run_stages(state: RunState, clock: _StageClock) -> RunState:
    """The stages of ``optimize`` (numbered as in the module docstring) in order, each timed under its name."""
    with clock("reward model (multi-instance)"):
        state = train_judges(state)  # 1
    if state.config.backgrounds.enabled:
        state = new_backgrounds(state, clock)  # 2 (timed when it makes prompts)
    elif state.inputs.reviewed_backgrounds:
        state = _noted(state, f"Review decisions: {len(state.inputs.reviewed_backgrounds)} pair(s) of background "
                              "prompts (approved over rejected) were not learned from: background generation is "
                              "off (backgrounds.enabled).")
    state = extend_market(state)  # 3
    with clock("combination policy (behaviour cloning + policy gradient)"):
        state = train_generator(state)  # 4
    with clock("proposals"):
        state = propose(state)  # 5
    with clock("off-policy estimate"):
        found = estimate(state)  # 6
        state = dataclasses.replace(state, estimate=found, notes=state.notes + found.notes)
    if state.config.evidence.enabled:
        with clock("cross-fitted evidence"):
            state = cross_fit(state)  # 7
    state = keep_unproven(state)  # 8
    with clock("render settings (best-of-N)"):
        state = choose_render_settings(state)  # 9
    with clock("render"):
        state = render(state)  # 10
    with clock("report"):
        state = write_outputs(state)  # 11
    return state


def check_inputs(market_dir: Path, out: Path, config: OptimizeConfig, extra_elements: Path | None,
                 brand: Path | None = None, decisions: str | None = None) -> RunInputs:
    """Load and validate the market, and refuse before anything is written a market the reward model cannot
    learn from (no click log), extra elements that do not fit it, a brand file that contradicts itself or
    the market (``load_brand``) and a renderer that cannot run."""
    market = load_market(market_dir)
    log = click_log(market)
    extra = read_extra_elements(extra_elements, market) if extra_elements is not None else None
    guardrails = None
    if brand is not None:
        guardrails = load_brand(brand, with_extra_elements(market, extra) if extra is not None else market)
    config.render.check_available()
    if decisions is None:
        return RunInputs(market_dir, out, market, log, extra, guardrails)
    found = read_decisions(decisions)
    reviewer = fit_reviewer_preference(found, config.reviewers)
    learned = not isinstance(reviewer, str)
    note = None if learned else f"Review decisions: no reviewer preference was learned ({reviewer})."
    return RunInputs(market_dir, out, market, log, extra, guardrails, rejections(found), approvals(found),
                     reviewer=reviewer if learned else None, reviewer_note=note,
                     reviewed_backgrounds=tuple(background_pairs(
                         found, with_extra_elements(market, extra) if extra is not None else market)),
                     reviewed_creatives=preference_pairs(latest_decisions(found, ["product_id", "elements"])))


def train_judges(state: RunState) -> RunState:
    """The multi-instance reward model (GenCO) on the market's logs: an interrupted attempt's finished model
    when there is one, else trained (from its last checkpoint, if any) and kept for a resumed run."""
    resume, market = state.resume, state.inputs.market
    saved = resume.finished("reward", "reward model")
    if saved is not None:
        model = MILModel.load(saved)
    else:
        checkpoint = resume.training("reward", "reward model", FIT_CHECKPOINT)
        model = MILTrainer(state.config.reward).fit(market, progress=state.progress, checkpoint=checkpoint)
        resume.keep(model, "reward")
    return _with_judge(dataclasses.replace(state, reward_model=model))


def additive_config(config: OptimizeConfig) -> AdditiveConfig:
    """The additive judge's settings, with the multi-instance model's time split (they are compared on it)."""
    return dataclasses.replace(config.additive, split=config.reward.split)


def _with_judge(state: RunState) -> RunState:
    """The judge that chooses the proposals (``run_judge``), with its note."""
    judge, note = run_judge(state.config, state.inputs.log, state.reward_model)
    return dataclasses.replace(_noted(state, note), judge=judge)


def run_judge(config: OptimizeConfig, log: pd.DataFrame, reward_model: MILModel) -> tuple[object, str]:
    """The judge that chooses the proposals (``OptimizeConfig.judge``: ``reward_model``, the additive judge fitted
    on the click ``log``, or whichever of the two predicts the latest part of the log better), and a note saying
    which and why."""
    if config.judge == "mil":
        return reward_model, "The multi-instance model chooses and values the proposals (judge: mil)."
    if config.judge == "additive":
        note = ("The additive logistic model (elements and product) chooses and values the proposals (judge: "
                "additive); the multi-instance model explains the report.")
        return fit_additive(log, additive_config(config)), note
    try:
        judge, choice = choose_judge(log, reward_model, additive_config(config))
    except InputError as exc:
        return reward_model, (f"The multi-instance model chooses the proposals: the log could not be split to "
                              f"compare judges ({exc}).")
    name = {"mil": "multi-instance model", "additive": "additive logistic model"}
    other = "additive" if choice.chosen == "mil" else "mil"
    loss, within = choice.held_out_log_loss, choice.within_product
    note = (f"The {name[choice.chosen]} chooses and values the proposals: on the latest part of the log "
            f"({choice.held_out_impressions} impressions) its log loss per impression was "
            f"{loss[choice.chosen]:.5f}, against {loss[other]:.5f} for the {name[other]}; the mean log-probability "
            f"of which creative of its product got each of the {choice.held_out_clicks} clicks there was "
            f"{within['mil']:.4f} for the multi-instance model and {within['additive']:.4f} for the additive one.")
    return judge, note


def new_backgrounds(state: RunState, clock: _StageClock) -> RunState:
    """New background prompts (CAIG: pairwise judge, prompt model, DPO/PCPO rounds), timed when they are made;
    a market without a background slot, or one the prompt model cannot learn from, gets a note instead."""
    market, step = state.inputs.market, state.config.backgrounds
    if "background" not in market.config.slots:
        return _noted(state, "Background generation was skipped: the market has no background slot.")
    reviewed, creatives = state.inputs.reviewed_backgrounds, state.inputs.reviewed_creatives
    try:
        with clock("background prompts (pairwise judge, prompt model, DPO/PCPO rounds)"):
            made = generate_backgrounds(market, step.generator, progress=state.progress, reviewed=reviewed,
                                        reviewed_creatives=creatives)
    except InputError as exc:
        return _noted(state, f"Background generation was skipped: {exc}")
    if reviewed:
        state = _noted(state, f"Review decisions: {len(reviewed)} pair(s) of background prompts (approved over "
                              "rejected) joined every preference round of the prompt model that writes new "
                              "backgrounds, but for those whose product or words it does not know.")
    if creatives is not None and len(creatives):
        from adcraft.rewards.pairwise import reviewed_pairs

        used = len(reviewed_pairs(creatives, market))
        state = _noted(state, f"Review decisions: {used} of {len(creatives)} approved-over-rejected creative "
                              "pair(s) joined the training pairs of the pairwise reward model that judges new "
                              "backgrounds (the others name products or elements the market does not have).")
    return dataclasses.replace(state, made_elements=made)


def extend_market(state: RunState) -> RunState:
    """The market the proposals draw on: the input market with the new elements (the extra elements given to
    the run and the generated backgrounds), which the reward model then scores by their words."""
    new = [frame for frame in (state.inputs.extra, state.made_elements) if frame is not None]
    new_elements = pd.concat(new, ignore_index=True) if len(new) > 1 else (new[0] if new else None)
    if new_elements is None or not len(new_elements):
        return dataclasses.replace(state, new_elements=new_elements, market=state.inputs.market)
    return dataclasses.replace(state, new_elements=new_elements,
                               market=with_extra_elements(state.inputs.market, new_elements),
                               reward_model=state.reward_model.with_elements(new_elements),
                               judge=state.judge.with_elements(new_elements))


def train_generator(state: RunState) -> RunState:
    """The combination policy (GenCO: behaviour cloning on the logged creatives, then policy gradient against
    the reward model), loaded or resumed like the reward model."""
    resume, reward = state.resume, reward_function(state.judge)
    saved = resume.finished("combo", "combination policy")
    if saved is not None:
        return dataclasses.replace(state, generator=ComboGenerator.load(saved, state.market, reward))
    checkpoint = resume.training("combo", "combination policy", COMBO_CHECKPOINT)
    generator = ComboTrainer(state.config.combo).fit(state.market, reward, progress=state.progress,
                                                     checkpoint=checkpoint)
    resume.keep(generator, "combo")
    return dataclasses.replace(state, generator=generator)


def propose(state: RunState) -> RunState:
    """The policy's top-K distinct combinations per product, with the reward model's predicted CTR; with a brand,
    the top 2K it allows (``render`` keeps the first K that it still allows once drawn). With reviewers'
    decisions, the combinations they approved last that the market (and brand) still allows join the
    candidates and are ranked like the others, so a creative served after approval can stay proposed."""
    brand, k = state.inputs.brand, state.config.top_k
    approved = state.generator.allowed_combinations(state.inputs.approved, brand=brand)
    proposals = state.generator.propose(state.market.products["product_id"].tolist(), k=k if brand is None else 2 * k,
                                        brand=brand, exclude=state.inputs.rejected, include=approved,
                                        reward=_search_reward(state.inputs, state.judge))
    proposals["predicted_ctr"] = reward_function(state.judge)(proposals["product_id"], proposals["elements"])
    if state.inputs.approved:
        offered = sum(len(combos) for combos in state.inputs.approved.values())
        joined = {(p, c) for p, combos in approved.items() for c in combos}
        proposed = sum((p, tuple(e)) in joined for p, e in zip(proposals["product_id"], proposals["elements"]))
        state = _noted(state, f"Review decisions: {len(joined)} of {offered} combinations approved last by "
                              f"reviewers joined the candidates of {len(approved)} products (the others name a product "
                              "or element the market no longer has, or one the brand refuses); "
                              f"{proposed} of them are among the proposals.")
    if state.inputs.rejected:
        rejected = sum(len(combos) for combos in state.inputs.rejected.values())
        state = _noted(state, f"Review decisions: {rejected} combinations rejected last by reviewers on "
                              f"{len(state.inputs.rejected)} products are not proposed again.")
    reviewer = state.inputs.reviewer
    if reviewer is not None or state.inputs.reviewer_note is not None:
        state = _noted(state, reviewer.note() if reviewer is not None else state.inputs.reviewer_note)
    return dataclasses.replace(state, proposals=proposals)


def _search_reward(inputs: RunInputs, judge):
    """What the proposal search ranks by: the judge's CTR, times the learned reviewer's P(approve) ** strength
    when there is one (``pipeline.reviews``; 1 for a combination reviewers approved last). The combination
    policy itself is trained on the judge alone."""
    reward = reward_function(judge)
    return reward if inputs.reviewer is None else inputs.reviewer.steer(reward, inputs.approved)


def choose_render_settings(state: RunState) -> RunState:
    """Each proposal's placement of the product photo (``generate.placement``): best-of-N by the demand utility of
    the logged images where the held-out logs show it predicts clicks, else the default; kept rows keep it."""
    renderer = MarketRenderer(state.market, config=state.config.render)
    choice = choose_placements(state.inputs.market, state.inputs.log, state.proposals,
                               lambda pid, combo, placement: renderer.compositor.render(
                                   renderer.spec(pid, combo, placement), canvas=state.market.config.canvas),
                               state.config.placement, progress=state.progress)
    if state.config.placement.enabled:
        state = _noted(state, choice.note())
    return dataclasses.replace(state, proposals=state.proposals.assign(**placement_columns(choice.placements)))


def render(state: RunState) -> RunState:
    """Each proposal drawn into ``creatives/`` of the staging folder (``image``, ``product_bbox``), and checked
    to show the product's own pixels unaltered; ``AdcraftError`` when one does not."""
    renderer = MarketRenderer(state.market, config=state.config.render)
    brand = state.inputs.brand
    if brand is None:
        proposals = _render(renderer, state.proposals, state.staging, state.progress)
    else:
        proposals = _render_within_brand(renderer, state.proposals, brand, state.config.top_k, state.staging,
                                         state.progress)
        kept = int(proposals["brand_compliant"].sum())
        state = _noted(state, f"Brand guardrails ({brand.source}): {kept} of {len(proposals)} proposals keep to "
                              "the brand" + ("." if kept == len(proposals) else
                                             "; the others are the only ones their products had (see each card)."))
    fidelity = product_fidelity(state.market, proposals, state.staging, renderer=renderer)
    if not fidelity["passed"].all():
        bad = fidelity[~fidelity["passed"]]
        raise AdcraftError(
            f"{len(bad)} rendered proposals altered the product's pixels (first: {bad.iloc[0].to_dict()})"
        )
    return dataclasses.replace(state, proposals=proposals, fidelity=fidelity)


def estimate(state: RunState) -> Estimate:
    """The proposals' off-policy value against the logging policy (or why not), graded by the judge that chose
    them: shown labelled as such, never as evidence, and not per product (the evidence gives those lifts)."""
    market, proposals, model, config = state.inputs.market, state.proposals, state.judge, state.config
    policy = ProposalPolicy(config.policy)
    try:
        arrays = policy_arrays(market, proposals, config.estimator, policy, model.predict)
        value = estimate_proposals(market, proposals, config.estimator, policy, n_bootstrap=config.n_bootstrap,
                                   arrays=arrays)
    except InputError as exc:
        return Estimate(OffPolicyRecord(None, str(exc)), (f"Off-policy estimation was not possible: {exc}",))
    notes = [f"Off-policy estimate: {warning}." for warning in value.warnings]
    share = value.matched_impressions / max(value.impressions, 1)
    if share < 0.01:
        notes.append(
            f"Only {value.matched_impressions} of {value.impressions} logged impressions showed a proposed creative: "
            f"the {config.estimator} estimate rests almost entirely on the reward model's predictions, and its "
            "interval covers the logs' sampling noise, not the model's error. Confirm the lift with an A/B test "
            "before rolling out."
        )
    return Estimate(OffPolicyRecord(value), tuple(notes))


def cross_fit(state: RunState) -> RunState:
    """The cross-fitted evidence (``evaluate.evidence``) with ``cross_fit_judges``; a note instead where the logs
    cannot support it."""
    fit, choose = cross_fit_judges(state.inputs, state.config, state.judge, state.generator, state.new_elements)
    try:
        evidence = proposal_evidence(state.inputs.market, state.proposals, fit, choose, state.config.evidence,
                                     ProposalPolicy(state.config.policy), do_no_harm=True)
    except InputError as exc:
        return _noted(state, f"Cross-fitted evidence was not possible: {exc}")
    return dataclasses.replace(state, evidence=evidence)


def cross_fit_judges(inputs: RunInputs, config: OptimizeConfig, judge, generator: ComboGenerator,
                     new_elements: pd.DataFrame | None = None) -> tuple[FitJudge, ChooseWith]:
    """What the cross-fitting fits and chooses with: a judge of the kind the run chose (``judge``) fitted on a part
    of the market (knowing the run's ``new_elements``), and the proposals ``generator`` makes with such a judge as
    the run made its own (the inputs' brand, reviewers' decisions and learned reviewer)."""
    products = inputs.market.products["product_id"].tolist()

    def fit(part: Market):
        if isinstance(judge, AdditiveJudge):  # the kind the run chose, fitted on the part
            fitted = fit_additive(click_log(part), additive_config(config))
        else:
            fitted = MILTrainer(config.reward).fit(part)
        return fitted.with_elements(new_elements) if new_elements is not None and len(new_elements) else fitted

    def choose(half: MILModel) -> pd.DataFrame:
        return generator.propose(products, k=config.top_k, reward=_search_reward(inputs, half), brand=inputs.brand,
                                 exclude=inputs.rejected, include=inputs.approved)

    return fit, choose


def _kept_creatives(state: RunState) -> pd.DataFrame:
    """Per product, the creative a kept row shows: of what runs now, its best logged creative
    (``best_logged_creatives``: the highest observed CTR shrunk toward the product's with
    ``prior_impressions`` pseudo-impressions; with a brand file, the best of those the brand allows, if any).

    A kept row launches nothing (its product's logging policy, which may rotate several creatives, stays); the
    creative it shows is the one to keep if a single creative must be picked from what runs now. The best logged
    one rather than the one the policy shows most: where the house default is no better than the creatives the
    policy explores, the most shown one is below what the rotation earns about half the time."""
    log, brand = state.inputs.log, state.inputs.brand
    if brand is not None:  # checked once per logged creative, not per row of the log
        market = state.market or state.inputs.market
        creatives = log.drop_duplicates("creative_id")
        allowed = {c for c, p, e in zip(creatives["creative_id"], creatives["product_id"], creatives["elements"])
                   if not brand.combination_problems(market, p, list(e))}
        log = log[log["creative_id"].isin(allowed)]
    shown = best_logged_creatives(log, state.config.prior_impressions)
    return pd.DataFrame({"product_id": shown.index, "elements": [list(e) for e in shown["elements"]]})


def keep_unproven(state: RunState) -> RunState:
    """Do no harm: where the cross-fitted evidence does not show a product's proposal to be better than what
    runs now (``keep_current``: the lower bound of its lift is not above 0), nothing is launched for the product:
    its rank 1 is a row marked ``kept`` that stands for what runs now (its logging policy, which may rotate
    several creatives), showing its best logged creative (``_kept_creatives``, rendered with the proposals);
    its proposals follow as ranks 2..K for review. ``evidence.lift`` is the cross-fitted lift of
    this set, the kept products at no change.

    Without evidence (switched off, or not possible on these logs) nothing is shown to be better, so every
    product keeps what runs now, and a note says why. A product with nothing to keep (no logged creative, or none
    that the brand allows) keeps its proposal as rank 1, untested, and the note names it."""
    if state.evidence is None:
        to_keep = set(state.proposals["product_id"])
    else:
        products = state.evidence.products
        to_keep = set(products.loc[products["keep_current"], "product_id"])
    current = _kept_creatives(state)
    current = current[current["product_id"].isin(to_keep)].assign(rank=0).reset_index(drop=True)
    kept = set(current["product_id"])
    untested = to_keep - kept
    state = _noted(state, _do_no_harm_note(state, kept, untested))
    if untested and state.evidence is not None:  # what the evidence keeps is what can be kept
        products = state.evidence.products
        products = products.assign(keep_current=products["keep_current"] & ~products["product_id"].isin(untested))
        state = dataclasses.replace(state, evidence=dataclasses.replace(state.evidence, products=products))
    proposals = state.proposals.assign(kept=False)
    if not kept:
        return dataclasses.replace(state, proposals=proposals)
    current["predicted_ctr"] = reward_function(state.judge)(current["product_id"], current["elements"])
    merged = pd.concat([proposals, current.assign(kept=True)], ignore_index=True)
    merged = merged.sort_values(["product_id", "rank"], kind="stable").reset_index(drop=True)
    merged = merged[~pd.Series([(p, tuple(e)) for p, e in zip(merged["product_id"], merged["elements"])]).duplicated()]
    merged["rank"] = merged.groupby("product_id").cumcount() + 1
    if state.inputs.brand is None:  # with a brand, render keeps the spares it may need
        merged = merged[merged["rank"] <= state.config.top_k].reset_index(drop=True)
    return dataclasses.replace(state, proposals=merged)


def _do_no_harm_note(state: RunState, kept: set[str], untested: set[str]) -> str:
    """The report's note on what do no harm kept (``kept``) and why, naming the products with nothing to keep
    (``untested``: no logged creative, or none that the brand allows)."""
    if state.evidence is None:
        why = ("the cross-fitted evidence is switched off (evidence.enabled: false)"
               if not state.config.evidence.enabled
               else "no cross-fitted evidence could be computed on these logs (see the note above)")
        note = (f"Do no harm: {why}, so no proposal is shown to be better than what runs now and nothing is "
                f"launched: for {len(kept)} of {len(kept | untested)} products rank 1 is marked kept (what runs now, "
                "shown by its best logged creative); the proposals follow it for review.")
    else:
        note = (f"Do no harm: for {len(kept)} of {len(state.evidence.products)} products the evidence does not show "
                "the proposal to be better than what runs now (the lower bound of its lift is not above 0), so nothing "
                "is launched for them: rank 1 is marked kept (what runs now, shown by its best logged creative: the "
                "highest observed CTR, shrunk toward the product's); the proposals follow it for review.")
    unlogged = untested - set(state.inputs.log["product_id"])
    for group, why in ((sorted(unlogged), "No logged creative"),
                       (sorted(untested - unlogged), "No logged creative that the brand allows")):
        if group:
            named = ", ".join(group[:3]) + (", ..." if len(group) > 3 else "")
            note += (f" {why} for {len(group)} of the products ({named}): nothing that runs now can be kept or "
                     "compared with, so their rank 1 is the proposal, untested by these logs (test it before relying "
                     "on it).")
    return note


def write_outputs(state: RunState) -> RunState:
    """The run's outputs in the staging folder: the trained models, ``creatives.parquet`` (and the generated
    elements the proposals use, ``elements.parquet``), the best logged creatives' images, ``report.html`` and
    ``products.parquet``. Returns the state with ``new_elements`` cut to the ones the proposals use."""
    from adcraft.pipeline.report import build_report, copy_logged_images

    staging, market, proposals, model = state.staging, state.market, state.proposals, state.reward_model
    model.save(staging / "models" / "reward")
    state.generator.save(staging / "models" / "combo")
    logged = _best_logged(state.inputs.market, state.inputs.log, state.judge, state.config.prior_impressions)
    new_elements = state.new_elements
    if new_elements is not None and len(new_elements):
        used = {e for combo in proposals["elements"] for e in combo}
        new_elements = new_elements[new_elements["element_id"].isin(used)].reset_index(drop=True)
    columns = ["product_id", "rank", "elements", "image", "product_bbox", "predicted_ctr"]
    columns += [c for c in (*PLACEMENT_COLUMNS, "kept", "brand_compliant", "brand_problems") if c in proposals]
    write_proposals(staging, proposals[columns],
                    new_elements if new_elements is not None and len(new_elements) else None)
    logged_images = copy_logged_images(staging, market, logged)
    build_report(staging, market, proposals, logged, model, state.estimate.ope.value, list(state.notes),
                 state.generator.history, logged_images, state.evidence)
    # per product, only the cross-fitted evidence's lift: a judge's grade of its own pick is not evidence
    write_products(staging, state.inputs.market, logged, logged_images,
                   state.evidence.products if state.evidence is not None else None,
                   set(proposals.loc[proposals["kept"], "product_id"]))
    return dataclasses.replace(state, new_elements=new_elements)


def _run_record(state: RunState, timings: dict[str, float], total: float) -> RunRecord:
    """The record run.json is written from, once every stage has run."""
    config = state.config
    return RunRecord(
        market=state.inputs.market_dir.resolve(),
        out=state.inputs.out.resolve(),
        config=config,
        seeds=Seeds(reward=config.reward.train.seed, combo=config.combo.seed),
        versions=Versions.installed(),
        counts=Counts(products=len(state.inputs.market.products), proposals=len(state.proposals),
                      new_elements=0 if state.new_elements is None else len(state.new_elements)),
        ope=state.estimate.ope,
        evidence=EvidenceRecord.of(state.evidence, state.config.evidence.enabled),
        fidelity=FidelityCheck(checked=len(state.fidelity), passed=int(state.fidelity["passed"].sum())),
        notes=state.notes,
        resumed_from=dict(state.resume.reused),
        timings=StageTimings(tuple(timings.items()), total),
    )


def _noted(state: RunState, note: str) -> RunState:
    return dataclasses.replace(state, notes=(*state.notes, note))


def reward_function(model):
    """The reward model as the combination policy asks for it: (product ids, combinations) -> CTRs."""

    def reward(product_ids, combos) -> np.ndarray:
        return model.predict(list(product_ids), [list(c) for c in combos])

    return reward


# --------------------------------------------------------------------------- staging and resuming


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


def _open_staging(staging: Path, run: str, fresh: bool, clock: _StageClock) -> bool:
    """Make the staging folder ready; True when it holds a resumable earlier attempt of this run."""
    marker = staging / RESUME_FILE
    if not fresh and marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") == run:
                clock.console.log(f"resuming an interrupted run from {staging}")
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
    return with_extra_elements(market, extra), model.with_elements(extra)


def _file_stem(product_id: str, rank: int, seen: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", product_id)[:60].strip("._") or "product"
    name, k = f"{stem}-{rank}", 1
    while name in seen:
        k += 1
        name = f"{stem}~{k}-{rank}"
    seen.add(name)
    return name


def _save_creative(staging: Path, pid: str, rank: int, creative, seen: set[str]) -> tuple[str, list[int]]:
    """Write a rendered proposal to ``creatives/`` of the staging folder: its path there and product bbox."""
    name = f"creatives/{_file_stem(str(pid), int(rank), seen)}.png"
    write_png(staging / name, creative.image)
    return name, [int(v) for v in creative.product_bbox]


def _render(renderer: MarketRenderer, proposals: pd.DataFrame, staging: Path, progress: bool) -> pd.DataFrame:
    from rich.progress import track

    images, boxes, seen = [], [], set()
    (staging / "creatives").mkdir(parents=True, exist_ok=True)
    rows = list(zip(proposals["product_id"], proposals["rank"], proposals["elements"], placements_of(proposals)))
    for pid, rank, combo, placement in track(rows, description="rendering proposals", disable=not progress,
                                             transient=True):
        name, box = _save_creative(staging, pid, rank, renderer.render(pid, list(combo), placement), seen)
        images.append(name)
        boxes.append(box)
    return proposals.assign(image=images, product_bbox=boxes)


def _render_within_brand(renderer: MarketRenderer, proposals: pd.DataFrame, brand: Brand, k: int, staging: Path,
                         progress: bool) -> pd.DataFrame:
    """Per product, the first ``k`` proposals (in rank order) that the brand allows once drawn
    (``Brand.combination_problems`` and ``rendered_problems``), ranked 1..k again, with ``brand_compliant``
    and ``brand_problems``. A product none of whose proposals keeps to the brand keeps its first one,
    marked with the reasons (every product has a row in ``creatives.parquet``)."""
    from rich.progress import track

    market = renderer.market
    (staging / "creatives").mkdir(parents=True, exist_ok=True)
    rows, seen = [], set()
    groups = list(proposals.sort_values(["rank"], kind="stable").groupby("product_id", sort=False))
    for pid, group in track(groups, description="rendering proposals", disable=not progress, transient=True):
        kept, first = [], None
        for _, row in group.iterrows():
            combo = list(row["elements"])
            creative = renderer.render(pid, combo, Placement.from_row(row.to_dict()))
            problems = brand.creative_problems(market, pid, combo, creative.product_bbox)
            if first is None:
                first = (row, creative, problems)
            if not problems or bool(row.get("kept", False)):  # do no harm outranks the brand: what runs now stays
                kept.append((row, creative, problems))
                if len(kept) == k:
                    break
        for rank, (row, creative, problems) in enumerate(kept or [first], start=1):
            name, box = _save_creative(staging, pid, rank, creative, seen)
            rows.append({**row.to_dict(), "rank": rank, "image": name, "product_bbox": box, "problems": problems})
    out = pd.DataFrame(rows)
    checked = brand_columns(out.pop("problems").tolist())
    return out.assign(**checked).astype({"rank": "int32"}).reset_index(drop=True)


def _best_logged(market: Market, log: pd.DataFrame, judge, prior_impressions: float) -> pd.DataFrame:
    """Each product's best logged creative (``best_logged_creatives``), with its logged CTR and the CTR that
    ``judge`` predicts for it: the judge that predicts the proposals' CTRs, so that a proposal's predicted lift
    over the current creative compares one model's two predictions."""
    best = best_logged_creatives(log, prior_impressions)
    images = market.creatives.set_index("creative_id")["image"] if "image" in market.creatives else None
    best["image"] = [images.get(c) if images is not None else None for c in best["creative_id"]]
    best["elements"] = [list(e) for e in best["elements"]]
    best["predicted_ctr"] = judge.predict(best.index.tolist(), best["elements"].tolist())
    return best
