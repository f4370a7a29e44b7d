"""CSV for people who open it in a spreadsheet: no cell runs as a formula, no cell breaks into two rows.

Every CSV the project hands to people (the review page's export of decisions, the bundle of approved
creatives an ad manager uploads) is written by :func:`spreadsheet_csv`.
"""

from __future__ import annotations

import pandas as pd

# What makes a spreadsheet read a cell as a formula (OWASP, CSV injection), with the full-width forms some read too.
FORMULA_STARTS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_text(text: str) -> str:
    """``text`` prefixed with an apostrophe when a spreadsheet could run it as a formula: it starts with
    = + - @ (also after leading spaces or line breaks, which some spreadsheets drop), a tab or a CR."""
    if text[:1] in ("\t", "\r") or text.lstrip()[:1] in FORMULA_STARTS:
        return "'" + text
    return text


def spreadsheet_csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV with every text cell made inert (:func:`spreadsheet_text`) and rows ended with CRLF, so
    that a cell holding a CR or LF is quoted and stays one cell in a reader that takes a bare CR for a line break.
    Columns of other types (numbers) are written as they are."""
    text_columns = [name for name in frame.columns if frame[name].dtype == object]
    frame = frame.assign(**{name: [spreadsheet_text(str(v)) for v in frame[name]] for name in text_columns})
    return frame.to_csv(index=False, lineterminator="\r\n")
