"""Prometheus metrics computed from the job rows at scrape time (a few aggregates).

Every API process answers with the same numbers (they come from the database), so any
number of uvicorn workers can serve /metrics without a multiprocess registry.
"""

from collections.abc import Iterator

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from apps.ops import queries


class JobsCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield self._jobs()
        yield self._per_backend(
            "ocrlab_queue_depth",
            "Ready jobs (PENDING/QUEUED) waiting per backend.",
            queries.queue_depth(),
        )
        yield self._histogram(
            "ocrlab_job_duration_seconds",
            "Service time (started to finished) of DONE and FAILED jobs.",
            queries.histogram(start="started_at", end="finished_at", statuses=["DONE", "FAILED"]),
        )
        yield self._histogram(
            "ocrlab_job_pickup_seconds",
            "Pickup latency (first hand-over to the broker to the last claim).",
            queries.histogram(start="queued_at", end="started_at"),
        )
        yield self._per_backend(
            "ocrlab_jobs_republished",
            "Jobs handed to their broker more than once (relay, retry or requeue).",
            queries.republished(),
        )
        yield self._per_backend(
            "ocrlab_jobs_lease_expired",
            "RUNNING jobs whose lease ran out (worker lost, waiting for the relay).",
            queries.expired_leases(),
        )
        yield from self._workers()

    @staticmethod
    def _jobs() -> Metric:
        family = GaugeMetricFamily(
            "ocrlab_jobs",
            "Jobs by status, backend and version.",
            labels=["status", "backend", "version"],
        )
        for row in queries.job_counts():
            family.add_metric([row["status"], row["backend"], row["version"]], row["n"])
        return family

    @staticmethod
    def _per_backend(name: str, doc: str, values: dict[str, int]) -> Metric:
        family = GaugeMetricFamily(name, doc, labels=["backend"])
        for alias in sorted(set(settings.JOB_BACKENDS) | set(values)):
            family.add_metric([alias], values.get(alias, 0))
        return family

    @staticmethod
    def _histogram(name: str, doc: str, per_backend: dict[str, dict]) -> Metric:
        family = HistogramMetricFamily(name, doc, labels=["backend"])
        for backend, hist in sorted(per_backend.items()):
            bounds = [f"{b:g}" for b in queries.HISTOGRAM_BUCKETS_S] + ["+Inf"]
            counts = [*hist["buckets"], hist["count"]]
            family.add_metric(
                [backend], buckets=list(zip(bounds, counts, strict=True)), sum_value=hist["sum_s"]
            )
        return family

    @staticmethod
    def _workers() -> Iterator[Metric]:
        workers = queries.live_workers()
        live = GaugeMetricFamily(
            "ocrlab_live_workers", "Workers holding a job under a live lease.", labels=["backend"]
        )
        beat = GaugeMetricFamily(
            "ocrlab_worker_last_heartbeat_timestamp_seconds",
            "Last lease renewal of each busy worker (Unix time).",
            labels=["worker", "backend"],
        )
        counts: dict[str, set[str]] = {alias: set() for alias in settings.JOB_BACKENDS}
        for row in workers:
            counts.setdefault(row["backend"], set()).add(row["worker"])
            beat.add_metric([row["worker"], row["backend"]], row["heartbeat_at"].timestamp())
        for alias, names in sorted(counts.items()):
            live.add_metric([alias], len(names))
        yield live
        yield beat


registry = CollectorRegistry(auto_describe=False)
registry.register(JobsCollector())
