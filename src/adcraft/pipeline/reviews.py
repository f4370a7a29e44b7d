"""What reviewers decided on earlier runs, read back so that the next run learns from it.

The review page (``adcraft serve``) stores each decision with the product, the creative's elements, the run
and the time. ``read_rejections`` reads such a database (any SQLAlchemy URL, or an SQLite file path) and
returns, per product, the combinations whose latest decision is a rejection: ``optimize --decisions`` never
proposes them again. A combination approved after it was rejected (or in a later run) is not excluded.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from adcraft.errors import InputError

DECISIONS_TABLE = "review_decisions"  # the table the review page writes (serve.decisions) and this module reads


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an SQLite database file at ``path``."""
    return f"sqlite:///{Path(path).resolve()}"


def database_url(location: str, option: str = "--decisions") -> str:
    """``location`` as a SQLAlchemy URL: a URL as given, an existing file path as an SQLite URL; ``InputError``
    naming ``option`` for a path that is not a file."""
    if "://" in location:
        return location
    if not Path(location).is_file():
        raise InputError(f"{option} {location}: no such database file (give the path of the SQLite file or a "
                         "SQLAlchemy URL)")
    return sqlite_url(Path(location))


def read_rejections(location: str) -> dict[str, set[tuple[str, ...]]]:
    """Per product, the element combinations reviewers rejected last (module docstring). ``InputError`` when
    the database cannot be opened or holds no decisions table."""
    url = database_url(location)
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise InputError(f"--decisions: cannot open {location!r}: {exc}") from None
    try:
        with engine.connect() as connection:
            table = sa.Table(DECISIONS_TABLE, sa.MetaData(), autoload_with=connection)
            needed = {"product_id", "elements", "decision", "decided_at"}
            missing = needed - set(table.c.keys())
            if missing:
                raise InputError(f"--decisions {location}: the decisions table lacks {sorted(missing)}")
            rows = connection.execute(sa.select(table.c.product_id, table.c.elements, table.c.decision,
                                                table.c.decided_at, table.c.id if "id" in table.c else sa.null())
                                      ).all()
    except sa.exc.NoSuchTableError:
        raise InputError(f"--decisions {location}: no decisions table (is it the review page's database?)") from None
    except sa.exc.SQLAlchemyError as exc:
        raise InputError(f"--decisions {location}: cannot read the decisions ({type(exc).__name__})") from None
    finally:
        engine.dispose()
    latest: dict[tuple[str, tuple[str, ...]], tuple] = {}
    for product, elements, decision, decided_at, row_id in rows:
        key = (str(product), tuple(str(e) for e in (elements or [])))
        order = (str(decided_at), row_id or 0)
        if key not in latest or order >= latest[key][0]:
            latest[key] = (order, decision)
    out: dict[str, set[tuple[str, ...]]] = {}
    for (product, combo), (_, decision) in latest.items():
        if decision == "reject" and combo:
            out.setdefault(product, set()).add(combo)
    return out
