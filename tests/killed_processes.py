"""Running adcraft's command line in a child process and killing it with SIGKILL at a chosen moment; and, in
process, stopping a training with an exception right after an epoch's checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable


def adcraft(*args: str) -> list[str]:
    """The command line that runs ``adcraft ARGS`` with this interpreter."""
    return [sys.executable, "-c", "from adcraft.cli import main; main()", *args]


def kill_when(command: list[str], ready: Callable[[], bool], timeout: float = 60.0) -> None:
    """Start ``command``, SIGKILL it as soon as ``ready()`` holds; fail if it ends first."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert process.poll() is None, f"finished before it could be killed: {process.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()


class Interrupted(Exception):
    """Stands for the process being killed right after an epoch's checkpoint."""


def stop_after(epoch: int) -> Callable[[int], None]:
    """An ``on_epoch`` hook that raises ``Interrupted`` once epoch ``epoch`` (counted from 0) is done."""

    def hook(done: int) -> None:
        if done == epoch:
            raise Interrupted

    return hook
