"""What one request may cost: body size, image pixels, concurrent work and time.

- ``BodyLimitMiddleware``: 413 when ``Content-Length`` is over the limit (before anything is read) and
  while the body streams in (a chunked or lying client); 408 when the body has not all arrived within the
  body timeout (a client that stalls mid-body would otherwise hold its connection for ever).
- ``decode_upload``: an uploaded image, decoded only after its header's pixel count passed the limit
  (decompression bombs), with the same checks as a market's images (``market.images.open_image``).
- ``WorkLimiter``: model and rendering work runs on at most ``max_concurrent`` worker threads; a request
  that cannot get one within the queue timeout gets 503 with ``Retry-After``, one whose work runs past
  the request timeout gets 504 (the work finishes in the background and only then frees its slot).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fastapi import HTTPException
from PIL import Image
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adcraft.errors import InputError
from adcraft.market.images import ImageLimits, decode_image

T = TypeVar("T")


def too_large_message(limit: int) -> str:
    return f"request body is over the limit of {limit:,} bytes"


def too_slow_message(timeout_s: float) -> str:
    return f"the request body did not arrive within {timeout_s:g} s"


class BodyLimitMiddleware:
    """Pure ASGI middleware: refuse request bodies over ``max_body_bytes`` with 413 and bodies that take longer
    than ``body_timeout_s`` to arrive (counted from the first read) with 408, both JSON."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, body_timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _send_error(send, 413, too_large_message(self.max_body_bytes))
            return
        received = 0
        started = False
        body_done = False
        deadline: float | None = None
        loop = asyncio.get_running_loop()

        async def limited_receive() -> Message:
            nonlocal received, body_done, deadline
            if body_done:  # later reads wait for a disconnect, which has no deadline
                return await receive()
            deadline = loop.time() + self.body_timeout_s if deadline is None else deadline
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise HTTPException(status_code=408, detail=too_slow_message(self.body_timeout_s),
                                    headers={"Connection": "close"}) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(status_code=413, detail=too_large_message(self.max_body_bytes))
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except HTTPException as exc:
            if exc.status_code not in (408, 413) or started:
                raise
            message = too_large_message(self.max_body_bytes) if exc.status_code == 413 else exc.detail
            await _send_error(send, exc.status_code, message)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send: Send, status: int, message: str) -> None:
    code = "too_large" if status == 413 else "request_timeout"
    body = json.dumps({"error": code, "message": message, "detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def decode_upload(data: bytes, max_pixels: int, what: str = "uploaded image") -> Image.Image:
    """Decode an uploaded PNG, JPEG or WebP image; ``InputError`` naming ``what`` when it is refused.

    Refused: an empty file, a file that is not such an image, one whose header declares more than
    ``max_pixels`` pixels (refused before any pixel is decoded) and a truncated or corrupt one.
    """
    if not data:
        raise InputError(f"{what} is an empty file")
    return decode_image(data, ImageLimits(max_pixels=max_pixels), what)


class WorkLimiter:
    """At most ``max_concurrent`` jobs at once, each bounded in waiting and running time (module docstring).

    A slot is a ``threading.Semaphore`` permit released by the worker thread when the job ends, so a
    job abandoned after a timeout keeps its slot until it really stops, whatever happened to the event loop.
    """

    def __init__(self, max_concurrent: int, queue_timeout_s: float, request_timeout_s: float) -> None:
        self.max_concurrent = max_concurrent
        self.queue_timeout_s = queue_timeout_s
        self.request_timeout_s = request_timeout_s
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._pool = self._new_pool()
        self._closed = False

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.max_concurrent, thread_name_prefix="adcraft-work")

    def open(self) -> None:
        """Worker threads again after :meth:`close`: an app can be started again after a shutdown (test
        clients start and stop it once per client)."""
        if self._closed:
            self._pool, self._closed = self._new_pool(), False

    @property
    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.queue_timeout_s))

    async def _acquire(self) -> bool:
        deadline = time.monotonic() + self.queue_timeout_s
        delay = 0.001
        while not self._slots.acquire(blocking=False):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(2 * delay, 0.01)
        return True

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` on a worker thread; 503 when no slot frees up in time, 504 when it runs too long."""
        if not await self._acquire():
            raise HTTPException(
                status_code=503, detail=f"the server is busy ({self.max_concurrent} jobs running); retry shortly",
                headers={"Retry-After": str(self.retry_after_s)},
            )

        def job() -> T:
            try:
                return work(*args)
            finally:
                self._slots.release()

        try:
            future = asyncio.get_running_loop().run_in_executor(self._pool, job)
        except BaseException:
            self._slots.release()
            raise
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout=self.request_timeout_s)
        except TimeoutError:
            future.add_done_callback(_consume_exception)
            raise HTTPException(
                status_code=504, detail=f"the request took longer than {self.request_timeout_s:g} s and was abandoned"
            ) from None

    def close(self) -> None:
        """Wait for running jobs to finish and stop the worker threads (server shutdown)."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)


def _consume_exception(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
