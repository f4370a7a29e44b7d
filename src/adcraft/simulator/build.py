"""Simulate a whole market: catalogue, elements, past creatives rendered to images, logs and demand.

The logging policy (what produced the impressions, with honest propensities): each impression picks a
product in proportion to its traffic share, then shows one creative from that product's pool of past
creatives. With probability ``1 - exploration`` it shows the house default creative, otherwise a uniformly
random creative of the pool. The house replaces its default once, at ``default_switch`` of the log's time
span. So for a pool of K creatives the propensity of creative c at time t is

    pi(c | p, t) = (1 - exploration) * [c == default_p(t)] + exploration / K.

In worlds with device-specific defaults (``WorldSettings.contextual_logging``) desktop impressions have
their own house default: ``default_p(t, device)``, and the propensity above uses it.

Clicks are Bernoulli draws from the true click model (``click_model``; ``legacy`` for the legacy world)
given the impression's context and week, less the creative's fatigue in worlds that have one.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from rich.progress import Progress

from adcraft.atomic import check_output_folder, mark_output, move_into_place, write_json
from adcraft.errors import InputError
from adcraft.market import Market, MarketConfig, write_market
from adcraft.render.cutout import ensure_cutout
from adcraft.render.from_market import MarketRenderer
from adcraft.simulator.catalogue import BACKGROUNDS, colour_name, make_catalogue
from adcraft.simulator.click_model import contexts, sigmoid
from adcraft.simulator.config import SimulatorConfig
from adcraft.simulator.legacy import draw_legacy_model, legacy_attributes
from adcraft.simulator.measures import image_measures, scene_measures
from adcraft.simulator.parameters import draw_world_model
from adcraft.simulator.photos import PHOTO_CATEGORIES, draw_product_photo, random_style
from adcraft.simulator.scenes import SCENE_BACKGROUNDS
from adcraft.simulator.worlds import world_settings

WEEK_SECONDS = 7 * 86400

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class SimulatedMarket:
    """Where a simulation wrote its market and its truth, with a few headline figures."""

    market_dir: Path
    truth_dir: Path
    n_products: int
    n_creatives: int
    n_impressions: int
    mean_ctr: float


def default_truth_dir(market_dir: Path) -> Path:
    """The truth folder beside a market: ``MARKET-truth``."""
    market_dir = Path(market_dir)
    return market_dir.with_name(market_dir.name + "-truth")


def simulate_market(
    config: SimulatorConfig,
    out: Path,
    truth_out: Path | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> SimulatedMarket:
    """Simulate a market per ``config`` and write it to ``out`` (market format) and its truth beside it.

    Both folders are new or empty, or, with ``overwrite``, earlier outputs of ``adcraft simulate`` (its
    ``OUTPUT_MARKER``, written into both): a folder holding anything else is refused before any work, and
    left untouched, even with ``overwrite``. Neither may be, hold or lie inside the other or ``config.photos``.
    """
    out = Path(out)
    truth_out = Path(truth_out) if truth_out else default_truth_dir(out)
    photos = [Path(config.photos)] if config.photos is not None else []
    for target, other in ((out, truth_out), (truth_out, out)):  # neither may hold the other: both are replaced
        check_output_folder(target, "simulate", inputs=[other, *photos])
        if not overwrite and target.is_dir() and any(target.iterdir()):
            raise InputError(f"{target} holds an earlier simulated market or truth; pass --overwrite to replace "
                             "it, or choose a new folder")
    rng = np.random.default_rng(config.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.staging-") as staging:
        stage = Path(staging)
        market, truth_files = _simulate_into(config, stage / "market", rng, progress)
        # every image was just drawn here with Pillow: no need to decode them all again to check them
        market_stage = write_market(market, stage / "out", check_images=False)
        mark_output(market_stage, "simulate")
        truth_stage = stage / "truth"
        truth_stage.mkdir()
        for name, writer in truth_files.items():
            writer(truth_stage / name)
        mark_output(truth_stage, "simulate")
        move_into_place(market_stage, out)
        truth_out.parent.mkdir(parents=True, exist_ok=True)
        move_into_place(truth_stage, truth_out)
    impressions = market.impressions
    return SimulatedMarket(
        market_dir=out,
        truth_dir=truth_out,
        n_products=len(market.products),
        n_creatives=len(market.creatives),
        n_impressions=len(impressions),
        mean_ctr=float(impressions["click"].mean()),
    )


def _product_photos(
    config: SimulatorConfig, root: Path, rng: np.random.Generator, n_products: int
) -> tuple[list[str], list[str], list[str]]:
    """Write one RGBA cut-out per product under ``root/images/products``.

    Returns the products' categories, photo paths and colour names (read off the photo).
    """
    folder = root / "images" / "products"
    folder.mkdir(parents=True)
    if config.photos is None:
        categories = [PHOTO_CATEGORIES[i % len(PHOTO_CATEGORIES)] for i in range(n_products)]
        categories = [str(c) for c in rng.permutation(categories)]
        styles = [random_style(category, rng) for category in categories]
        images = [
            draw_product_photo(cat, style, size=config.photo_size, seed=int(rng.integers(2**31)))
            for cat, style in zip(categories, styles)
        ]
    else:
        categories, images = _photos_from_folder(Path(config.photos), n_products, rng)
    colours, paths = [], []
    for i, image in enumerate(images):
        rel = f"images/products/p{i:04d}.png"
        image.save(root / rel)
        paths.append(rel)
        pixels = np.asarray(image.convert("RGBA"), dtype=float).reshape(-1, 4)
        opaque = pixels[pixels[:, 3] > 128, :3]
        colours.append(colour_name(np.median(opaque, axis=0) if len(opaque) else (128, 128, 128)))
    return categories, paths, colours


def _photos_from_folder(
    folder: Path, n: int, rng: np.random.Generator
) -> tuple[list[str], list[Image.Image]]:
    """Sample ``n`` photos from a folder of cut-outs (or photos on a plain light background).

    The category of a photo is its sub-folder's name; in a flat folder it is the cut-out's shape
    (``tall``, ``wide`` or ``compact`` by the aspect ratio of the opaque region), which needs no labels.
    """
    if not folder.is_dir():
        raise InputError(f"--photos: {folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if len(files) < 2:
        raise InputError(f"--photos: {folder} holds fewer than 2 PNG/JPEG/WebP images")
    picks = rng.choice(len(files), size=n, replace=len(files) < n)
    categories, images = [], []
    for index in picks:
        path = files[int(index)]
        try:
            with Image.open(path) as raw:
                cutout = ensure_cutout(raw.convert("RGBA"))
        except (OSError, InputError) as exc:
            raise InputError(f"--photos: cannot use {path}: {exc}") from exc
        cutout.thumbnail((512, 512), Image.Resampling.LANCZOS)
        if path.parent != folder:
            category = path.parent.name
        else:
            ratio = cutout.height / max(cutout.width, 1)
            category = "tall" if ratio > 1.3 else "wide" if ratio < 0.77 else "compact"
        categories.append(category)
        images.append(cutout)
    return categories, images


def _pools(
    catalogue_elements: pd.DataFrame,
    product_ids: list[str],
    slots: tuple[str, ...],
    size: int,
    rng: np.random.Generator,
) -> dict[str, list[list[str]]]:
    """Per product, ``size`` distinct random combinations (the pool the logging policy shows)."""
    el = catalogue_elements
    pools = {}
    for pid in product_ids:
        usable = [
            el.loc[(el["slot"] == slot) & (el["product_id"].isna() | (el["product_id"] == pid)), "element_id"]
            .tolist()
            for slot in slots
        ]
        n_distinct = int(np.prod([len(u) for u in usable], dtype=float))
        seen: set[tuple[str, ...]] = set()
        while len(seen) < min(size, n_distinct):
            seen.add(tuple(str(rng.choice(u)) for u in usable))
        pools[pid] = [list(c) for c in sorted(seen)]
        order = rng.permutation(len(pools[pid]))
        pools[pid] = [pools[pid][i] for i in order]
    return pools


def _simulate_into(
    config: SimulatorConfig, root: Path, rng: np.random.Generator, progress: bool
) -> tuple[Market, dict]:
    root.mkdir(parents=True)
    legacy = config.world == "legacy"
    settings = world_settings(config.world)
    n_products = config.n_products * settings.product_factor
    categories, photo_paths, colours = _product_photos(config, root, rng, n_products)
    catalogue = make_catalogue(categories, photo_paths, colours, config.slots, config.titles_per_product, rng,
                               backgrounds=BACKGROUNDS if legacy else SCENE_BACKGROUNDS)
    products, elements = catalogue.products, catalogue.elements
    product_ids = products["product_id"].tolist()
    pools = _pools(elements, product_ids, config.slots, config.creatives_per_product, rng)

    creative_rows = []
    for pid in product_ids:
        for k, combo in enumerate(pools[pid]):
            creative_rows.append({"creative_id": f"c_{pid}_{k}", "product_id": pid, "elements": combo})
    creatives = pd.DataFrame(creative_rows)
    market_config = MarketConfig(slots=tuple(config.slots), canvas=tuple(config.canvas))
    draft = Market(
        root=root, config=market_config, products=products, elements=elements,
        creatives=None, impressions=None, creative_stats=None, demand=None,
    )
    renderer = MarketRenderer(draft)
    content = dict(zip(elements["element_id"], elements["value"]))
    slot_of = dict(zip(elements["element_id"], elements["slot"]))
    (root / "images" / "creatives").mkdir(parents=True)
    images, bboxes, attribute_rows = [], [], []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("rendering past creatives", total=len(creatives))
        for cid, pid, combo in zip(creatives["creative_id"], creatives["product_id"], creatives["elements"]):
            rendered = renderer.render(pid, combo)
            rel = f"images/creatives/{cid}.png"
            rendered.image.save(root / rel)
            images.append(rel)
            bboxes.append(list(rendered.product_bbox))
            if legacy:
                attribute_rows.append(legacy_attributes(rendered.image))
            else:
                by_slot = {slot_of[e]: content[e] for e in combo}
                attribute_rows.append({**image_measures(rendered.image), **scene_measures(
                    rendered.image, by_slot.get("background"), by_slot.get("template"))})
            bar.advance(task)
    creatives["image"] = images
    attributes = pd.DataFrame(attribute_rows)
    weeks = max(1, -(-config.days * 86400 // WEEK_SECONDS))
    if legacy:
        model = draw_legacy_model(config, products, elements, attributes, rng)
    else:
        model = draw_world_model(config, settings, products, elements, creatives, attribute_rows, weeks, rng)

    ctx = contexts()
    if legacy:
        true_ctr = np.array([
            model.ctr_by_context(pid, combo, attrs)
            for pid, combo, attrs in zip(creatives["product_id"], creatives["elements"], attribute_rows)
        ])
        impressions, policy = log_impressions(config, creatives, true_ctr, rng)
    else:
        by_week = np.stack([  # (creatives, contexts, weeks)
            np.array([model.ctr_by_context(pid, combo, attrs, week=w if model.weekly_drift else None)
                      for pid, combo, attrs in zip(creatives["product_id"], creatives["elements"], attribute_rows)])
            for w in range(weeks)
        ], axis=2)
        true_ctr = by_week[:, :, -1]
        impressions, policy = log_impressions(
            config, creatives, by_week, rng, contextual=settings.contextual_logging,
            fatigue=(model.fatigue, model.fatigue_halfway),
        )
    stats = (
        impressions.assign(date=pd.to_datetime(impressions["ts"], unit="s", utc=True).dt.strftime("%Y-%m-%d"))
        .groupby(["creative_id", "date"], as_index=False)
        .agg(impressions=("click", "size"), clicks=("click", "sum"))
    )
    stats["impressions"] = stats["impressions"].astype("int64")
    stats["clicks"] = stats["clicks"].astype("int64")

    # A listing's demand follows the image it showed most (its listing image over the period).
    shown = impressions["creative_id"].value_counts()
    owner = dict(zip(creatives["creative_id"], creatives["product_id"]))
    listing = {}
    for cid in creatives["creative_id"]:
        pid = owner[cid]
        if pid not in listing or shown.get(cid, 0) > shown.get(listing[pid], 0):
            listing[pid] = cid
    attrs_by_creative = dict(zip(creatives["creative_id"], attribute_rows))
    expected = np.array([model.expected_demand(pid, attrs_by_creative[listing[pid]]) for pid in product_ids])
    start = datetime.fromtimestamp(config.start_ts, UTC).date()
    end = datetime.fromtimestamp(config.start_ts + config.days * 86400 - 1, UTC).date()
    demand = pd.DataFrame(
        {
            "product_id": product_ids,
            "demand": rng.poisson(expected).astype("float64"),
            "period": f"{start.isoformat()}/{end.isoformat()}",
        }
    )
    market = Market(
        root=root, config=market_config, products=products, elements=elements, creatives=creatives,
        impressions=impressions, creative_stats=stats, demand=demand,
    )

    weights = np.array([p for _, p in ctx])
    creatives_truth = creatives[["creative_id", "product_id"]].assign(
        true_ctr=true_ctr @ weights, product_bbox=bboxes, **{k: attributes[k] for k in attributes}
    )
    elements_truth = elements[["element_id", "slot"]].assign(
        true_effect=[model.element_effect[e] for e in elements["element_id"]]
    )
    products_truth = products[["product_id", "category"]].assign(
        popularity_effect=[model.product_effect[p] for p in product_ids],
        listing_creative=[listing[p] for p in product_ids],
        expected_demand=expected,
        traffic_share=[policy["traffic_share"][p] for p in product_ids],
    )
    simulation = {"config": asdict(config), "world": config.world, "weeks": weeks, "logging_policy": policy}
    truth_files = {
        "click_model.json": model.save,
        "creatives.parquet": creatives_truth.to_parquet,
        "elements.parquet": elements_truth.to_parquet,
        "products.parquet": products_truth.to_parquet,
        "simulation.json": lambda path: write_json(path, simulation, default=str),
    }
    return market, truth_files


def log_impressions(
    config: SimulatorConfig,
    creatives: pd.DataFrame,
    true_ctr: np.ndarray,
    rng: np.random.Generator,
    contextual: bool = False,
    fatigue: tuple[float, float] = (0.0, 1.0),
) -> tuple[pd.DataFrame, dict]:
    """Draw the impression log of the logging policy described in the module docstring.

    ``true_ctr``: per creative and context of ``contexts()``, and optionally per week of the log (a third
    axis; an impression in week w is clicked with week w's CTR). ``contextual``: desktop users get their
    own house default. ``fatigue`` = (a, h): a creative already shown k times loses ``a log2(1 + k / h)``
    logits.
    """
    n = config.n_impressions
    owner = creatives["product_id"].to_numpy()
    product_ids, pool_start, pool_size = np.unique(owner, return_index=True, return_counts=True)
    if not all((owner[s : s + k] == p).all() for p, s, k in zip(product_ids, pool_start, pool_size)):
        raise ValueError("creatives must be grouped by product")
    share = np.exp(rng.normal(0.0, 0.6, len(product_ids)))
    share /= share.sum()
    default_before = pool_start
    default_after = pool_start + rng.integers(1, pool_size)
    span = config.days * 86400
    switch_ts = config.start_ts + int(config.default_switch * span)
    ts = np.sort(config.start_ts + rng.integers(0, span, n))
    product_idx = rng.choice(len(product_ids), size=n, p=share)
    ctx = contexts()
    ctx_idx = rng.choice(len(ctx), size=n, p=[p for _, p in ctx])
    explore = rng.random(n) < config.exploration
    uniform = pool_start[product_idx] + rng.integers(0, pool_size[product_idx])
    default = np.where(ts < switch_ts, default_before[product_idx], default_after[product_idx])
    ids = creatives["creative_id"].to_numpy()
    if contextual:  # desktop's defaults: another creative of the pool, before and after the switch
        desktop_before = pool_start + (default_before - pool_start + rng.integers(1, pool_size)) % pool_size
        desktop_after = pool_start + (default_after - pool_start + rng.integers(1, pool_size)) % pool_size
        desktop = np.array([c["device"] == "desktop" for c, _ in ctx])[ctx_idx]
        desktop_default = np.where(ts < switch_ts, desktop_before[product_idx], desktop_after[product_idx])
        default = np.where(desktop, desktop_default, default)
    chosen = np.where(explore, uniform, default)
    propensity = config.exploration / pool_size[product_idx] + (1 - config.exploration) * (chosen == default)
    if true_ctr.ndim == 3:
        week = np.minimum((ts - config.start_ts) // WEEK_SECONDS, true_ctr.shape[2] - 1)
        p_click = true_ctr[chosen, ctx_idx, week]
    else:
        p_click = true_ctr[chosen, ctx_idx]
    if fatigue[0] > 0:
        shown = pd.Series(chosen).groupby(chosen).cumcount().to_numpy()
        logit = np.log(p_click / (1 - p_click)) - fatigue[0] * np.log2(1 + shown / fatigue[1])
        p_click = sigmoid(logit)
    clicks = (rng.random(n) < p_click).astype("int8")
    impressions = pd.DataFrame(
        {
            "impression_id": [f"i{i:07d}" for i in range(n)],
            "ts": ts.astype("int64"),
            "creative_id": ids[chosen],
            "click": clicks,
            "propensity": propensity,
            "context": [json.dumps(ctx[j][0], sort_keys=True) for j in ctx_idx],
        }
    )
    policy = {
        "description": "house default with probability 1-exploration, else uniform over the product's pool",
        "exploration": config.exploration,
        "switch_ts": switch_ts,
        "default_before": dict(zip(product_ids.tolist(), ids[default_before].tolist())),
        "default_after": dict(zip(product_ids.tolist(), ids[default_after].tolist())),
        "traffic_share": dict(zip(product_ids.tolist(), share.tolist())),
    }
    if contextual:
        policy["description"] += "; the house default depends on the device"
        policy["default_after_by_device"] = {
            "mobile": policy["default_after"],
            "desktop": dict(zip(product_ids.tolist(), ids[desktop_after].tolist())),
        }
        policy["default_before_by_device"] = {
            "mobile": policy["default_before"],
            "desktop": dict(zip(product_ids.tolist(), ids[desktop_before].tolist())),
        }
    if fatigue[0] > 0:
        policy["fatigue"] = {"logits_at_halfway": fatigue[0], "halfway_impressions": fatigue[1]}
    return impressions, policy
