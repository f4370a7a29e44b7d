"""What is wrong with a market: one ``Problem`` per broken rule, and the error that carries them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from adcraft.errors import InputError

MAX_LISTED_ROWS = 10
"""Rows a problem names; the rest are only counted (``more_rows``)."""
MAX_LISTED_PROBLEMS = 20
"""Problems an error message lists; the rest are only counted."""
MAX_EXAMPLES = 3
"""Distinct bad values a problem quotes."""
MAX_EXAMPLE_CHARS = 60
"""Characters of one quoted value; a longer one is cut (a cell may hold megabytes)."""


def examples(values: Iterable[Any]) -> str:
    """The first few distinct values, each quoted with ``repr`` and cut short, for a message."""
    shown: list[Any] = []
    for value in values:
        if value not in shown:
            shown.append(value)
            if len(shown) == MAX_EXAMPLES:
                break
    quoted = (repr(value) for value in shown)
    return ", ".join(text if len(text) <= MAX_EXAMPLE_CHARS else text[:MAX_EXAMPLE_CHARS] + "..."
                     for text in quoted)


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
        rule = " ".join(self.rule.splitlines())  # a parser's message may span lines; a problem is one
        return f"{where}: {rule}"


class MarketValidationError(InputError):
    """A market breaks the format's rules; ``problems`` lists every broken rule found."""

    def __init__(self, problems: Sequence[Problem], where: str | None = None) -> None:
        self.problems = list(problems)
        subject = f"the market at {where}" if where else "the market"
        count = len(self.problems)
        if count == 1:  # one line, as the command line prints it
            super().__init__(f"{subject} breaks a rule of the market format (adcraft-market/1): "
                             f"{self.problems[0]}")
            return
        lines = [f"{subject} breaks {count} rules of the market format (adcraft-market/1):"]
        lines += [f"- {problem}" for problem in self.problems[:MAX_LISTED_PROBLEMS]]
        if count > MAX_LISTED_PROBLEMS:
            lines.append(f"- ... and {count - MAX_LISTED_PROBLEMS} more")
        super().__init__("\n".join(lines))
