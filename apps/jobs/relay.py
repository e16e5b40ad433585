"""The outbox relay loop, shared by `runworker` (a thread beside the workers) and
`runrelay` (its own process, for the frameworks' stock CLIs, which run no relay)."""

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from apps.jobs import services

log = logging.getLogger("relay")


def relay_loop(backends: list[str], stop: threading.Event) -> None:
    """Republish what a failed publish or a dead worker left behind, for each backend,
    every RELAY_INTERVAL_S until `stop` is set. Never dies: a pass that fails (database
    restarting, broker down) is logged, its connection dropped, and the next reconnects."""
    while not stop.wait(settings.RELAY_INTERVAL_S):
        for backend in backends:
            relay_pass(backend)


def relay_pass(backend: str) -> dict[str, int] | None:
    """One pass for one backend: its counts, or None when the pass failed."""
    close_old_connections()
    try:
        counts = services.jobs_relay(backend=backend)
    except DatabaseError as exc:
        log.warning("relay pass for %s: database unavailable (%s); retrying", backend, exc)
        connections.close_all()
        return None
    except Exception:
        log.exception("relay pass for %s failed; retrying", backend)
        return None
    finally:
        close_old_connections()  # back to the pool (or closed) while the relay sleeps
    if counts["expired"] or counts["stale"] or counts.get("sync_failed"):
        log.info("relay %s: %s", backend, counts)
    return counts
