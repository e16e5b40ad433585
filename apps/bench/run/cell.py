"""Run one bench cell: reset, start its processes, warm up, load with locust, drain, measure.

Every function that starts a process takes the environment for it, so tests can point the
children at the test database and their queue prefix (tests/conftest.py `subprocess_env`).
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from django.db.models import Q
from django.utils import timezone

from apps.bench.measure.cpu import CpuWindow, group_roots
from apps.bench.measure.metrics import JobTimes, cell_metrics
from apps.bench.plan.cells import CellSpec
from apps.bench.run import processes, submit_cells
from apps.bench.run.burst import burst_rows, burst_tag, run_burst
from apps.bench.run.waiting import wait_finished
from apps.jobs.models import FINISHED, OcrJob
from apps.jobs.versions import API_VERSION, submit_path
from apps.ops import checks, launch
from ocrproject.env import api_auth_headers
from tasks.backends.registry import get_backend

ROW_FIELDS = (
    "id",
    "status",
    "created_at",
    "queued_at",
    "started_at",
    "finished_at",
    "attempts",
    "worker",
    "error",
)
WARMUP_TIMEOUT_S = {"ocr": 180.0}
WARMUP_DEFAULT_TIMEOUT_S = 60.0
BROKER_PROBE_S = 15.0


@dataclass
class RunConfig:
    """Options shared by every cell of a run."""

    out_dir: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    drain_timeout_s: float = 300.0
    poll_interval_s: float = 0.2
    wait_mode: str = "wait"  # locust job users: long-poll ?wait= ("wait") or "poll"
    pdf_name: str = "sample.pdf"
    api_workers: int = 2
    warmup_jobs: int = 2
    burst_jobs: int = 0  # noop queue cells: N jobs published at once after the load
    submit: submit_cells.SubmitOptions = field(default_factory=submit_cells.SubmitOptions)


class CellError(Exception):
    """The cell could not run (a process did not start, warm-up failed, ...)."""


def run_cell(spec: CellSpec, tag: str, config: RunConfig) -> dict:
    """The cell's result dict: spec, status (ok, skipped, error), note, metrics, job rows."""
    started = timezone.now()
    result = {
        "spec": spec.as_dict(),
        "cell_id": spec.cell_id,
        "tag": tag,
        "status": "ok",
        "note": "",
        "metrics": {},
        "jobs": [],
        "started": started.isoformat(),
    }
    reason = probe(spec)
    if reason:
        return {**result, "status": "skipped", "note": reason}
    try:
        result.update(_measure(spec, tag, config))
    except (CellError, TimeoutError, OSError) as exc:
        result.update(status="error", note=str(exc))
    finally:
        _purge_quietly(spec)
    result["finished"] = timezone.now().isoformat()
    return result


def probe(spec: CellSpec) -> str | None:
    """Why the cell cannot run (its broker is unreachable), or None; purges its queue."""
    if spec.kind != "queue":
        return None
    try:
        backend = get_backend(spec.backend)
    except Exception as exc:  # missing module or client library: skip, do not crash
        return f"backend {spec.backend!r} unavailable: {type(exc).__name__}: {exc}"
    for service in backend.services():
        address = service.address
        if address and not launch.tcp_reachable(*address):
            return f"{service.kind} of {spec.backend!r} unreachable at {address[0]}:{address[1]}"
    error = checks.call_with_timeout(backend.purge, BROKER_PROBE_S)
    return f"purge of {spec.backend!r} failed: {error}" if error else None


def _purge_quietly(spec: CellSpec) -> None:
    if spec.kind == "queue":
        checks.call_with_timeout(get_backend(spec.backend).purge, BROKER_PROBE_S)


def _measure(spec: CellSpec, tag: str, config: RunConfig) -> dict:
    cell_dir = config.out_dir / "cells" / spec.cell_id
    OcrJob.objects.filter(run_tag__in=[tag, f"{tag}-warm", burst_tag(tag)]).delete()
    ocr_ports = [launch.free_port() for _ in range(spec.workers)] if spec.kind == "sync" else []
    env = processes.cell_env(spec, config.env, ocr_ports)
    group = launch.ServerGroup(cell_dir / "logs", env=env)
    try:
        host = processes.start_stack(
            group, spec, ocr_ports=ocr_ports, api_workers=config.api_workers
        )
        warm_up(spec, host, f"{tag}-warm", config)
        since = timezone.now()
        with CpuWindow(roots=group_roots(group.procs)) as window:  # start -> drained
            note = run_load(spec, host, tag, cell_dir, config)
            drained = drain(spec, tag, since, config.drain_timeout_s)
        rows = job_rows(spec, tag, since, timezone.now())
        burst = _burst(spec, tag, config)
    finally:
        with launch.signals_ignored():
            group.stop()
    summary = _summarize(spec, rows, cell_dir, note, drained)
    summary["metrics"].update(burst)
    if burst:
        summary["burst_jobs"] = burst_rows(tag)
    summary["metrics"].update(window.metrics(jobs=len(rows)))
    return summary


def _burst(spec: CellSpec, tag: str, config: RunConfig) -> dict:
    """For noop queue cells: the capacity burst (see apps.bench.run.burst)."""
    if spec.kind != "queue" or spec.workload != "noop" or config.burst_jobs < 1:
        return {}
    return run_burst(
        version=spec.version,
        backend=spec.backend,
        tag=tag,
        count=config.burst_jobs,
        document=config.pdf_name,
        timeout_s=config.drain_timeout_s,
    )


def run_load(spec: CellSpec, host: str, tag: str, cell_dir: Path, config: RunConfig) -> str:
    """The cell's load: the submit load generator for `submit` cells, else locust."""
    if spec.workload != submit_cells.SUBMIT:
        return run_locust(spec, host, tag, cell_dir, config)
    run = submit_cells.SubmitRun(host, tag, cell_dir, config.env, config.pdf_name, config.submit)
    return submit_cells.run_submit(spec, run)


def _load_stats(spec: CellSpec, cell_dir: Path) -> tuple:
    if spec.workload != submit_cells.SUBMIT:
        return processes.read_locust_stats(cell_dir / "locust_stats.csv")
    result = submit_cells.read_result(cell_dir)
    return submit_cells.submit_stats(result), submit_cells.capacity_metrics(result)


def _summarize(spec: CellSpec, rows: list[dict], cell_dir: Path, note: str, drained: bool) -> dict:
    submit, extra = _load_stats(spec, cell_dir)
    metrics = cell_metrics([job_times(r) for r in rows], deadline_s=spec.deadline_s, submit=submit)
    metrics.update(extra)
    notes = [note] if note else []
    if not drained:
        notes.append("drain timeout: unfinished jobs counted as timeouts")
    return {"metrics": metrics, "jobs": rows, "note": "; ".join(notes)}


def warm_up(spec: CellSpec, host: str, tag: str, config: RunConfig) -> None:
    """A couple of jobs (sync: one call per OCR server) so every process is hot."""
    timeout_s = WARMUP_TIMEOUT_S.get(spec.workload, WARMUP_DEFAULT_TIMEOUT_S)
    body = {
        "pdfName": config.pdf_name,
        "tag": tag,
        "workload": submit_cells.job_workload(spec.workload),
    }
    if spec.version == API_VERSION:
        body["backend"] = spec.backend
    path = submit_path(spec.version)
    count = spec.workers if spec.kind == "sync" else config.warmup_jobs
    codes = _post_all(host, path, body, count, timeout_s)
    expected = 200 if spec.kind == "sync" else 202
    if any(code != expected for code in codes):
        raise CellError(f"warm-up {path} answered {codes}; see {spec.cell_id}/logs")
    if spec.kind == "queue" and not wait_finished(tag, count, timeout_s, step_s=0.2):
        raise CellError(
            f"warm-up jobs not finished within {timeout_s:g}s; see {spec.cell_id}/logs/worker.log"
        )


def _post_all(host: str, path: str, body: dict, count: int, timeout_s: float) -> list[int]:
    """POST `body` `count` times at once; the status codes (0: no answer)."""
    client = httpx.Client(base_url=host, timeout=timeout_s, headers=api_auth_headers())
    with client, ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: _post(client, path, body), range(count)))


def _post(client: httpx.Client, path: str, body: dict) -> int:
    try:
        return client.post(path, json=body).status_code
    except httpx.HTTPError:
        return 0


def run_locust(spec: CellSpec, host: str, tag: str, cell_dir: Path, config: RunConfig) -> str:
    """Locust headless as a subprocess; '' when it ended by itself, else a note."""
    cmd = processes.locust_command(
        spec,
        host=host,
        csv_prefix=cell_dir / "locust",
        tag=tag,
        pdf_name=config.pdf_name,
        poll_interval_s=config.poll_interval_s,
        wait_mode=config.wait_mode,
    )
    proc = launch.start(cmd, log=cell_dir / "locust.log", env=config.env)
    try:
        proc.wait(processes.locust_timeout_s(spec))
    except subprocess.TimeoutExpired:
        return "locust did not finish in time and was stopped"
    finally:
        with launch.signals_ignored():
            launch.stop_group(proc, timeout_s=processes.LOCUST_STOP_S)
    return "" if proc.returncode == 0 else f"locust exited with {proc.returncode}"


def cell_rows(spec: CellSpec, tag: str, since: datetime, until: datetime):
    """The cell's jobs: its tag; for V0-V2 also untagged sync calls made during the run."""
    query = Q(run_tag=tag)
    if spec.kind == "sync":
        query |= Q(
            run_tag="",
            version=spec.version,
            backend="http",
            created_at__gte=since,
            created_at__lte=until,
        )
    return OcrJob.objects.filter(query)


def drain(spec: CellSpec, tag: str, since: datetime, timeout_s: float) -> bool:
    """Wait until every job of the cell is finished; False after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    until = timezone.now()
    while time.monotonic() < deadline:
        if not cell_rows(spec, tag, since, until).exclude(status__in=FINISHED).exists():
            return True
        time.sleep(0.25)
    return False


def job_rows(spec: CellSpec, tag: str, since: datetime, until: datetime) -> list[dict]:
    """The cell's job rows as plain dicts (times as epoch seconds)."""
    rows = cell_rows(spec, tag, since, until).order_by("created_at").values(*ROW_FIELDS)
    return [_plain(row) for row in rows]


def _plain(row: dict) -> dict:
    out = {}
    for name, value in row.items():
        if isinstance(value, datetime):
            value = value.timestamp()
        out[name] = str(value) if name == "id" else value
    out["error"] = (out.get("error") or "")[:200]
    return out


def job_times(row: dict) -> JobTimes:
    """A plain job row (see job_rows) as JobTimes."""
    return JobTimes(
        status=row["status"],
        created=row["created_at"],
        queued=row["queued_at"],
        started=row["started_at"],
        finished=row["finished_at"],
        attempts=row.get("attempts") or 0,
    )
