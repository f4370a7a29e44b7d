"""What is wrong with a market: one ``Problem`` per broken rule, and the error that carries them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from adcraft.errors import InputError

MAX_LISTED_ROWS = 10
"""Rows a problem names; the rest are only counted (``more_rows``)."""
MAX_LISTED_PROBLEMS = 20
"""Problems an error message lists; the rest are only counted."""


@dataclass(frozen=True)
class Problem:
    """One broken rule: the file, the rows, the column and the rule.

    Rows are 0-based positions of data rows (the header line of a CSV is not counted).

    ``str(problem)`` reads like
    ``creative_stats.parquet rows 3, 7: column clicks: clicks must be <= impressions``.
    """

    file: str
    rows: tuple[int, ...]
    column: str | None
    rule: str
    more_rows: int = 0

    @classmethod
    def at_rows(cls, file: str, rows: Sequence[int] | Iterable[int], column: str | None,
                rule: str) -> Problem:
        """A problem at ``rows``, naming the first ``MAX_LISTED_ROWS`` and counting the others."""
        listed = [int(row) for row in rows]
        return cls(file, tuple(listed[:MAX_LISTED_ROWS]), column, rule,
                   max(0, len(listed) - MAX_LISTED_ROWS))

    def __str__(self) -> str:
        where = self.file
        if self.rows:
            label = "row" if len(self.rows) == 1 and not self.more_rows else "rows"
            where += f" {label} " + ", ".join(str(row) for row in self.rows)
            if self.more_rows:
                where += f" and {self.more_rows} more"
        if self.column is not None:
            where += f": column {self.column}"
        return f"{where}: {self.rule}"


class MarketValidationError(InputError):
    """A market breaks the format's rules; ``problems`` lists every broken rule found."""

    def __init__(self, problems: Sequence[Problem], where: str | None = None) -> None:
        self.problems = list(problems)
        subject = f"the market at {where}" if where else "the market"
        count = len(self.problems)
        lines = [f"{subject} breaks {count} rule{'s' if count != 1 else ''} "
                 "of the market format (adcraft-market/1):"]
        lines += [f"- {problem}" for problem in self.problems[:MAX_LISTED_PROBLEMS]]
        if count > MAX_LISTED_PROBLEMS:
            lines.append(f"- ... and {count - MAX_LISTED_PROBLEMS} more")
        super().__init__("\n".join(lines))
