"""Loading, validating and writing a whole market directory (market-format.md).

``validate_market`` reports every broken rule and never raises for bad data; ``load_market``
raises ``MarketValidationError`` with the same problems; ``write_market`` checks a market built
or changed in memory against the same rules before it writes anything, and writes atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from adcraft.atomic import staged_folder
from adcraft.errors import InputError
from adcraft.market.coerce import TypedTable, typed_frame
from adcraft.market.images import ImageLimits, resolve_inside
from adcraft.market.limits import MAX_CONFIG_BYTES
from adcraft.market.market import Market, MarketConfig
from adcraft.market.problems import MarketValidationError, Problem
from adcraft.market.schema import TABLE_FORMATS, TABLES, TextRule
from adcraft.market.tables import file_problem, find_table, read_table, to_arrow, write_table
from adcraft.market.validate import CONFIG_FILE, config_problems, table_problems


@dataclass
class _ReadMarket:
    """A market folder as read: config (None if broken), typed tables, and the problems so far."""

    config: MarketConfig | None = None
    tables: dict[str, TypedTable] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def complete(self) -> bool:
        """Whether a ``Market`` can be built: config read, required tables and columns typed."""
        required = all(name in self.tables for name, spec in TABLES.items() if spec.required)
        return self.config is not None and required and not any(
            table.unusable for table in self.tables.values())


def _read_config(root: Path, limits: ImageLimits) -> tuple[MarketConfig | None, list[Problem]]:
    path = root / CONFIG_FILE
    if not path.is_file():
        what = "is not a file" if path.exists() else "file is missing"
        return None, [Problem(CONFIG_FILE, (), None, f"{what}; it must hold "
                              '{"format": "adcraft-market/1", "slots": [...]}')]
    problem = file_problem(root, CONFIG_FILE, MAX_CONFIG_BYTES)
    if problem is not None:
        return None, [Problem(CONFIG_FILE, (), None, problem)]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        return None, [Problem(CONFIG_FILE, (), None, f"cannot be read ({error.strerror or error})")]
    # ValueError covers JSONDecodeError, bad UTF-8 and integers longer than Python's digit limit;
    # RecursionError is what json raises for arrays or objects nested too deeply.
    except (ValueError, RecursionError) as error:
        return None, [Problem(CONFIG_FILE, (), None, f"is not valid JSON ({error})")]
    problems = config_problems(data, limits)
    return (None if problems else MarketConfig.from_json(data)), problems


def _read_market(root: Path, limits: ImageLimits) -> _ReadMarket:
    read = _ReadMarket()
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        read.problems.append(Problem(str(root), (), None, f"market folder {what}"))
        return read
    read.config, read.problems = _read_config(root, limits)
    for name, spec in TABLES.items():
        table_file, problems = find_table(root, spec)
        read.problems += problems
        if table_file is None:
            continue
        table = read_table(table_file, spec)
        if isinstance(table, Problem):
            read.problems.append(table)
            continue
        read.tables[name] = table
        read.problems += table.problems
    return read


def _build(root: Path | None, read: _ReadMarket, limits: ImageLimits) -> Market:
    assert read.config is not None
    frames = {name: table.frame for name, table in read.tables.items()}
    return Market(root=root, config=read.config, products=frames["products"],
                  elements=frames["elements"], creatives=frames.get("creatives"),
                  impressions=frames.get("impressions"),
                  creative_stats=frames.get("creative_stats"), demand=frames.get("demand"),
                  limits=limits)


def _all_problems(read: _ReadMarket, root: Path | None, limits: ImageLimits,
                  check_images: bool) -> list[Problem]:
    slots = read.config.slots if read.config is not None else None
    return read.problems + table_problems(slots, read.tables, root, limits, check_images)


def validate_market(path: str | os.PathLike[str], *, limits: ImageLimits = ImageLimits(),
                    check_images: bool = True) -> list[Problem]:
    """Every rule the market folder at ``path`` breaks; ``[]`` for a good market.

    Never raises for bad data. ``check_images=False`` skips decoding image files (paths and
    existence are still checked).
    """
    root = Path(path)
    read = _read_market(root, limits)
    return _all_problems(read, root, limits, check_images)


def load_market(path: str | os.PathLike[str], *, validate: bool = True,
                limits: ImageLimits = ImageLimits(), check_images: bool = True) -> Market:
    """Load the market folder at ``path`` into memory, refusing a market that breaks a rule.

    With ``validate=False`` only what is needed to build the tables is checked (market.json,
    required tables and columns, column types). Raises ``MarketValidationError``.
    """
    root = Path(path).absolute()
    read = _read_market(root, limits)
    if validate:
        problems = _all_problems(read, root, limits, check_images)
    else:
        problems = [] if read.complete() else read.problems
    if problems:
        raise MarketValidationError(problems, where=str(path))
    return _build(root, read, limits)


def _typed_market(market: Market, table_format: str) -> _ReadMarket:
    """A market built in memory, typed and checked exactly as if read from files."""
    read = _ReadMarket()
    config_json = market.config.to_json()
    read.problems = config_problems(config_json, market.limits)
    read.config = None if read.problems else market.config
    for name, spec in TABLES.items():
        frame = getattr(market, name)
        file = f"{name}.{table_format}"
        if frame is None:
            if spec.required:
                read.problems.append(Problem(file, (), None, "required table is missing"))
            continue
        table = typed_frame(spec, frame, file)
        read.tables[name] = table
        read.problems += table.problems
    return read


def _image_paths(tables: dict[str, TypedTable]) -> set[str]:
    paths: set[str] = set()
    for table in tables.values():
        for spec in table.spec.columns:
            if spec.text is TextRule.PATH:
                paths.update(path for path in table.frame[spec.name] if isinstance(path, str))
    return paths


def write_market(market: Market, out_dir: str | os.PathLike[str], *,
                 table_format: str = "parquet", overwrite: bool = False, check_images: bool = True) -> Path:
    """Write ``market`` as a market folder at ``out_dir`` and return its path.

    Writes ``market.json``, every table present (as ``table_format``: parquet or csv) and a copy
    of every image the tables point to, at the same relative path. The market is validated
    first; an invalid market raises ``MarketValidationError`` and nothing is written. The folder
    is built beside ``out_dir`` and renamed into place, so a failure leaves no half-written
    market. An existing non-empty ``out_dir`` is refused unless ``overwrite``. ``check_images=False``
    skips decoding the images (paths and existence are still checked) for a caller that made them.
    """
    if table_format not in TABLE_FORMATS:
        raise InputError(f"table_format must be one of {', '.join(TABLE_FORMATS)}, "
                         f"got {table_format!r}")
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} exists and is not empty; choose another folder or overwrite")
    read = _typed_market(market, table_format)
    problems = _all_problems(read, market.root, market.limits, check_images=check_images)
    if problems:
        raise MarketValidationError(problems)
    assert read.config is not None

    with staged_folder(out) as staging:
        (staging / CONFIG_FILE).write_text(json.dumps(read.config.to_json(), indent=2) + "\n",
                                           encoding="utf-8")
        for table in read.tables.values():
            write_table(to_arrow(table.frame, table.spec), staging / table.file, table_format)
        for relpath in sorted(_image_paths(read.tables)):
            assert market.root is not None  # validation refuses image paths without a root
            target = staging / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(resolve_inside(market.root, relpath), target)
    return out
