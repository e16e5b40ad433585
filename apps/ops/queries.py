"""Read-only queries on job rows for /metrics and the dashboard: a few aggregates each."""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone

from apps.jobs.models import READY, JobStatus, OcrJob
from apps.jobs.workers import workers_live

# Upper bounds of the duration and pickup histograms, in seconds.
HISTOGRAM_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LIVE_WORKERS_LIMIT = 200
RECENT_FAILURES_LIMIT = 10


def job_counts() -> list[Mapping[str, Any]]:
    """[{status, backend, version, n}]: one GROUP BY over the table."""
    return list(OcrJob.objects.values("status", "backend", "version").annotate(n=Count("id")))


def queue_depth() -> dict[str, int]:
    """Ready jobs (PENDING or QUEUED, not held back by a retry delay) per backend."""
    now = timezone.now()
    rows = (
        OcrJob.objects.filter(status__in=READY)
        .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
        .values("backend")
        .annotate(n=Count("id"))
    )
    return {row["backend"]: row["n"] for row in rows}


def histogram(*, start: str, end: str, statuses=None) -> dict[str, dict]:
    """{backend: {"buckets": [cumulative counts per bound], "count": n, "sum_s": s}} of
    `end - start` over every row that has both times (one aggregate query)."""
    span = ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    rows = OcrJob.objects.filter(**{f"{start}__isnull": False, f"{end}__isnull": False})
    if statuses:
        rows = rows.filter(status__in=statuses)
    buckets = {
        f"le_{i}": Count("id", filter=Q(span__lte=timedelta(seconds=bound)))
        for i, bound in enumerate(HISTOGRAM_BUCKETS_S)
    }
    result = {}
    for row in (
        rows.annotate(span=span)
        .values("backend")
        .annotate(n=Count("id"), total=Sum("span"), **buckets)
    ):
        result[row["backend"]] = {
            # django-stubs types the row without the **buckets annotations (dynamic names)
            "buckets": [row[f"le_{i}"] for i in range(len(HISTOGRAM_BUCKETS_S))],  # type: ignore[literal-required]
            "count": row["n"],
            "sum_s": row["total"].total_seconds() if row["total"] else 0.0,
        }
    return result


def republished() -> dict[str, int]:
    """Jobs handed to their broker more than once (relay republish, retry or requeue): their
    last hand-over (`published_at`) is later than the first (`queued_at`)."""
    rows = (
        OcrJob.objects.filter(published_at__gt=F("queued_at"))
        .values("backend")
        .annotate(n=Count("id"))
    )
    return {row["backend"]: row["n"] for row in rows}


def live_workers() -> list[dict]:
    """Workers holding a job under a live lease (their heartbeat keeps it alive), with it."""
    now = timezone.now()
    lease = timedelta(seconds=settings.JOB_LEASE_S)
    rows = (
        OcrJob.objects.filter(status=JobStatus.RUNNING, lease_expires_at__gt=now)
        .exclude(worker="")
        .order_by("backend", "worker")
        .values("id", "worker", "backend", "document", "workload", "started_at", "lease_expires_at")
    )
    # lease_expires_at is nullable, but not on these rows (filtered on lease_expires_at__gt)
    return [
        {**row, "heartbeat_at": row["lease_expires_at"] - lease}  # type: ignore[operator]
        for row in rows[:LIVE_WORKERS_LIMIT]
    ]


def idle_workers(*, busy: set[str]) -> list[dict]:
    """Workers whose heartbeat is live (apps/jobs/workers.py) but who hold no job."""
    rows = workers_live().values("worker", "backend", "started_at", "beat_at")
    return [dict(row) for row in rows[:LIVE_WORKERS_LIMIT] if row["worker"] not in busy]


def expired_leases() -> dict[str, int]:
    """RUNNING jobs whose lease ran out (worker lost; the relay will put them back)."""
    rows = (
        OcrJob.objects.filter(status=JobStatus.RUNNING, lease_expires_at__lte=timezone.now())
        .values("backend")
        .annotate(n=Count("id"))
    )
    return {row["backend"]: row["n"] for row in rows}


def finished_since(*, seconds: float) -> dict[str, int]:
    """{status: n} of jobs finished in the last `seconds`."""
    since = timezone.now() - timedelta(seconds=seconds)
    rows = OcrJob.objects.filter(finished_at__gte=since).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def recent_failures(*, limit: int = RECENT_FAILURES_LIMIT) -> list[dict]:
    rows = OcrJob.objects.filter(status=JobStatus.FAILED).order_by("-finished_at")
    fields = ("id", "backend", "version", "document", "error", "error_code", "finished_at")
    return list(rows.values(*fields)[:limit])
