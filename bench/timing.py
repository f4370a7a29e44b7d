"""Timing shared by the benchmark scripts: wall and CPU seconds of a block, and the fastest of repeated calls."""

from __future__ import annotations

import time
from collections.abc import Callable


class Timer:
    """Wall and CPU seconds of a block (CPU time of this process, all threads)."""

    def __enter__(self) -> Timer:
        self.cpu = time.process_time()
        self.wall = time.perf_counter()  # read last, so the wall time leaves out the CPU clock's read
        return self

    def __exit__(self, *_: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def best_of(run: Callable[[], object], repeats: int, warm_up: bool = True) -> Timer:
    """The fastest of ``repeats`` timed calls (after one untimed warm-up call unless ``warm_up`` is False)."""
    if warm_up:
        run()
    timers = []
    for _ in range(repeats):
        with Timer() as timer:
            run()
        timers.append(timer)
    return min(timers, key=lambda t: t.wall)
