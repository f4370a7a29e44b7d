"""Real data sets of the shared data bundle, converted to markets (market-format.md) for bench/rewards_real.py.

- ``aes_market``: the 200 composited banner creatives of AES (Alimama, AAAI 2021) with their real online
  CTRs; the bundle has no impressions, so clicks are drawn from the real CTRs (Bernoulli) on uniformly
  spread impressions.
- ``obd_market``: an Open Bandit Dataset sample (ZOZOTOWN): 80 items at 3 positions with real clicks and
  logging propensities; each item is one product with a single creative (its title).

Every market is written with ``write_market`` (which validates it first) and checked again with
``validate_market`` once on disk. Element values that the sources leave undocumented (AES text colours
and fonts) are placeholders, named as such in each element's ``value`` or in ``market.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adcraft.errors import InputError
from adcraft.market import (
    Market,
    MarketConfig,
    load_market,
    validate_market,
    write_market,
)
from adcraft.simulator.photos import draw_product_photo

PHOTO = "images/product.png"
DAY = 86_400
AES_START_TS = 1_577_836_800  # 2020-01-01 00:00 UTC: the AES logs carry no dates
AES_SLOTS = ("background", "picture_size", "text_color", "font")
AES_BACKGROUNDS = ("#222222", "#F2F2F2")  # 0 = dark, 1 = light (documented)
AES_SIZES = ("88%", "91%", "94%", "97%", "100%")  # documented
# Text colours are undocumented codes: 0-3 are used on the dark background, 4-7 on the light one.
# These #RRGGBB values are placeholders (light ones on dark, dark ones on light), not the real colours.
AES_TEXT_COLOURS = ("#FFFFFF", "#FFD54F", "#80DEEA", "#F48FB1", "#111111", "#C62828", "#1565C0", "#2E7D32")
AES_FONTS = 5  # undocumented codes 0-4; values "code-<k>" (the renderer falls back to its default font)
OBD_USER_FEATURES = ("user_feature_0", "user_feature_1", "user_feature_2", "user_feature_3")


@dataclass(frozen=True)
class AESMarket:
    """An AES market on disk with what the benchmark scores it against.

    ``real_ctr``: the real online CTR by creative id; ``element_codes``: per slot, the element id of
    each source code; ``colour_background``: the background element each text colour belongs to.
    """

    market: Market
    real_ctr: pd.Series
    element_codes: dict[str, list[str]]
    colour_background: dict[str, str]


def write_photo(folder: Path, category: str, seed: int = 0) -> Path:
    """Draw one procedural product photo into ``folder/images/product.png`` (the market's root)."""
    path = folder / PHOTO
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        draw_product_photo(category, seed=seed).save(path)
    return folder


def _write_checked(market: Market, out: Path) -> Market:
    """Write ``market`` to ``out`` (validated by write_market), re-validate the files, and load it."""
    write_market(market, out, overwrite=True)
    problems = validate_market(out)
    if problems:
        raise InputError(f"{out} does not validate: " + "; ".join(str(p) for p in problems[:5]))
    return load_market(out)


def aes_market(data_dir: Path, workdir: Path, n_impressions: int, seed: int, days: int = 14) -> AESMarket:
    """The AES creatives as a one-product market with ``n_impressions`` simulated impressions.

    Each impression shows one of the 200 creatives chosen uniformly at random (propensity 1/200) at a
    uniformly random time over ``days`` days, and is clicked with the creative's real online CTR.
    """
    table = pd.read_csv(data_dir / "aes" / "ctr_online.csv")
    if len(table) != 200 or table["template"].nunique() != 1:
        raise InputError(f"{data_dir}/aes/ctr_online.csv: expected 200 creatives of one template")
    pairs = set(zip(table["background"], table["text_color"]))
    if any((c < 4) != (b == 0) for b, c in pairs):
        raise InputError("AES text colours 0-3 should appear only on background 0 and 4-7 only on 1")
    codes = {
        "background": [f"bg-{k}" for k in range(len(AES_BACKGROUNDS))],
        "picture_size": [f"size-{k}" for k in range(len(AES_SIZES))],
        "text_color": [f"color-{k}" for k in range(len(AES_TEXT_COLOURS))],
        "font": [f"font-{k}" for k in range(AES_FONTS)],
    }
    values = {
        "background": list(AES_BACKGROUNDS),
        "picture_size": list(AES_SIZES),
        "text_color": list(AES_TEXT_COLOURS),
        "font": [f"code-{k}" for k in range(AES_FONTS)],
    }
    elements = pd.DataFrame(
        [
            {"element_id": element, "slot": slot, "product_id": None, "text": None, "value": value, "image": None}
            for slot in AES_SLOTS
            for element, value in zip(codes[slot], values[slot])
        ]
    )
    product = "aes-banner"
    combos = [
        [codes["background"][b], codes["picture_size"][s], codes["text_color"][c], codes["font"][f]]
        for b, s, c, f in zip(table["background"], table["size"], table["text_color"], table["font"])
    ]
    creative_ids = table["creative_id"].astype(str).tolist()
    creatives = pd.DataFrame(
        {"creative_id": creative_ids, "product_id": product, "elements": combos, "image": None}
    )
    ctr = table["ctr"].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    shown = rng.integers(0, len(table), size=n_impressions)
    ts = np.sort(AES_START_TS + rng.integers(0, days * DAY, size=n_impressions))
    impressions = pd.DataFrame(
        {
            "impression_id": [f"aes-{seed}-{k}" for k in range(n_impressions)],
            "ts": ts.astype("int64"),
            "creative_id": np.asarray(creative_ids, dtype=object)[shown],
            "click": (rng.random(n_impressions) < ctr[shown]).astype("int8"),
            "propensity": 1.0 / len(table),
        }
    )
    products = pd.DataFrame(
        {"product_id": [product], "title": ["AES composited banner"], "category": ["banner"], "image": [PHOTO]}
    )
    config = MarketConfig(
        slots=AES_SLOTS,
        extra={
            "source": "AES ctr_online.csv (alimama-creative, AAAI 2021): real online CTRs; clicks drawn from them",
            "placeholders": "text_color #RRGGBB values and font code-<k> values stand for undocumented codes",
        },
    )
    root = write_photo(workdir / "aes-source", "bottle")
    draft = Market(root=root, config=config, products=products, elements=elements,
                   creatives=creatives, impressions=impressions)
    market = _write_checked(draft, workdir / f"aes-market-{seed}-{n_impressions}")
    background_of = dict(zip(codes["text_color"], [codes["background"][0]] * 4 + [codes["background"][1]] * 4))
    return AESMarket(market, pd.Series(ctr, index=creative_ids, name="ctr"), codes, background_of)


def _unix_seconds(timestamps: pd.Series) -> np.ndarray:
    """Whole unix seconds of ISO timestamps (whatever pandas' datetime resolution)."""
    moments = pd.to_datetime(timestamps, utc=True)
    return ((moments - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def obd_market(data_dir: Path, workdir: Path, policy: str) -> Market:
    """The Open Bandit Dataset sample of ``policy`` ("random" or "bts") as an 80-product market.

    Products are the items (category: ``item_feature_1`` of the matching item-context file, whose
    hashes are salted per policy), each with one element (slot ``title``, text "item <id>") and one
    creative; impressions keep the real time, click, propensity, position and the four user features
    (context JSON). All products share one procedural photo: images play no part in this benchmark.
    """
    context_file = {"random": "item_context.csv", "bts": "item_context_bts.csv"}[policy]
    columns = ["timestamp", "item_id", "position", "click", "propensity_score", *OBD_USER_FEATURES]
    log = pd.read_csv(data_dir / "obd" / f"{policy}_all.csv.gz", usecols=columns)
    items = pd.read_csv(data_dir / "obd" / context_file).sort_values("item_id")
    ids = items["item_id"].astype(int).tolist()
    products = pd.DataFrame(
        {
            "product_id": [f"item-{i}" for i in ids],
            "title": [f"item {i}" for i in ids],
            "category": [f"f1-{h[:8]}" for h in items["item_feature_1"].astype(str)],
            "image": PHOTO,
        }
    )
    elements = pd.DataFrame(
        {
            "element_id": [f"title-{i}" for i in ids],
            "slot": "title",
            "product_id": [f"item-{i}" for i in ids],
            "text": [f"item {i}" for i in ids],
            "value": None,
            "image": None,
        }
    )
    creatives = pd.DataFrame(
        {
            "creative_id": [f"c-{i}" for i in ids],
            "product_id": [f"item-{i}" for i in ids],
            "elements": [[f"title-{i}"] for i in ids],
            "image": None,
        }
    )
    contexts = [
        json.dumps({name: str(value) for name, value in zip(OBD_USER_FEATURES, row)}, sort_keys=True)
        for row in log[list(OBD_USER_FEATURES)].itertuples(index=False)
    ]
    impressions = pd.DataFrame(
        {
            "impression_id": [f"{policy}-{k}" for k in range(len(log))],
            "ts": _unix_seconds(log["timestamp"]),
            "creative_id": [f"c-{i}" for i in log["item_id"].astype(int)],
            "click": log["click"].astype("int8"),
            "propensity": log["propensity_score"].astype(float),
            "position": log["position"].astype("int32"),
            "context": contexts,
        }
    ).sort_values(["ts", "impression_id"], kind="stable", ignore_index=True)
    config = MarketConfig(
        slots=("title",),
        extra={"source": f"Open Bandit Dataset (obp 0.4.1) {policy}/all sample, ZOZOTOWN, 2019-11-24..30"},
    )
    root = write_photo(workdir / "obd-source", "t-shirt")
    draft = Market(root=root, config=config, products=products, elements=elements,
                   creatives=creatives, impressions=impressions)
    return _write_checked(draft, workdir / f"obd-{policy}-market")
