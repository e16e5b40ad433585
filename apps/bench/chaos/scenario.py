"""One chaos cell: fresh workers for a backend, N jobs kept in flight, one fault, then
wait for every job to finish (or the deadline) and read the truth from the job rows."""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.db import DatabaseError, InterfaceError, connections
from django.db.models import Q
from django.utils import timezone

from apps.bench.chaos.faults import FAULTS
from apps.bench.chaos.report import FINISHED, Cell, compute_cell
from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from ocrproject.launch import ServerGroup
from tasks.backends.registry import get_backend, reset_backends

log = logging.getLogger("chaos")
DB_ERRORS = (DatabaseError, InterfaceError)
POLL_S = 0.3


@dataclass
class Options:
    jobs: int = 4  # kept in flight
    workers: int = 2
    job_s: float = 2.0  # each job is `sleep:<job_s>`
    lease_s: float = 4.0
    down_s: float = 3.0  # how long a stopped service stays down
    pause_margin_s: float = 3.0  # SIGSTOP lasts lease + this
    tail_s: float = 2.0  # keep submitting this long after the fault
    start_timeout_s: float = 90.0  # workers' first job
    deadline_s: float = 60.0  # after the fault: unfinished jobs are "stuck"
    relay_queued_stale_s: float = 10.0

    def worker_env(self, prefix: str) -> dict[str, str]:
        return {
            "OCRLAB_QUEUE_PREFIX": prefix,
            "JOB_LEASE_S": f"{self.lease_s:g}",
            "JOB_MAX_ATTEMPTS": "3",
            "RELAY_INTERVAL_S": "0.5",
            "RELAY_PENDING_GRACE_S": "1",
            "RELAY_QUEUED_STALE_S": f"{self.relay_queued_stale_s:g}",
            "PYTHONUNBUFFERED": "1",
        }


def retry_db(func, *, timeout_s: float = 60.0):
    """Call func until the database answers (it may be restarting under us)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return func()
        except DB_ERRORS:
            connections.close_all()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def cell_jobs(tag: str):
    return OcrJob.objects.filter(run_tag=tag)


class Submitter(threading.Thread):
    """Keep `target` unfinished jobs of one cell in flight, through services.job_create."""

    def __init__(self, *, backend: str, tag: str, target: int, workload: str):
        super().__init__(name=f"submit-{tag}", daemon=True)
        self.backend, self.tag, self.target, self.workload = backend, tag, target, workload
        self.stop, self.ids, self.errors = threading.Event(), [], 0

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    self._top_up()
                except DB_ERRORS as exc:  # the client sees an error: nothing accepted
                    self.errors += 1
                    log.info("submit failed: %s", exc)
                    connections.close_all()
                    self.stop.wait(0.5)
                self.stop.wait(0.1)
        finally:
            connections.close_all()

    def _top_up(self) -> None:
        unfinished = cell_jobs(self.tag).exclude(status__in=FINISHED).count()
        for _ in range(self.target - unfinished):
            job = services.job_create(
                version="api",
                backend=self.backend,
                document="sample.pdf",
                workload=self.workload,
                run_tag=self.tag,
            )
            self.ids.append(str(job.id))


class CellRun:
    """What a fault needs while it runs: the cell's jobs, its workers' logs, timings."""

    def __init__(self, *, backend: str, fault: str, opts: Options, log_dir: Path, stamp: str):
        self.backend, self.fault, self.opts, self.log_dir = backend, fault, opts, log_dir
        self.tag = f"chaos-{stamp}-{backend}-{fault}"
        self.lease_s, self.down_s = opts.lease_s, opts.down_s
        self.pause_margin_s = opts.pause_margin_s
        self.submitter = Submitter(
            backend=backend, tag=self.tag, target=opts.jobs, workload=f"sleep:{opts.job_s:g}"
        )

    def submitted_count(self) -> int:
        return len(self.submitter.ids)

    def wait_running(self, *, min_run_s: float = 0.3) -> OcrJob:
        """A job of this cell that has been RUNNING for at least min_run_s (mid-job)."""
        deadline = time.monotonic() + self.opts.start_timeout_s
        while time.monotonic() < deadline:
            job = retry_db(lambda: self._running(min_run_s))
            if job is not None:
                return job
            time.sleep(POLL_S)
        raise TimeoutError(f"no job of {self.tag} started within {self.opts.start_timeout_s:g}s")

    def _running(self, min_run_s: float) -> OcrJob | None:
        cutoff = timezone.now() - timedelta(seconds=min_run_s)
        jobs = cell_jobs(self.tag).filter(status=JobStatus.RUNNING, started_at__lte=cutoff)
        return jobs.exclude(worker="").first()

    def wait_finished(self, deadline: float) -> None:
        def unfinished() -> int:
            return cell_jobs(self.tag).exclude(status__in=FINISHED).count()

        while time.monotonic() < deadline and retry_db(unfinished):
            time.sleep(POLL_S)

    def rows(self) -> list[dict]:
        fields = ("id", "status", "attempts", "created_at", "finished_at")
        return [
            {**r, "id": str(r["id"])}
            for r in retry_db(lambda: list(cell_jobs(self.tag).values(*fields)))
        ]


def worker_command(backend: str, workers: int) -> list[str]:
    return [
        sys.executable,
        "manage.py",
        "runworker",
        "--backend",
        backend,
        "--workers",
        str(workers),
    ]


def run_cell(
    *, backend: str, fault: str, opts: Options, out_dir: Path, stamp: str, prefix: str
) -> Cell:
    """Fresh workers, jobs in flight, one fault, the verdict from the job rows."""
    spec = FAULTS[fault]
    why_not = spec.applies(backend)
    if why_not:
        return Cell(backend=backend, fault=fault, skipped=why_not)
    log_dir = out_dir / "logs"
    ctx = CellRun(backend=backend, fault=fault, opts=opts, log_dir=log_dir, stamp=stamp)
    group = ServerGroup(log_dir, env=opts.worker_env(prefix))
    log_path = log_dir / f"worker-{backend}-{fault}.log"
    try:
        group.start(log_path.stem, worker_command(backend, opts.workers))
        ctx.submitter.start()
        ctx.wait_running()
        fault_at = timezone.now()
        log.info("%s / %s: injecting at %s", backend, fault, fault_at.time())
        notes = spec.inject(ctx)
        fault_end = timezone.now()
        time.sleep(opts.tail_s)
        ctx.submitter.stop.set()
        ctx.submitter.join()
        ctx.wait_finished(time.monotonic() + opts.deadline_s)
        cell = compute_cell(
            backend=backend,
            fault=fault,
            submitted=list(ctx.submitter.ids),
            rows=ctx.rows(),
            log_text=log_path.read_text(errors="replace"),
            fault_at=fault_at,
            fault_end=fault_end,
            submit_errors=ctx.submitter.errors,
        )
        cell.notes += notes
    except Exception as exc:  # one broken cell must not hide the others
        log.exception("%s / %s failed", backend, fault)
        cell = Cell(backend=backend, fault=fault, skipped=f"error: {type(exc).__name__}: {exc}")
    finally:
        ctx.submitter.stop.set()
        group.stop(timeout=5)
        _clean_up(backend, ctx.tag)
    return cell


def _clean_up(backend: str, tag: str) -> None:
    """Drop what this cell left (unfinished jobs, queued messages) so the next starts clean."""
    try:
        retry_db(
            lambda: services.jobs_delete(q=Q(run_tag=tag) & ~Q(status__in=FINISHED)), timeout_s=30
        )
        reset_backends()
        get_backend(backend).purge()
    except Exception as exc:  # a broker still down: the next cell will say so
        log.warning("clean-up after %s failed: %s", tag, exc)
    finally:
        reset_backends()


def run_all(
    *,
    backends: list[str],
    faults: list[str],
    opts: Options,
    out_dir: Path,
    prefix: str,
    on_cell=None,
) -> list[Cell]:
    """Every backend x fault, one at a time; `on_cell(cell)` after each."""
    stamp = timezone.now().strftime("%H%M%S")
    cells = []
    for backend in backends:
        reset_backends()
        retry_db(lambda b=backend: get_backend(b).purge(), timeout_s=30)
        for fault in faults:
            cell = run_cell(
                backend=backend, fault=fault, opts=opts, out_dir=out_dir, stamp=stamp, prefix=prefix
            )
            cells.append(cell)
            if on_cell:
                on_cell(cell)
    return cells
