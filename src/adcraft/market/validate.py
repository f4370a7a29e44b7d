"""The rules of the market format (market-format.md) checked on a market's typed tables.

Every rule yields ``Problem`` values instead of raising, so that a user sees every broken rule
at once. Rules that read a column the typing step could not read are skipped (that column
already has its problem). Order of the checks: ``market.json``, then per table the column
rules of ``schema.py``, then the rules across columns and tables, then the image files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adcraft.market.coerce import TypedTable
from adcraft.market.fonts import font_path_problems
from adcraft.market.images import ImageLimits, image_problems
from adcraft.market.limits import (
    MAX_CANVAS_PX,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_JSON_KEYS,
    MAX_SLOTS,
    MIN_CANVAS_PX,
)
from adcraft.market.logs import (
    impression_days,
    is_iso_date,
    log_problem,
    span_problem,
    stats_days,
)
from adcraft.market.problems import MAX_EXAMPLES, Problem, examples
from adcraft.market.schema import (
    CONTENT_FIELDS,
    FORMAT,
    TABLES,
    Kind,
    TextRule,
    slot_field,
)

CONFIG_FILE = "market.json"
COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
CONTROL = re.compile(r"[\x01-\x1f\x7f-\x9f]")
"""Control characters (tab, newline, ...), refused in ids; NUL is refused in every cell (coerce.py)."""


def config_problems(data: Any, limits: ImageLimits = ImageLimits()) -> list[Problem]:
    """What is wrong with a parsed ``market.json`` (format marker, slots, canvas)."""
    if not isinstance(data, dict):
        return [Problem(CONFIG_FILE, (), None, "must be a JSON object such as "
                        '{"format": "adcraft-market/1", "slots": ["title", "background"]}')]
    problems = []
    if data.get("format") != FORMAT:
        found = f"found {data['format']!r}" if "format" in data else "it is missing"
        problems.append(Problem(CONFIG_FILE, (), "format", f'must be "{FORMAT}" ({found})'))
    slots = data.get("slots")
    if not isinstance(slots, list) or not slots:
        problems.append(Problem(CONFIG_FILE, (), "slots",
                                "must be a non-empty list of slot names"))
    elif not all(isinstance(slot, str) and slot for slot in slots):
        problems.append(Problem(CONFIG_FILE, (), "slots",
                                "every slot must be a non-empty string"))
    elif len(slots) > MAX_SLOTS:
        problems.append(Problem(CONFIG_FILE, (), "slots",
                                f"has {len(slots)} slots, over the limit of {MAX_SLOTS}"))
    elif any(len(slot) > MAX_ID_CHARS for slot in slots):
        problems.append(Problem(CONFIG_FILE, (), "slots",
                                f"slot names must be at most {MAX_ID_CHARS} characters"))
    elif len(set(slots)) != len(slots):
        twice = sorted({slot for slot in slots if slots.count(slot) > 1})
        problems.append(Problem(CONFIG_FILE, (), "slots",
                                f"slots must be unique; repeated: {', '.join(twice)}"))
    if "canvas" in data:
        canvas = data["canvas"]
        if not (isinstance(canvas, list) and len(canvas) == 2
                and all(isinstance(side, int) and not isinstance(side, bool) and side > 0
                        for side in canvas)):
            problems.append(Problem(CONFIG_FILE, (), "canvas",
                                    "must be [width, height] in pixels, two positive integers"))
        elif canvas[0] * canvas[1] > limits.max_pixels:
            size = "x".join(examples([side]) for side in canvas)  # a side may have 4000 digits
            problems.append(Problem(CONFIG_FILE, (), "canvas",
                                    f"{size} is over the pixel limit of {limits.max_pixels:,}"))
        elif not all(MIN_CANVAS_PX <= side <= MAX_CANVAS_PX for side in canvas):
            problems.append(Problem(CONFIG_FILE, (), "canvas",
                                    f"sides must lie in [{MIN_CANVAS_PX}, {MAX_CANVAS_PX}] pixels, "
                                    f"found {canvas[0]}x{canvas[1]}"))
    return problems


def table_problems(slots: tuple[str, ...] | None, tables: Mapping[str, TypedTable],
                   root: Path | None, limits: ImageLimits = ImageLimits(),
                   check_images: bool = True) -> list[Problem]:
    """Every rule of the format on the typed tables (keyed by table name).

    ``slots`` is None when ``market.json`` itself is broken: the rules that need it are skipped.
    ``root`` is the market folder image paths are relative to.
    """
    problems: list[Problem] = []
    for table in tables.values():
        problems += _column_rules(table)
    products, elements = tables.get("products"), tables.get("elements")
    creatives = tables.get("creatives")
    if products is not None and len(products.frame) == 0:
        problems.append(Problem(products.file, (), None,
                                "has no rows; a market needs at least one product"))
    if elements is not None:
        problems += _reference(elements, "product_id", products, "products", "product_id")
        if slots is not None:
            problems += element_rules(elements, slots)
            if products is not None:
                problems += _coverage(products, elements, slots)
    if creatives is not None:
        problems += _reference(creatives, "product_id", products, "products", "product_id")
        if slots is not None and elements is not None:
            problems += _creative_elements(creatives, elements, slots)
    for name in ("impressions", "creative_stats"):
        if name in tables:
            problems += _reference(tables[name], "creative_id", creatives, "creatives",
                                   "creative_id")
    if "creative_stats" in tables:
        problems += _clicks_within_impressions(tables["creative_stats"])
    if "demand" in tables:
        problems += _reference(tables["demand"], "product_id", products, "products", "product_id")
    problems += _image_rules(tables, root, limits, check_images)
    problems += font_path_problems(tables.get("elements"), root)
    problems += _log_rules(tables, problems)
    return problems


def _rows_where(table: TypedTable, mask: np.ndarray, column: str, rule: str) -> list[Problem]:
    rows = np.flatnonzero(mask)
    return [Problem.at_rows(table.file, rows, column, rule)] if len(rows) else []


# The rules work on NumPy arrays rather than pandas Series: a market has many small tables and
# a few large ones, and pandas' per-call overhead dominates on the small ones.

def _cells(table: TypedTable, name: str) -> np.ndarray:
    """A string column as an object array (``None`` for null)."""
    return table.frame[name].to_numpy(dtype=object)


def _filled(values: np.ndarray) -> np.ndarray:
    """Cells holding a non-empty string."""
    return ~pd.isna(values) & (values != "")


def _member(values: np.ndarray, known: set[Any]) -> np.ndarray:
    return np.fromiter((value in known for value in values), dtype=bool, count=len(values))


def _column_rules(table: TypedTable) -> list[Problem]:
    """The per-column rules of ``schema.py``: non-empty, unique, bounds, choices, text forms."""
    problems: list[Problem] = []
    for spec in table.spec.columns:
        if not table.usable(spec.name):
            continue
        if spec.kind in (Kind.INTEGER, Kind.FLOAT):
            problems += _bounds(table, spec.name, spec.minimum, spec.exclusive_minimum,
                                spec.maximum, spec.choices)
        if spec.kind is not Kind.STRING:
            continue
        values = _cells(table, spec.name)
        present = ~pd.isna(values)
        if spec.max_chars is not None and present.any():
            lengths = np.fromiter(map(len, values[present]), dtype=np.int64, count=int(present.sum()))
            long = present.copy()
            long[present] = lengths > spec.max_chars
            if long.any():
                what = f"{spec.text.value} of " if spec.text is not None else ""
                problems += _rows_where(table, long, spec.name,
                                        f"must be {what}at most {spec.max_chars:,} characters, "
                                        f"found {int(lengths.max()):,}")
                present &= ~long  # not parsed or compared further
        if spec.identifier and present.any() and CONTROL.search("".join(values[present])):
            controls = present.copy()
            controls[present] = [CONTROL.search(value) is not None for value in values[present]]
            problems += _rows_where(table, controls, spec.name,
                                    "ids must not hold control characters (tab, newline, ...), "
                                    f"found {examples(values[controls])}")
        if spec.non_empty:
            problems += _rows_where(table, present & (values == ""), spec.name,
                                    "must not be empty")
        if spec.unique:
            repeated = pd.Series(values).duplicated(keep=False).to_numpy() & present
            problems += _rows_where(table, repeated, spec.name,
                                    f"must be unique; repeated: {examples(values[repeated])}")
        if spec.text in (TextRule.JSON_OBJECT, TextRule.ISO_DATE) and present.any():
            check = _json_object_problem if spec.text is TextRule.JSON_OBJECT else _date_problem
            reasons: dict[str, tuple[set[str], int]] = {}  # rule -> bad values, largest count
            for value in pd.unique(values[present]):
                reason = check(value)
                if reason is not None:
                    bad, most = reasons.get(reason[0], (set(), 0))
                    reasons[reason[0]] = (bad | {value}, max(most, reason[1]))
            for rule, (bad, most) in reasons.items():
                wrong = _member(values, bad) & present
                problems += _rows_where(table, wrong, spec.name,
                                        rule.format(wanted=spec.text.value, most=f"{most:,}",
                                                    found=examples(values[wrong])))
    return problems


def _bounds(table: TypedTable, name: str, minimum: float | None, exclusive: bool,
            maximum: float | None, choices: tuple[int, ...] | None) -> list[Problem]:
    series = table.frame[name]
    numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
    present = ~np.isnan(numbers)
    if choices is not None:
        outside = present & ~np.isin(numbers, choices)
        allowed = " or ".join(str(choice) for choice in choices)
        return _rows_where(table, outside, name,
                           f"must be {allowed}, found {examples(series[outside].tolist())}")
    outside = np.zeros(len(numbers), dtype=bool)
    if minimum is not None:
        outside |= numbers <= minimum if exclusive else numbers < minimum
    if maximum is not None:
        outside |= numbers > maximum
    outside &= present
    if not outside.any():
        return []
    if minimum is not None and maximum is not None:
        low = "(" if exclusive else "["
        wanted = f"in {low}{_number(minimum)}, {_number(maximum)}]"
    else:
        wanted = f"{'>' if exclusive else '>='} {_number(minimum)}"
    return _rows_where(table, outside, name,
                       f"must be {wanted}, found {examples(series[outside].tolist())}")


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


def _json_object_problem(text: str) -> tuple[str, int] | None:
    """Why ``text`` is not a JSON object within the limits, or None if it is one: a rule to
    ``format`` with ``wanted``, ``most`` (the largest count over the cells breaking it) and
    ``found``, and this cell's count."""
    try:
        data = json.loads(text)
    # ValueError: not JSON, or an integer longer than Python's digit limit; RecursionError:
    # nested too deeply for the parser.
    except (ValueError, RecursionError, TypeError):
        data = None
    if not isinstance(data, dict):
        return "must be {wanted}, found {found}", 0
    keys, depth = _json_size(data)
    if depth > MAX_JSON_DEPTH:
        return f"a JSON object may nest at most {MAX_JSON_DEPTH} levels deep, found {{most}}: {{found}}", depth
    if keys > MAX_JSON_KEYS:
        return f"a JSON object may hold at most {MAX_JSON_KEYS} keys, found {{most}}: {{found}}", keys
    return None


def _json_size(data: Any) -> tuple[int, int]:
    """Keys of every object inside ``data`` together, and how deep objects and arrays nest."""
    keys, depth = 0, 0
    stack = [(data, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            keys += len(item)
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth = max(depth, level)
        stack += [(child, level + 1) for child in children]
    return keys, depth


def _date_problem(text: str) -> tuple[str, int] | None:
    return None if is_iso_date(text) else ("must be {wanted}, found {found}", 0)


def _reference(table: TypedTable, column: str, target: TypedTable | None, target_name: str,
               target_column: str) -> list[Problem]:
    """Non-null values of ``table.column`` must be ids in ``target.target_column``.

    A missing required target (products) is reported once, where it is missing; a missing
    optional one (creatives) is reported here, since only this table needs it.
    """
    if not table.usable(column):
        return []
    values = _cells(table, column)
    filled = _filled(values)
    if not filled.any():
        return []
    if target is None:
        if TABLES[target_name].required:
            return []
        return [Problem(table.file, (), column,
                        f"names {target_name} but the market has no {target_name} table")]
    if not target.usable(target_column):
        return []
    unknown = filled & ~_member(values, set(_cells(target, target_column)))
    return _rows_where(table, unknown, column,
                       f"must name a {target_name.removesuffix('s')} in {target.file}; "
                       f"unknown: {examples(values[unknown])}")


def element_rules(elements: TypedTable, slots: tuple[str, ...]) -> list[Problem]:
    """Each element's slot is one of the market's, and it has the field its slot reads."""
    if not elements.usable("slot"):
        return []
    problems: list[Problem] = []
    slot = _cells(elements, "slot")
    unknown = _filled(slot) & ~_member(slot, set(slots))
    problems += _rows_where(elements, unknown, "slot",
                            f"must be one of market.json's slots ({', '.join(slots)}), found "
                            f"{examples(slot[unknown])}")
    fields = {name: _cells(elements, name) for name in CONTENT_FIELDS if elements.usable(name)}
    filled = {name: _filled(values) for name, values in fields.items()}
    for name in slots:
        of_slot = slot == name
        needed = slot_field(name)
        if needed is None:
            if len(filled) == len(CONTENT_FIELDS):
                empty = of_slot & ~(filled["text"] | filled["value"] | filled["image"])
                problems += _rows_where(elements, empty, "text",
                                        f"slot {name} needs one of text, value or image")
            continue
        if needed not in filled:
            continue
        problems += _rows_where(elements, of_slot & ~filled[needed], needed,
                                f"slot {name} needs a non-empty {needed}")
        if name == "text_color":
            values = fields[needed]
            colors = of_slot & filled[needed]
            bad = colors.copy()
            bad[colors] = [COLOR.fullmatch(text) is None for text in values[colors]]
            problems += _rows_where(elements, bad, needed,
                                    f"text_color must be #RRGGBB, found {examples(values[bad])}")
    return problems


def _coverage(products: TypedTable, elements: TypedTable,
              slots: tuple[str, ...]) -> list[Problem]:
    """Every product has at least one usable element for every slot."""
    if not (products.usable("product_id") and elements.usable("slot", "product_id")):
        return []
    product_ids = _cells(products, "product_id")
    real_ids = _filled(product_ids)
    slot, owner = _cells(elements, "slot"), _cells(elements, "product_id")
    problems: list[Problem] = []
    for name in slots:
        owners = owner[slot == name]
        if pd.isna(owners).any():
            continue  # an element for every product
        lacking = real_ids & ~_member(product_ids, set(owners))
        problems += _rows_where(products, lacking, "product_id",
                                f"no usable element for slot {name} in {elements.file} "
                                f"(one with slot {name} and product_id null or this product), "
                                f"for {examples(product_ids[lacking])}")
    return problems


def _creative_elements(creatives: TypedTable, elements: TypedTable,
                       slots: tuple[str, ...]) -> list[Problem]:
    """A creative names one usable element per slot, in market.json's slot order."""
    if not (creatives.usable("elements", "product_id")
            and elements.usable("element_id", "slot", "product_id")):
        return []
    element_frame = elements.frame
    slot_of = dict(zip(element_frame["element_id"], element_frame["slot"]))
    owner_of = dict(zip(element_frame["element_id"], element_frame["product_id"]))
    wrong_length, unknown, out_of_order, foreign = [], [], [], []
    unknown_ids: list[str] = []
    order_examples: list[str] = []
    foreign_examples: list[str] = []
    for row, (items, product) in enumerate(zip(creatives.frame["elements"],
                                               creatives.frame["product_id"])):
        if items is None:
            continue
        if len(items) != len(slots):
            wrong_length.append(row)
            continue
        for position, (element_id, slot) in enumerate(zip(items, slots)):
            if element_id not in slot_of:
                unknown.append(row)
                unknown_ids.append(element_id)
            elif slot_of[element_id] != slot:
                out_of_order.append(row)
                order_examples.append(f"{element_id!r} at position {position} has slot "
                                      f"{slot_of[element_id]}, expected {slot}")
            elif owner_of[element_id] is not None and owner_of[element_id] != product:
                foreign.append(row)
                foreign_examples.append(f"{element_id!r} belongs to product "
                                        f"{owner_of[element_id]!r}, not {product!r}")
            else:
                continue
            break
    file, problems = creatives.file, []
    if wrong_length:
        problems.append(Problem.at_rows(file, wrong_length, "elements",
                                        f"must list one element id per slot ({len(slots)}: "
                                        f"{', '.join(slots)})"))
    if unknown:
        problems.append(Problem.at_rows(file, unknown, "elements",
                                        f"names elements not in {elements.file}: "
                                        f"{examples(unknown_ids)}"))
    if out_of_order:
        problems.append(Problem.at_rows(file, out_of_order, "elements",
                                        "must follow market.json's slot order; "
                                        + "; ".join(order_examples[:MAX_EXAMPLES])))
    if foreign:
        problems.append(Problem.at_rows(file, foreign, "elements",
                                        "names elements not usable for the creative's product; "
                                        + "; ".join(foreign_examples[:MAX_EXAMPLES])))
    return problems


def _clicks_within_impressions(stats: TypedTable) -> list[Problem]:
    if not stats.usable("clicks", "impressions"):
        return []
    frame = stats.frame
    over = (frame["clicks"] > frame["impressions"]).to_numpy(dtype=bool, na_value=False)
    return _rows_where(stats, over, "clicks", "clicks must be <= impressions")


def _log_rules(tables: Mapping[str, TypedTable], found: list[Problem]) -> list[Problem]:
    """The logs a reward model reads (impressions, else creative_stats) break none of the rules of
    ``logs.log_problem`` (``click_log``) and ``logs.span_problem`` (``time_split``). Checked once the
    log table and creatives broke no other rule."""
    for name, columns in (("impressions", {"creative": "creative_id", "clicks": "click", "time": "ts"}),
                          ("creative_stats", {"creative": "creative_id", "clicks": "clicks",
                                              "time": "date"})):
        table = tables.get(name)
        if table is None or len(table.frame) == 0:
            continue
        used = [table] + ([tables["creatives"]] if "creatives" in tables else [])
        files = {part.file for part in used}
        if (any(part.problems for part in used) or any(problem.file in files for problem in found)
                or not table.usable(*columns.values())):
            return []
        frame = table.frame
        if name == "impressions":
            clicks = frame["click"].to_numpy(dtype=np.int64)
            trials = np.ones(len(frame), dtype=np.int64)
            times: np.ndarray | None = impression_days(frame["ts"].to_numpy(dtype=np.int64))
        else:
            clicks = frame["clicks"].to_numpy(dtype=np.int64)
            trials = frame["impressions"].to_numpy(dtype=np.int64)
            dates = frame["date"]
            times = stats_days(dates) if dates.notna().all() else None
        problem = log_problem(frame["creative_id"].to_numpy(dtype=object), clicks, trials)
        if problem is None and times is not None:  # the time split of the reward models
            problem = span_problem(times)
        if problem is None:
            return []
        return [Problem(table.file, (), columns[problem.about], problem.rule)]
    return []


def _product_photos(tables: Mapping[str, TypedTable]) -> frozenset[str]:
    """Image paths that show a product: products.image and the images of product_image elements."""
    photos: set[str] = set()
    products, elements = tables.get("products"), tables.get("elements")
    if products is not None and products.usable("image"):
        photos.update(path for path in _cells(products, "image") if isinstance(path, str))
    if elements is not None and elements.usable("image", "slot"):
        slot, image = _cells(elements, "slot"), _cells(elements, "image")
        photos.update(path for path in image[slot == "product_image"] if isinstance(path, str))
    return frozenset(photos)


def _image_rules(tables: Mapping[str, TypedTable], root: Path | None, limits: ImageLimits,
                 check_images: bool) -> list[Problem]:
    """Every path column: paths stay inside the market and name readable PNG/JPEG/WebP images
    within the pixel limit; product photos show something. Each distinct path is checked once."""
    uses: list[tuple[TypedTable, str, np.ndarray]] = []
    for table in tables.values():
        for spec in table.spec.columns:
            if spec.text is TextRule.PATH and table.usable(spec.name):
                paths = _cells(table, spec.name)
                if _filled(paths).any():
                    uses.append((table, spec.name, paths))
    if not uses:
        return []
    if root is None:
        return [Problem(table.file, (), column,
                        "names image files but the market has no folder to read them from")
                for table, column, _ in uses]
    distinct = set().union(*(set(paths[_filled(paths)]) for _, _, paths in uses))
    bad = image_problems(root, distinct, limits, decode=check_images,
                         products=_product_photos(tables))
    problems = []
    for table, column, paths in uses:
        rows_of: dict[str, list[int]] = {}
        for row in np.flatnonzero(_member(paths, set(bad))):
            rows_of.setdefault(paths[row], []).append(int(row))
        problems += [Problem.at_rows(table.file, rows, column, f"{path}: {bad[path]}")
                     for path, rows in rows_of.items()]
    return problems
