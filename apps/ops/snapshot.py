"""A value computed at most once per OPS_CACHE_S per process, shared by every request.

Concurrent requests that find it stale wait for the one that refreshes it (a lock), so
200 parallel scrapes of /metrics cost one set of queries, not 200."""

import threading
import time
from collections.abc import Callable

from django.conf import settings


class Snapshot[T]:
    def __init__(self, compute: Callable[[], T]):
        self.compute = compute
        self.lock = threading.Lock()
        self.value: T | None = None
        self.taken_at = -float("inf")

    def get(self) -> T:
        """The cached value, refreshed first when older than OPS_CACHE_S (0: always)."""
        with self.lock:
            if self.value is None or time.monotonic() - self.taken_at >= settings.OPS_CACHE_S:
                self.value = self.compute()
                self.taken_at = time.monotonic()
            return self.value

    def clear(self) -> None:
        with self.lock:
            self.value, self.taken_at = None, -float("inf")
