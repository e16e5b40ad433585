"""A noop burst: the queue's capacity without HTTP and without closed-loop users.

Locust users wait for each job, so a noop cell's throughput is bounded by users / latency.
The burst inserts N noop jobs in one statement and publishes them from the bench process
as fast as the broker takes them, while the cell's workers run; its drain rate
(N / (last finished - first created)) is what the broker plus the workers can do.
"""

from __future__ import annotations

import time

from django.conf import settings

from apps.bench.measure.metrics import JobTimes, percentile, throughput
from apps.bench.run.waiting import wait_finished
from apps.jobs import services
from apps.jobs.models import OcrJob

WAIT_STEP_S = 0.2


def burst_tag(tag: str) -> str:
    return f"{tag}-burst"


def run_burst(
    *, version: str, backend: str, tag: str, count: int, document: str, timeout_s: float
) -> dict[str, float | int | None]:
    """Publish `count` noop jobs at once; wait for them; their drain rate and latency."""
    label = burst_tag(tag)
    jobs = _insert(version, backend, label, count, document)
    started = time.perf_counter()
    published = sum(services.job_publish(job_id=job.id, backend=backend) for job in jobs)
    publish_s = time.perf_counter() - started
    wait_finished(label, count, timeout_s, WAIT_STEP_S)
    metrics = _metrics(label)
    metrics.update(
        burst_jobs=count,
        burst_published=published,
        burst_publish_per_s=published / publish_s if publish_s > 0 else None,
    )
    return metrics


def burst_rows(tag: str) -> list[dict]:
    """The burst's job rows (jobs.csv: their own tag `<tag>-burst`), times as seconds."""
    fields = ("id", "status", "attempts", "created_at", "queued_at", "started_at", "finished_at")
    rows = OcrJob.objects.filter(run_tag=burst_tag(tag)).order_by("created_at").values(*fields)
    return [{k: _plain(v) for k, v in row.items()} for row in rows]


def _plain(value):
    """A row value for JSON and CSV: datetimes as seconds, ids as text."""
    if hasattr(value, "timestamp"):
        return value.timestamp()
    return value if isinstance(value, str | int | float | type(None)) else str(value)


def _insert(version: str, backend: str, label: str, count: int, document: str) -> list[OcrJob]:
    """`count` PENDING noop rows in one statement (the `db` workers may take them at once)."""
    rows = (
        OcrJob(
            version=version,
            backend=backend,
            document=document,
            workload="noop",
            run_tag=label,
            max_attempts=settings.JOB_MAX_ATTEMPTS,
        )
        for _ in range(count)
    )
    return OcrJob.objects.bulk_create(rows)


def _metrics(label: str) -> dict[str, float | int | None]:
    fields = ("status", "created_at", "queued_at", "started_at", "finished_at")
    times = [_times(row) for row in OcrJob.objects.filter(run_tag=label).values(*fields)]
    total = [t.total_s for t in times if t.status == "DONE" and t.total_s is not None]
    return {
        "burst_done": sum(1 for t in times if t.status == "DONE"),
        "burst_throughput": throughput(times),
        "burst_e2e_p99_ms": None if (p99 := percentile(total, 99)) is None else p99 * 1000,
    }


def _times(row: dict) -> JobTimes:
    def ts(name: str) -> float | None:
        value = row[name]
        return None if value is None else value.timestamp()

    return JobTimes(
        status=row["status"],
        created=row["created_at"].timestamp(),
        queued=ts("queued_at"),
        started=ts("started_at"),
        finished=ts("finished_at"),
    )
