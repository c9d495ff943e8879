"""Back-pressure for a CPU-bound service: a bounded queue in front of a fixed number of workers,
a per-request deadline and a per-client token bucket. Everything answers at once when it refuses."""
from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..errors import FaceganError


class ServerBusyError(FaceganError):
    http_status = 503
    code = "busy"

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimeoutError(FaceganError):
    http_status = 504
    code = "timeout"


class RateLimitedError(FaceganError):
    http_status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class UploadTooLargeError(FaceganError):
    http_status = 413
    code = "upload_too_large"


class OperationUnavailableError(FaceganError):
    http_status = 503
    code = "operation_unavailable"


class UnknownOperationError(FaceganError):
    http_status = 404
    code = "unknown_operation"


class Runner:
    """Runs blocking jobs on ``concurrency`` worker threads with at most ``queue_size`` waiting.

    A job that cannot be admitted raises ServerBusyError immediately; one that does not finish within
    ``timeout_s`` (waiting included) raises RequestTimeoutError. A timed-out job that already started
    keeps its worker until it ends (threads cannot be killed), and keeps counting against the limit,
    so the limit is honest about how much work is really running.
    """

    def __init__(self, concurrency: int, queue_size: int, timeout_s: float):
        self.concurrency = concurrency
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="facegan-op")
        self._lock = threading.Lock()
        self._admitted = 0
        self.completed = 0
        self.rejected = 0
        self.timed_out = 0

    @property
    def capacity(self) -> int:
        return self.concurrency + self.queue_size

    @property
    def admitted(self) -> int:
        return self._admitted

    def is_full(self) -> bool:
        return self._admitted >= self.capacity

    def _release(self, _fut=None):
        with self._lock:
            self._admitted -= 1
            self.completed += 1

    def _busy(self) -> ServerBusyError:
        self.rejected += 1
        return ServerBusyError(
            f"the server is busy ({self.concurrency} running, {self.queue_size} waiting); try again shortly",
            retry_after=max(1, min(30, int(round(self.timeout_s / 10)))))

    def check_capacity(self):
        """Raise ServerBusyError now if a job would not be admitted (admits nothing)."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise self._busy()

    def admit(self):
        with self._lock:
            if self._admitted >= self.capacity:
                raise self._busy()
            self._admitted += 1

    async def run(self, fn: Callable[..., Any], *args, deadline: float | None = None, **kwargs) -> Any:
        """Admit (or refuse) and run ``fn(*args, **kwargs)`` on a worker; await its result."""
        self.admit()
        try:
            # like asyncio.to_thread: the job sees the caller's context variables (Gradio's progress)
            fut = self._executor.submit(contextvars.copy_context().run, fn, *args, **kwargs)
        except BaseException:
            self._release()
            raise
        fut.add_done_callback(self._release)
        remaining = self.timeout_s if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            # shield: a cancelled await (client gone) must not mark a running job as done
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), remaining)
        except (asyncio.TimeoutError, TimeoutError):
            fut.cancel()  # frees the slot at once if the job was still waiting
            with self._lock:
                self.timed_out += 1
            raise RequestTimeoutError(f"the request took longer than {self.timeout_s:g} s") from None

    def shutdown(self):
        self._executor.shutdown(wait=False, cancel_futures=True)


class RateLimiter:
    """Token bucket per client key: ``burst`` requests at once, refilled at ``per_minute``."""

    def __init__(self, per_minute: float, burst: int, max_clients: int = 10_000):
        self.rate = per_minute / 60.0
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, key: str, now: float | None = None):
        if not self.enabled:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimitedError(f"too many requests; the limit is {self.rate * 60:g} per minute "
                                       f"(burst {self.burst})", retry_after=max(1, int(wait + 0.999)))
            self._buckets[key] = (tokens - 1.0, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
