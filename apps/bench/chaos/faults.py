"""The faults chaos injects, one at a time, while jobs are in flight.

Each fault is `inject(ctx) -> notes`; it returns once the fault is over (the process
resumed, the service back up). `applies(backend)` says why a fault does not apply, if so.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tasks.backends.base import Backend
from tasks.backends.registry import get_backend
from tasks.backends.services import Postgres, Service

if TYPE_CHECKING:
    from apps.bench.chaos.scenario import CellRun

UNKNOWN_JOB = str(uuid.UUID(int=0x0C4A05))
POISON = {  # what a message may carry that names no job
    "garbage bytes": b"\xff\xfe\x00 not utf-8",
    "non-UUID": b"not-a-uuid",
    "unknown UUID": UNKNOWN_JOB.encode(),
    "empty": b"",
}


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[CellRun], list[str]]
    needs_broker: bool = False
    description: str = ""
    scope: str = "worker"  # "worker": each backend's own; "broker"/"database": shared

    def applies(self, backend: str) -> str:
        """'' when the fault applies to `backend`, else why not."""
        if self.needs_broker and broker_of(backend) is None:
            return "n/a: the job row is the message (no broker); see postgres-restart"
        return ""


def broker_of(backend: str) -> Service | None:
    """The server holding `backend`'s messages (None: the job row is the message)."""
    return get_backend(backend).broker_service()


def _victim_pid(ctx: CellRun) -> int:
    job = ctx.wait_running()
    return int(job.worker.rsplit(":", 1)[1])


def sigkill(ctx: CellRun) -> list[str]:
    pid = _victim_pid(ctx)
    os.kill(pid, signal.SIGKILL)
    return [f"SIGKILL worker pid {pid} mid-job"]


def sigstop(ctx: CellRun) -> list[str]:
    pid = _victim_pid(ctx)
    pause_s = ctx.lease_s + ctx.pause_margin_s
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(pause_s)
    finally:
        os.kill(pid, signal.SIGCONT)
    return [f"SIGSTOP worker pid {pid} for {pause_s:g}s (lease {ctx.lease_s:g}s), then SIGCONT"]


def _restart(service: Service, ctx: CellRun, what: str) -> list[str]:
    started = time.monotonic()
    service.stop()
    time.sleep(ctx.down_s)
    service.start(log_dir=ctx.log_dir)
    return [f"{what} down for {time.monotonic() - started:.1f}s"]


def _broker(ctx: CellRun) -> Service:
    service = broker_of(ctx.backend)
    assert service is not None  # needs_broker: applies() ruled out broker-less backends
    return service


def broker_restart(ctx: CellRun) -> list[str]:
    service = _broker(ctx)
    notes = _restart(service, ctx, service.kind)
    return notes + ([service.restart_note] if service.restart_note else [])


def postgres_restart(ctx: CellRun) -> list[str]:
    return _restart(Postgres(), ctx, "PostgreSQL")


def broker_down(ctx: CellRun) -> list[str]:
    """Stop the broker while the submitter keeps going, then start it again."""
    service = _broker(ctx)
    service.stop()
    before = ctx.submitted_count()
    time.sleep(ctx.down_s + ctx.pause_margin_s)
    during = ctx.submitted_count() - before
    service.start(log_dir=ctx.log_dir)
    return [f"{service.kind} down while {during} jobs were submitted"]


def poison(ctx: CellRun) -> list[str]:
    """Write messages that name no job, raw, through the backend's own client."""
    impl: Backend = get_backend(ctx.backend)
    if not impl.supports_publish_raw:
        return [f"{impl.alias} cannot write raw messages: no poison"]
    for payload in POISON.values():
        impl.publish_raw(payload)
    return [f"wrote {len(POISON)} poison messages: {', '.join(POISON)}"]


# Least destructive first: a broker restart can leave a broker (Tansu) that the next
# phases' workers cannot use, so restarts and outages of the broker come last.
FAULTS = {
    fault.name: fault
    for fault in (
        Fault("sigkill", sigkill, description="SIGKILL of a worker mid-job"),
        Fault("sigstop", sigstop, description="SIGSTOP of a worker past its lease, SIGCONT"),
        Fault("poison", poison, description="messages that name no job"),
        Fault(
            "postgres-restart",
            postgres_restart,
            description="restart of PostgreSQL",
            scope="database",
        ),
        Fault("broker-restart", broker_restart, True, "restart of the broker mid-run", "broker"),
        Fault("broker-down", broker_down, True, "broker down while jobs are submitted", "broker"),
    )
}
