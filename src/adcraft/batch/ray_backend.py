"""The ``ray`` backend: Ray Data over Arrow blocks, one actor per worker, each loading the job once.

The chunks of work items become the blocks of a ``ray.data`` dataset (one Arrow block per chunk);
``map_batches`` with a callable class and an actor pool of ``num_workers`` runs them, each actor
calling ``job.load()`` once in its constructor (one model per actor), and every block is one batch
(``batch_size=None``), cut again by chunk in ``apply_to_chunks``. Results stream back to the caller,
which puts them in item order and writes them with the same writer as the local backend.

Ray is an optional extra (``pip install 'adcraft[ray]'``) imported only here, only when this backend
runs. On a multi-node cluster every node needs adcraft installed and the job's input paths readable.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType

import pyarrow as pa

from adcraft.batch.chunks import BatchConfig, BatchJob, ChunkFunction, apply_to_chunks
from adcraft.errors import AdcraftError, InputError


def import_ray() -> ModuleType:
    """The ``ray`` module with ``ray.data`` loaded, or an ``InputError`` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (loads the submodule used below)
    except ImportError as error:
        raise InputError(
            f"the ray backend needs Ray Data ({error}): install it with `pip install 'adcraft[ray]'`, "
            "or use --backend local"
        ) from None
    return ray


ERROR = "_adcraft_error"
ERROR_KIND = "_adcraft_error_kind"


class ChunkWorker:
    """A Ray Data actor: loads the job once, then applies it to each block of chunks it is given.

    Ray Data wraps a worker's exception in its own types and keeps only the text of the original, so an
    adcraft error (bad input found by the job) is sent back as a one-row table instead and raised again
    by the caller with its own type and message.
    """

    def __init__(self, job: BatchJob) -> None:
        self._function: ChunkFunction | None = None
        self._error: AdcraftError | None = None
        try:
            self._function = job.load()
        except AdcraftError as error:
            self._error = error

    def __call__(self, table: pa.Table) -> pa.Table:
        try:
            if self._error is not None:
                raise self._error
            return apply_to_chunks(self._function, table)
        except AdcraftError as error:
            kind = "input" if isinstance(error, InputError) else "other"
            return pa.table({ERROR: [str(error)], ERROR_KIND: [kind]})


@contextlib.contextmanager
def ray_session(config: BatchConfig) -> Iterator[ModuleType]:
    """Ray, initialised: the caller's session if there is one, else the cluster at ``config.address``,
    else a local instance with at least ``num_workers`` CPUs; what this function started it stops."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if config.address is not None:
        ray.init(address=config.address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=max(config.num_workers, os.cpu_count() or 1),
            include_dashboard=False,
            object_store_memory=config.object_store_memory,
            log_to_driver=False,
        )
    try:
        yield ray
    finally:
        ray.shutdown()


def map_chunks_on_ray(job: BatchJob, chunks: list[pa.Table], config: BatchConfig) -> Iterator[pa.Table]:
    """Results of ``job`` on each chunk, as the actors finish them (not in chunk order)."""
    with ray_session(config) as ray:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        # from_blocks keeps one block per chunk and reads their metadata here; from_arrow would run a Ray
        # task per chunk for it (in this sandbox such short-lived task workers sometimes abort at start-up).
        from_blocks = getattr(ray.data, "from_blocks", None) or ray.data.from_arrow
        dataset = from_blocks(chunks)
        results = dataset.map_batches(
            ChunkWorker,
            fn_constructor_args=(job,),
            batch_size=None,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=config.num_workers),
            num_cpus=1,
        )
        for batch in results.iter_batches(batch_size=None, batch_format="pyarrow"):
            if ERROR in batch.column_names:
                message, kind = batch.column(ERROR)[0].as_py(), batch.column(ERROR_KIND)[0].as_py()
                raise InputError(message) if kind == "input" else AdcraftError(message)
            yield batch
