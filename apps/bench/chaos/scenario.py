"""Chaos phases: every backend at once, one fault at a time.

Each backend gets one worker group (`runworker`) for the whole run; a phase keeps N jobs
in flight on every backend, injects one fault into each (a service they share, such as
PostgreSQL, is restarted once for all), waits on the job rows until every job finished
(or the deadline) and reads one cell per backend from the rows and that phase's slice of
the worker log. A fault that kills a worker leaves the restart to its supervisor; only a
backend whose cell failed gets its queue purged and a fresh worker group, so one broken
cell cannot spill into the next phase."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from django.db import DatabaseError, InterfaceError, connections
from django.db.models import Q
from django.utils import timezone

from apps.bench.chaos.faults import FAULTS, broker_of
from apps.bench.chaos.summary import FINISHED, Cell, compute_cell
from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from apps.jobs.versions import API_VERSION
from apps.ops.launch import ServerGroup, worker_command
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
    settle_s: float = 0.5  # between phases: let a restarted worker take its place
    start_timeout_s: float = 90.0  # workers' first job
    deadline_s: float = 60.0  # after the fault: unfinished jobs are "stuck"
    relay_queued_stale_s: float | None = None  # None: the default (2 x the lease)

    def worker_env(self, prefix: str) -> dict[str, str]:
        """The workers' settings: the scaled-down lease; the relay at its own defaults
        (interval, grace, resend after 2 x the lease), as a user runs it."""
        env = {
            "OCRLAB_QUEUE_PREFIX": prefix,
            "JOB_LEASE_S": f"{self.lease_s:g}",
            "JOB_MAX_ATTEMPTS": "3",
            "PYTHONUNBUFFERED": "1",
        }
        if self.relay_queued_stale_s is not None:
            env["RELAY_QUEUED_STALE_S"] = f"{self.relay_queued_stale_s:g}"
        return env


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
        self.ids: list[str]
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
                version=API_VERSION,
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


class Workers:
    """One backend's worker group for the whole run; its log, read phase by phase."""

    def __init__(self, *, backend: str, opts: Options, log_dir: Path, prefix: str):
        self.backend, self.opts, self.log_dir, self.prefix = backend, opts, log_dir, prefix
        self.log_path = log_dir / f"worker-{backend}.log"
        self.group: ServerGroup | None = None

    def start(self) -> None:
        self.group = ServerGroup(self.log_dir, env=self.opts.worker_env(self.prefix))
        self.group.start(self.log_path.stem, worker_command(self.backend, self.opts.workers))

    def stop(self) -> None:
        if self.group is not None:
            self.group.stop(timeout_s=5)
            self.group = None

    def offset(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def text_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log_file:
            log_file.seek(offset)
            return log_file.read().decode(errors="replace")


def _each[T](calls: dict[str, Callable[[], T]]) -> dict[str, T | Exception]:
    """Run the calls in threads at once; each one's result, or the exception it raised."""
    results: dict[str, T | Exception] = {}

    def call(key: str, func: Callable[[], T]) -> None:
        try:
            results[key] = func()
        except Exception as exc:  # reported per backend by the caller
            log.exception("%s failed", key)
            results[key] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call, args=item, daemon=True) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _error(backend: str, fault: str, exc: Exception) -> Cell:
    return Cell(backend=backend, fault=fault, skipped=f"error: {type(exc).__name__}: {exc}")


def _groups(scope: str, backends: list[str]) -> dict[str, list[str]]:
    """Who shares one injection: PostgreSQL is restarted once for all, a broker once for
    the backends on it, a worker fault hits each backend's own workers."""
    if scope == "database":
        return {"postgres": backends} if backends else {}
    if scope == "broker":
        by_broker: dict[str, list[str]] = {}
        for backend in backends:
            broker = broker_of(backend)
            by_broker.setdefault(broker.url if broker else backend, []).append(backend)
        return by_broker
    return {backend: [backend] for backend in backends}


def run_phase(*, fault: str, workers: dict[str, Workers], opts: Options, stamp: str) -> list[Cell]:
    """Jobs in flight on every backend, `fault` injected into each, one cell per backend."""
    spec = FAULTS[fault]
    cells: dict[str, Cell] = {}
    ctxs: dict[str, CellRun] = {}
    for backend, group in workers.items():
        if why_not := spec.applies(backend):
            cells[backend] = Cell(backend=backend, fault=fault, skipped=why_not)
        else:
            ctxs[backend] = CellRun(
                backend=backend, fault=fault, opts=opts, log_dir=group.log_dir, stamp=stamp
            )
    offsets = {backend: workers[backend].offset() for backend in ctxs}
    try:
        for ctx in ctxs.values():
            ctx.submitter.start()
        started = _each({b: ctx.wait_running for b, ctx in ctxs.items()})
        for backend, result in started.items():
            if isinstance(result, Exception):
                cells[backend] = _error(backend, fault, result)
        live = [b for b in ctxs if b not in cells]
        times = _inject(spec, {b: ctxs[b] for b in live})
        time.sleep(opts.tail_s)
        for ctx in ctxs.values():
            ctx.submitter.stop.set()
            ctx.submitter.join()
        deadline = time.monotonic() + opts.deadline_s
        for backend in live:
            ctxs[backend].wait_finished(deadline)
            cells[backend] = _cell_of(ctxs[backend], workers[backend], offsets[backend], times)
    finally:
        for ctx in ctxs.values():
            ctx.submitter.stop.set()
    return [cells[backend] for backend in workers]


def _inject(spec, ctxs: dict[str, CellRun]) -> dict[str, tuple | Exception]:
    """Inject once per group of backends sharing the fault: backend -> (at, end, notes)."""

    def inject(members: list[str]):
        def run():
            fault_at = timezone.now()
            log.info("%s / %s: injecting at %s", ",".join(members), spec.name, fault_at.time())
            notes = spec.inject(ctxs[members[0]])
            return fault_at, timezone.now(), notes

        return run

    groups = _groups(spec.scope, list(ctxs))
    done = _each({key: inject(members) for key, members in groups.items()})
    return {backend: done[key] for key, members in groups.items() for backend in members}


def _cell_of(
    ctx: CellRun, group: Workers, offset: int, times: dict[str, tuple | Exception]
) -> Cell:
    outcome = times[ctx.backend]
    if isinstance(outcome, Exception):
        return _error(ctx.backend, ctx.fault, outcome)
    fault_at, fault_end, notes = outcome
    cell = compute_cell(
        backend=ctx.backend,
        fault=ctx.fault,
        submitted=list(ctx.submitter.ids),
        rows=ctx.rows(),
        log_text=group.text_since(offset),
        fault_at=fault_at,
        fault_end=fault_end,
        submit_errors=ctx.submitter.errors,
    )
    cell.notes += notes
    return cell


def _clean_up(backend: str, tag: str) -> None:
    """Drop what a failed cell left (unfinished jobs, queued messages) so the next starts
    clean; its workers are stopped meanwhile (a Kafka purge deletes their topic)."""
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


def _recover(cells: list[Cell], workers: dict[str, Workers], stamp: str) -> None:
    """A fresh worker group (and an empty queue) for each backend whose cell failed."""
    for cell in cells:
        if cell.ok or cell.skipped.startswith("n/a"):
            continue
        log.info("%s / %s did not pass: fresh workers for the next fault", cell.backend, cell.fault)
        workers[cell.backend].stop()
        _clean_up(cell.backend, f"chaos-{stamp}-{cell.backend}-{cell.fault}")
        workers[cell.backend].start()


def run_all(
    *,
    backends: list[str],
    faults: list[str],
    opts: Options,
    out_dir: Path,
    prefix: str,
    on_cell=None,
) -> list[Cell]:
    """Every fault in turn, on every backend at once; `on_cell(cell)` after each cell.
    Returns the cells backend by backend, in the order of `faults`."""
    stamp = timezone.now().strftime("%H%M%S")
    log_dir = out_dir / "logs"
    workers = {b: Workers(backend=b, opts=opts, log_dir=log_dir, prefix=prefix) for b in backends}
    cells: list[Cell] = []
    try:
        for backend, group in workers.items():
            reset_backends()
            retry_db(lambda b=backend: get_backend(b).purge(), timeout_s=30)
            group.start()
        for fault in faults:
            phase = run_phase(fault=fault, workers=workers, opts=opts, stamp=stamp)
            reset_backends()  # this process's clients may predate a broker restart
            for cell in phase:
                if on_cell:
                    on_cell(cell)
            cells += phase
            _recover(phase, workers, stamp)
            # workers are up now (or fresh ones start in seconds): a backend that runs no
            # job within the deadline is an error of this phase, not a reason to wait 90 s
            opts = replace(opts, start_timeout_s=min(opts.start_timeout_s, opts.deadline_s))
            time.sleep(opts.settle_s)
    finally:
        for group in workers.values():
            group.stop()
    order = {backend: i for i, backend in enumerate(backends)}
    return sorted(cells, key=lambda c: order[c.backend])  # stable: fault order kept
