"""The outbox relay loop, shared by `runworker` (a thread beside the workers) and
`runrelay` (its own process, for the frameworks' stock CLIs, which run no relay)."""

import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from apps.jobs import retention, services

log = logging.getLogger("relay")


def relay_loop(backends: list[str], stop: threading.Event) -> None:
    """Republish what a failed publish or a dead worker left behind, for each backend,
    every RELAY_INTERVAL_S until `stop` is set. Never dies: a pass that fails (database
    restarting, broker down) is logged, its connection dropped, and the next reconnects.
    Every PURGE_INTERVAL_S (0: never) it also runs the retention pass."""
    next_purge = time.monotonic()
    while not stop.wait(settings.RELAY_INTERVAL_S):
        for backend in backends:
            relay_pass(backend)
        if settings.PURGE_INTERVAL_S and time.monotonic() >= next_purge:
            next_purge = time.monotonic() + settings.PURGE_INTERVAL_S
            guarded(retention.retention_pass, "retention")


def relay_pass(backend: str) -> dict[str, int] | None:
    """One pass for one backend: its counts, or None when the pass failed."""
    counts = guarded(lambda: services.jobs_relay(backend=backend), f"relay pass for {backend}")
    if counts is None:
        return None
    if counts["expired"] or counts["stale"] or counts.get("sync_failed"):
        log.info("relay %s: %s", backend, counts)
    return counts


def guarded(call, what: str):
    """call(), or None when it failed (logged; its connection dropped, the next reconnects)."""
    close_old_connections()
    try:
        return call()
    except DatabaseError as exc:
        log.warning("%s: database unavailable (%s); retrying", what, exc)
        connections.close_all()
        return None
    except Exception:
        log.exception("%s failed; retrying", what)
        return None
    finally:
        close_old_connections()  # back to the pool (or closed) while the relay sleeps
