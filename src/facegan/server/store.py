"""In-memory store for the web page's images (previews, results for download).

Images never touch disk: the page shows and downloads them from ``/api/results/{token}``, which serves
these bytes. Entries expire after ``ttl_s`` and the oldest go first when ``max_bytes`` is reached.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class Entry:
    data: bytes
    media_type: str
    filename: str
    expires: float


class ResultStore:
    def __init__(self, ttl_s: float = 900.0, max_bytes: int = 256 * 1024 * 1024):
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, data: bytes, media_type: str, filename: str) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._expire(time.monotonic())
            self._items[token] = Entry(bytes(data), media_type, filename, time.monotonic() + self.ttl_s)
            self._bytes += len(data)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old.data)
        return token

    def get(self, token: str) -> Entry | None:
        with self._lock:
            self._expire(time.monotonic())
            return self._items.get(token)

    def drop(self, *tokens: str):
        with self._lock:
            for t in tokens:
                e = self._items.pop(t, None)
                if e is not None:
                    self._bytes -= len(e.data)

    def clear(self):
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _expire(self, now: float):
        for t in [t for t, e in self._items.items() if e.expires <= now]:
            self._bytes -= len(self._items.pop(t).data)
