"""Scenario families: where the queue designs differ. One warm stack per cell, repeats inside.

The load comes from the bench process (services.job_create, which publishes on commit), not
from locust: the HTTP path is the same for every backend, and a load generator that starts
in milliseconds keeps the families cheap enough for the 30-minute run.

- pickup: noop jobs one at a time (pickup latency at idle), then a burst (capacity).
- mixed: long jobs interleaved with short ones, open loop; short-job latency and the
  head-of-line penalty (a short job waiting behind a long one: Kafka partitions, prefetch).
- overload: capacity calibrated with a small burst, then open-loop arrivals at
  `overload_factor` x capacity for `overload_s`, then stop: queue depth over time, latency
  growth, broker and worker RSS, drain time, lost jobs.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass

import psutil

from apps.bench.measure import family_metrics as fm
from apps.bench.measure.cpu import CpuWindow, group_roots
from apps.bench.plan.cells import CellSpec
from apps.bench.run import processes
from apps.bench.run.burst import burst_rows, run_burst
from apps.bench.run.cell import CellError, RunConfig, probe
from apps.bench.run.waiting import wait_finished
from apps.jobs import services
from apps.jobs.models import FINISHED, OcrJob
from apps.jobs.workloads import parse_workload
from apps.ops.launch import ServerGroup, signals_ignored
from tasks.backends.registry import get_backend

FAMILIES = ("pickup", "mixed", "overload")
ROW_FIELDS = (
    "status",
    "workload",
    "attempts",
    "created_at",
    "queued_at",
    "started_at",
    "finished_at",
)
POLL_S = 0.005
ONCE_FAMILIES: tuple[str, ...] = ()  # families a chain runs once whatever its repeats
WARMUP_TIMEOUT_S = 150.0  # a Kafka consumer group may wait out the last members' session
WARMUP_ROUND_S = 15.0  # then the warm-up jobs are published again
MB = 1024 * 1024


@dataclass(frozen=True)
class FamilyParams:
    """Sizes of the families: FULL for `make bench`, QUICK for --quick, TINY for tests."""

    probe_jobs: int = 15
    burst_jobs: int = 200
    short_workload: str = "sleep:0.05"
    long_workload: str = "sleep:2"
    mixed_s: float = 4.0
    short_every_s: float = 0.2
    long_every_s: float = 2.0
    overload_workload: str = "sleep:0.2"
    calibrate_jobs: int = 10
    overload_factor: float = 1.5
    overload_s: float = 3.0
    sample_every_s: float = 0.25
    drain_timeout_s: float = 120.0


FULL = FamilyParams()
QUICK = FamilyParams(
    probe_jobs=10,
    burst_jobs=100,
    long_workload="sleep:1",
    mixed_s=3.0,
    long_every_s=1.0,
    overload_workload="sleep:0.1",
    calibrate_jobs=10,
    overload_s=3.0,
    drain_timeout_s=60.0,
)
TINY = FamilyParams(
    probe_jobs=4,
    burst_jobs=20,
    long_workload="sleep:0.6",
    mixed_s=1.5,
    short_every_s=0.25,
    long_every_s=0.75,
    overload_workload="sleep:0.1",
    calibrate_jobs=6,
    overload_s=1.5,
    drain_timeout_s=60.0,
)


def run_family_cell(
    spec: CellSpec, tag: str, config: RunConfig, params: FamilyParams = FULL
) -> list[dict]:
    """One result dict per repeat (spec.repeats), all in one warm stack of W workers."""
    reason = probe(spec)
    if reason:
        return [
            _result(step, r, tag, status="skipped", note=reason)
            for step in steps(spec)
            for r in _repeats(step)
        ]
    cell_dir = config.out_dir / "cells" / spec.cell_id
    group = ServerGroup(cell_dir / "logs", env=processes.cell_env(spec, config.env, []))
    results: list[dict] = []
    try:
        processes.start_stack(group, spec, ocr_ports=[], api_workers=1)
        ready_s = _warm_up(spec, f"{tag}-warm", config)
        for step in steps(spec):
            for repeat in _repeats(step):
                result = _result(step, repeat, f"{tag}-{step.family[:2]}{repeat}")
                with CpuWindow(roots=group_roots(group.procs)) as window:
                    result.update(STEPS[step.family](step, result["tag"], group, params, config))
                m = result["metrics"]
                m.update(window.metrics(jobs=len(result["jobs"]) + (m.get("burst_done") or 0)))
                m["ready_s"] = ready_s
                result["finished"] = time.time()
                results.append(result)
    except (CellError, TimeoutError, OSError) as exc:
        results.append(_result(spec, len(results) + 1, tag, status="error", note=str(exc)))
    finally:
        with signals_ignored():
            group.stop()
        probe(spec)  # purges the queue again
    return results


def _warm_up(spec: CellSpec, tag: str, config: RunConfig) -> float:
    """Seconds until W noop jobs are done: workers started and (Kafka) the group joined."""
    started, count = time.monotonic(), max(2, spec.workers)
    jobs = [_create(spec, tag, "noop", config.pdf_name) for _ in range(count)]
    for _ in range(int(WARMUP_TIMEOUT_S / WARMUP_ROUND_S)):
        if wait_finished(tag, count, WARMUP_ROUND_S):
            return time.monotonic() - started
        for job in jobs:  # sent before the consumers joined? send again (duplicates are skipped)
            services.job_publish(job_id=job.id, backend=spec.backend)
    if not wait_finished(tag, count, 1.0):
        raise CellError(
            f"warm-up jobs not finished within {WARMUP_TIMEOUT_S:g}s; "
            f"see {spec.cell_id}/logs/worker.log"
        )
    return time.monotonic() - started


def steps(spec: CellSpec) -> list[CellSpec]:
    """The families of a cell ('pickup+mixed+overload' chains them in one warm stack), each
    as its own spec; overload runs ONCE_FAMILIES times at most (it is the long one)."""
    out = []
    for family in spec.family.split("+"):
        repeats = min(spec.repeats, 1) if family in ONCE_FAMILIES else spec.repeats
        out.append(dataclasses.replace(spec, family=family, workload=family, repeats=repeats))
    return out


def _repeats(spec: CellSpec) -> range:
    return range(1, max(1, spec.repeats) + 1)


def _result(spec: CellSpec, repeat: int, tag: str, *, status="ok", note="") -> dict:
    one = dataclasses.replace(spec, repeat=repeat)
    return {
        "spec": one.as_dict(),
        "cell_id": one.cell_id,
        "tag": tag,
        "status": status,
        "note": note,
        "metrics": {},
        "jobs": [],
        "series": {},
        "started": time.time(),
    }


def _create(spec: CellSpec, tag: str, workload: str, document: str) -> OcrJob:
    return services.job_create(
        version=spec.version,
        backend=spec.backend,
        document=document,
        workload=workload,
        run_tag=tag,
    )


def _rows(tag: str) -> list[dict]:
    rows = OcrJob.objects.filter(run_tag=tag).order_by("created_at").values(*ROW_FIELDS)
    return [
        {k: (v.timestamp() if hasattr(v, "timestamp") else v) for k, v in row.items()}
        for row in rows
    ]


def pickup_step(spec, tag, group, params: FamilyParams, config) -> dict:
    """noop jobs one at a time (each waits for the previous), then the capacity burst."""
    for _ in range(params.probe_jobs):
        job = _create(spec, tag, "noop", config.pdf_name)
        deadline = time.monotonic() + params.drain_timeout_s
        while not OcrJob.objects.filter(pk=job.pk, status__in=FINISHED).exists():
            if time.monotonic() > deadline:
                raise CellError(f"probe job {job.pk} not finished in {params.drain_timeout_s:g}s")
            time.sleep(POLL_S)
    rows = _rows(tag)
    metrics = fm.pickup_metrics(rows)
    metrics.update(
        run_burst(
            version=spec.version,
            backend=spec.backend,
            tag=tag,
            count=params.burst_jobs,
            document=config.pdf_name,
            timeout_s=params.drain_timeout_s,
        )
    )
    metrics.update(broker_rss_mb=broker_rss_mb(spec.backend), worker_rss_mb=worker_rss_mb(group))
    return {"metrics": metrics, "jobs": rows, "burst_jobs": burst_rows(tag)}


def mixed_step(spec, tag, group, params: FamilyParams, config) -> dict:
    """Long and short jobs on a fixed schedule (open loop), then wait for all of them."""
    schedule = _mixed_schedule(params)
    started = time.monotonic()
    for at, workload in schedule:
        time.sleep(max(0.0, started + at - time.monotonic()))
        _create(spec, tag, workload, config.pdf_name)
    drained = wait_finished(tag, len(schedule), params.drain_timeout_s)
    rows = _rows(tag)
    metrics = fm.mixed_metrics(rows, short=params.short_workload)
    note = "" if drained else "drain timeout: unfinished jobs counted as lost"
    return {"metrics": metrics, "jobs": rows, "note": note}


def _mixed_schedule(params: FamilyParams) -> list[tuple[float, str]]:
    longs = _times(params.long_every_s, params.mixed_s, offset=0.0)
    shorts = _times(params.short_every_s, params.mixed_s, offset=params.short_every_s / 2)
    events = [(t, params.long_workload) for t in longs]
    events += [(t, params.short_workload) for t in shorts]
    return sorted(events)


def _times(every_s: float, span_s: float, *, offset: float) -> list[float]:
    """offset, offset + every_s, ... below span_s."""
    count = math.ceil((span_s - offset) / every_s - 1e-9) if span_s > offset else 0
    return [offset + i * every_s for i in range(count)]


def overload_step(spec, tag, group, params: FamilyParams, config) -> dict:
    """Calibrate (warm-up; its rate is reported), then arrivals at 1.5x the workers' nominal
    rate (W / the workload's seconds: the same offered load for every backend, so a backend
    that calibrates low is not offered less), then stop and drain."""
    calib = f"{tag}-cal"
    for _ in range(params.calibrate_jobs):
        _create(spec, calib, params.overload_workload, config.pdf_name)
    wait_finished(calib, params.calibrate_jobs, params.drain_timeout_s)
    capacity = fm.drain_rate(_rows(calib))
    if not capacity:
        raise CellError("overload: calibration jobs did not finish")
    rate = params.overload_factor * spec.workers / parse_workload(params.overload_workload)[1]
    sampler = RssSampler(spec.backend, group, params.sample_every_s)
    origin = time.time()
    with sampler:
        arrivals = _open_loop(spec, tag, rate, params, config)
        stopped_at = time.time()
        drained = wait_finished(tag, arrivals, params.drain_timeout_s)
    rows = _rows(tag)
    metrics = fm.overload_metrics(rows, arrivals=arrivals, stopped_at=stopped_at, rate_per_s=rate)
    depth = fm.queue_depth(rows, step_s=params.sample_every_s, origin=origin)
    metrics.update(
        capacity_per_s=capacity,
        processed_per_s=fm.drain_rate(rows),
        peak_depth=fm.peak(depth),
        broker_rss_peak_mb=fm.peak(sampler.broker),
        worker_rss_peak_mb=fm.peak(sampler.workers),
        arrivals_s=stopped_at - origin,
    )
    series = {"depth": depth, "broker_rss_mb": sampler.broker, "worker_rss_mb": sampler.workers}
    note = "" if drained else "drain timeout: unfinished jobs counted as lost"
    return {"metrics": metrics, "jobs": rows, "series": series, "note": note}


def _open_loop(spec, tag, rate: float, params: FamilyParams, config) -> int:
    """Create jobs at `rate` per second for `overload_s`, on schedule (never waits on them)."""
    count = max(1, int(rate * params.overload_s))
    started = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, started + i / rate - time.monotonic()))
        _create(spec, tag, params.overload_workload, config.pdf_name)
    return count


STEPS = {"pickup": pickup_step, "mixed": mixed_step, "overload": overload_step}


def broker_processes(backend: str) -> tuple[str, ...]:
    """Process names of the servers the backend needs (its broker, or PostgreSQL when
    the job row is the message)."""
    services = get_backend(backend).services()
    return tuple(dict.fromkeys(name for service in services for name in service.processes))


def broker_rss_mb(backend: str, names: tuple[str, ...] | None = None) -> float | None:
    """Summed RSS (MB) of the broker's processes on this machine; None if none is found."""
    names = broker_processes(backend) if names is None else names
    total = 0
    for proc in psutil.process_iter(["name", "memory_info"]):
        if proc.info["name"] in names and proc.info["memory_info"]:
            total += proc.info["memory_info"].rss
    return total / MB if total else None


def worker_rss_mb(group: ServerGroup) -> float | None:
    """RSS (MB) of the runworker process and its children (group.procs[0])."""
    if not group.procs:
        return None
    try:
        root = psutil.Process(group.procs[0].pid)
        procs = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / MB
    except psutil.Error:
        return None


class RssSampler:
    """Broker and worker RSS every `every_s` in a thread: [[seconds since start, MB], ...]."""

    def __init__(self, backend: str, group: ServerGroup, every_s: float):
        self.backend, self.group, self.every_s = backend, group, every_s
        self.names = broker_processes(backend)
        self.broker: list[list[float]] = []
        self.workers: list[list[float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._origin = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            t = round(time.time() - self._origin, 3)
            broker, workers = broker_rss_mb(self.backend, self.names), worker_rss_mb(self.group)
            if broker is not None:
                self.broker.append([t, broker])
            if workers is not None:
                self.workers.append([t, workers])
            self._stop.wait(self.every_s)
