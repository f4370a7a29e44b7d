"""The ``local`` backend: every chunk in this process, one after another, with one loaded copy of the job."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from adcraft.batch.chunks import BatchJob, apply_to_chunks


def map_chunks_locally(job: BatchJob, chunks: list[pa.Table]) -> Iterator[pa.Table]:
    """Load ``job`` once, then yield its results on each chunk in order."""
    function = job.load()
    for chunk in chunks:
        yield apply_to_chunks(function, chunk)
