"""The long-jobs family: jobs longer than each broker's own redelivery timer, run twice.

Every backend alias of `JOB_BACKENDS` that declares its timer (`redelivery_timer`, see
tasks/backends/timers.py) gets two runs of N `sleep:S` jobs (no CPU, so every backend
runs at once): `defaults`, the timer at its default behaviour scaled down to `timer_s`,
and `lab`, the lab's settings for long jobs. An alias that declares none gets a row that
says so ("lease only"). A broker-wide timer (RabbitMQ's consumer_timeout) is set on a
private RabbitMQ node started for the family (scripts/private_rabbit.sh), never on the
lab's shared one. Each run's worker group gets a queue prefix of its own, the alias's
options through OCRLAB_BACKEND_OPTIONS and the timer's environment; this process
publishes with the same settings. Rows come from the job rows and the workers' logs
(apps/bench/report/long_jobs.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from apps.bench.report.long_jobs import Row, compute_row
from apps.jobs import services
from apps.jobs.models import OcrJob
from apps.jobs.versions import API_VERSION
from apps.ops.launch import ROOT, ServerGroup, worker_command
from tasks.backends.registry import backend_aliases, get_backend, reset_backends
from tasks.backends.timers import BROKER_RABBITMQ, RedeliveryTimer, Tuning

log = logging.getLogger("bench.long_jobs")
MODES = ("defaults", "lab")
FINISHED = ("DONE", "FAILED", "CANCELLED")
POLL_S = 0.5
RABBIT_SCRIPT = ROOT / "scripts" / "private_rabbit.sh"
RABBIT_START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Params:
    timer_s: float = 10.0  # every timer, scaled down to this in the defaults run
    job_s: float = 25.0  # each job is sleep:<job_s>, longer than the scaled timer
    jobs: int = 2
    workers: int = 3  # one more than jobs: an idle worker takes what comes back
    time_limit_s: float = 40.0  # JOB_TIME_LIMIT_S of the workers: above the jobs
    deadline_s: float = 90.0  # after the jobs were created; unfinished then = not finished
    settle_s: float = 8.0  # after the last job finished: deliveries that come late (Kafka
    # re-reads an uncommitted record once the group has rebalanced)


TESTS = Params(timer_s=3.0, job_s=6.0, time_limit_s=15.0, deadline_s=40.0, settle_s=2.0)


def declared_timer(alias: str, params: Params) -> RedeliveryTimer | None:
    """The alias's redelivery timer, or None when its backend declares none."""
    describe = getattr(get_backend(alias), "redelivery_timer", None)
    return describe(scaled_s=params.timer_s) if describe else None


class PrivateRabbit:
    """A private RabbitMQ node (scripts/private_rabbit.sh) for a broker-wide timer."""

    def __init__(self) -> None:
        self.url = ""

    def _run(self, *args: str, timeout_s: float = 30.0) -> str:
        done = subprocess.run(
            ["bash", str(RABBIT_SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
        return done.stdout.strip()

    def start(self) -> str:
        self._run("start", timeout_s=RABBIT_START_TIMEOUT_S)
        self.url = self._run("url")
        return self.url

    def set_consumer_timeout(self, seconds: float) -> None:
        self._run("consumer-timeout", str(int(seconds * 1000)))

    def stop(self) -> None:
        self._run("stop", timeout_s=60.0)


@dataclass
class Run:
    """One alias in one mode: its tuning, worker group, jobs and row."""

    alias: str
    mode: str
    timer: RedeliveryTimer
    tuning: Tuning
    options: dict
    tag: str
    log_path: Path
    group: ServerGroup | None = None
    job_ids: list[str] | None = None
    error: str = ""

    def row(self) -> Row:
        timer = self.timer
        return Row(
            backend=self.alias,
            mode=self.mode,
            timer=timer.name,
            owner=timer.owner,
            default=timer.default,
            setting=self.tuning.text,
        )


def lease_only_row(alias: str, mode: str) -> Row:
    return Row(
        backend=alias,
        mode=mode,
        timer="lease only",
        default=f"JOB_LEASE_S {settings.JOB_LEASE_S:g} s",
        note="lease only: the backend declares no redelivery timer of its own",
    )


def run_long_jobs(
    *,
    out_dir: Path,
    aliases: list[str] | None = None,
    params: Params = Params(),  # noqa: B008 (frozen)
    prefix: str = "",
    modes: tuple[str, ...] = MODES,
) -> list[Row]:
    """Both runs for every alias (default: every worker alias of JOB_BACKENDS)."""
    aliases = aliases if aliases is not None else backend_aliases()
    prefix = prefix or f"{settings.QUEUE_PREFIX}-lj{timezone.now():%H%M%S}"
    timers = {a: declared_timer(a, params) for a in aliases}
    wide = any(t and t.broker == BROKER_RABBITMQ for t in timers.values())
    rabbit = PrivateRabbit() if wide else None
    rows: list[Row] = []
    try:
        rabbit_url = rabbit.start() if rabbit else ""
        for mode in modes:
            rows += run_mode(
                mode, timers, params=params, out_dir=out_dir, prefix=f"{prefix}-{mode}",
                rabbit=rabbit, rabbit_url=rabbit_url,
            )  # fmt: skip
    finally:
        if rabbit:
            rabbit.stop()
    order = {alias: i for i, alias in enumerate(aliases)}
    return sorted(rows, key=lambda r: order[r.backend])


def run_mode(
    mode: str,
    timers: dict[str, RedeliveryTimer | None],
    *,
    params: Params,
    out_dir: Path,
    prefix: str,
    rabbit: PrivateRabbit | None,
    rabbit_url: str,
) -> list[Row]:
    """Every alias in `mode` at once: start, submit, wait, stop, measure."""
    runs = _plan(mode, timers, params=params, out_dir=out_dir, prefix=prefix, rabbit_url=rabbit_url)
    rows = [lease_only_row(a, mode) for a, t in timers.items() if t is None]
    if rabbit:
        wide = [r.tuning.broker_s for r in runs if r.timer.broker == BROKER_RABBITMQ]
        rabbit.set_consumer_timeout(max(s for s in wide if s is not None))
    with _publishing(prefix, {r.alias: r.options for r in runs}):
        try:
            for run in runs:
                _start(run, params=params, prefix=prefix)
            for run in runs:
                _submit(run, params=params)
            _wait([r for r in runs if r.job_ids], params=params)
        finally:
            for run in runs:
                if run.group:
                    run.group.stop(timeout_s=5)
        rows += [_measure(run) for run in runs]
    return rows


def _plan(mode, timers, *, params, out_dir, prefix, rabbit_url) -> list[Run]:
    runs = []
    stamp = timezone.now().strftime("%H%M%S")
    for alias, timer in timers.items():
        if timer is None:
            continue
        tuning: Tuning = getattr(timer, mode)
        options = dict(tuning.options)
        if timer.broker == BROKER_RABBITMQ:
            options["url"] = rabbit_url
        name = f"long-jobs-{alias}-{mode}"
        runs.append(
            Run(alias, mode, timer, tuning, options, f"lj-{stamp}-{alias}-{mode}",
                out_dir / "logs" / f"{name}.log")
        )  # fmt: skip
    return runs


@contextlib.contextmanager
def _publishing(prefix: str, options: dict[str, dict]) -> Iterator[None]:
    """This process publishes with the workers' prefix and options (then forgets them)."""
    merged = {
        alias: {**conf, "OPTIONS": {**conf.get("OPTIONS", {}), **options.get(alias, {})}}
        for alias, conf in settings.JOB_BACKENDS.items()
    }
    reset_backends()
    try:
        with override_settings(QUEUE_PREFIX=prefix, JOB_BACKENDS=merged):
            yield
    finally:
        reset_backends()


def worker_env(run: Run, *, params: Params, prefix: str) -> dict[str, str]:
    return {
        "OCRLAB_QUEUE_PREFIX": prefix,
        "JOB_TIME_LIMIT_S": f"{params.time_limit_s:g}",
        "RELAY_INTERVAL_S": "1",
        "RELAY_PENDING_GRACE_S": "15",  # no relay copies of jobs published while
        "RELAY_QUEUED_STALE_S": "600",  # the workers start (the relay is not measured)
        "PYTHONUNBUFFERED": "1",
        "OCRLAB_BACKEND_OPTIONS": json.dumps({run.alias: run.options}),
        **run.tuning.env,
    }


def _start(run: Run, *, params: Params, prefix: str) -> None:
    try:
        get_backend(run.alias).purge()
        env = worker_env(run, params=params, prefix=prefix)
        run.group = ServerGroup(run.log_path.parent, env=env)
        run.group.start(run.log_path.stem, worker_command(run.alias, params.workers))
    except Exception as exc:  # reported in the alias's row; the others go on
        log.exception("long-jobs %s/%s: could not start", run.alias, run.mode)
        run.error = f"error: {type(exc).__name__}: {exc}"


def _submit(run: Run, *, params: Params) -> None:
    if run.error:
        return
    try:
        run.job_ids = [
            str(services.job_create(
                version=API_VERSION, backend=run.alias, document="sample.pdf",
                workload=f"sleep:{params.job_s:g}", run_tag=run.tag,
            ).id)
            for _ in range(params.jobs)
        ]  # fmt: skip
    except Exception as exc:
        log.exception("long-jobs %s/%s: could not submit", run.alias, run.mode)
        run.error = f"error: {type(exc).__name__}: {exc}"


def _wait(runs: list[Run], *, params: Params) -> None:
    """Until every job of `runs` finished (then settle_s more) or the deadline."""
    deadline = time.monotonic() + params.deadline_s
    tags = [r.tag for r in runs]
    while time.monotonic() < deadline:
        if not OcrJob.objects.filter(run_tag__in=tags).exclude(status__in=FINISHED).exists():
            time.sleep(params.settle_s)
            return
        time.sleep(POLL_S)


def _measure(run: Run) -> Row:
    row = run.row()
    if run.error or not run.job_ids:
        row.note = run.error or "error: no jobs submitted"
        return row
    fields = ("id", "status", "attempts", "created_at", "finished_at")
    rows = list(OcrJob.objects.filter(run_tag=run.tag).values(*fields))
    connections.close_all()
    text = run.log_path.read_text(errors="replace") if run.log_path.exists() else ""
    return compute_row(
        row, job_ids=run.job_ids, rows=rows, log_text=text, patterns=run.timer.log_signs
    )


def params_dict(params: Params) -> dict:
    return asdict(params)
