"""Writing a batch job's result table: the one Parquet writer both backends' outputs go through."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from adcraft.atomic import write_bytes


def write_parquet(path: Path, table: pa.Table) -> Path:
    """Write ``table`` to ``path`` as Parquet through a temporary file renamed into place."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return write_bytes(path, buffer.getvalue())
