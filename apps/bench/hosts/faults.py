"""Network faults for `manage.py chaos`, in a multi-host lab (lab.HostLab): every backend
at once, one worker group per backend on each of two worker hosts, jobs kept in flight by
the API-side client, one fault at a time, one cell per backend (chaos.summary's shape,
plus whether a cut-off worker consumes again without a restart).

partition:      worker host w1 cut off (link down) from the broker host, database included,
                for longer than the lease, then healed.
partition-api:  the brokers cut off from the API host (a blackhole route) while jobs are
                submitted; the database stays reachable, so the outbox must hold them.
flaky-link:     w1's link down and up every `flap_s` for `flaky_s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from apps.bench.chaos.faults import broker_of
from apps.bench.chaos.scenario import Options
from apps.bench.chaos.summary import FINISHED, Cell
from apps.bench.hosts.lab import API, HostLab
from apps.jobs.models import OcrJob

CUT_HOST = "w1"
POLL_S = 0.5
CLIENT_STOP_S = 30.0
ROWS_SQL = (
    "SELECT id::text AS id, status, attempts, created_at, finished_at, worker "
    f"FROM {OcrJob._meta.db_table} WHERE run_tag = %s"
)


@dataclass
class NetOptions:
    flap_s: float = 2.0  # flaky-link: down this long, then up this long
    flaky_s: float = 60.0  # flaky-link: for this long
    stall_timeout_s: float = 30.0  # a probe job the cut-off host must run alone
    start_timeout_s: float = 60.0  # until a job runs on the host to cut


@dataclass
class NetCell(Cell):
    healed_recovery_s: float | None = None  # from the heal to the last affected finish
    stalled: list[str] = field(default_factory=list)  # hosts that did not consume again

    @property
    def ok(self) -> bool:
        return super().ok and not self.stalled


@dataclass
class Run:
    """One backend in one phase: its tag, its client, its workers' log offsets."""

    backend: str
    fault: str
    tag: str
    stop_file: Path
    out_file: Path
    offsets: dict[Path, int]
    client: object = None


# --- the faults ---


def partition(lab: HostLab, opts: Options, net: NetOptions) -> list[str]:
    cut_s = opts.lease_s + opts.pause_margin_s
    lab.net.cut(CUT_HOST)
    try:
        time.sleep(cut_s)
    finally:
        lab.net.heal(CUT_HOST)
    return [f"{CUT_HOST} cut off for {cut_s:g}s (lease {opts.lease_s:g}s), then healed"]


def partition_api(lab: HostLab, opts: Options, net: NetOptions) -> list[str]:
    assert lab.ends is not None
    cut_s = opts.down_s + opts.pause_margin_s
    lab.net.block(API, lab.ends.mq_addr)
    try:
        time.sleep(cut_s)
    finally:
        lab.net.unblock(API, lab.ends.mq_addr)
    return [f"brokers unreachable from the API for {cut_s:g}s (database reachable)"]


def flaky_link(lab: HostLab, opts: Options, net: NetOptions) -> list[str]:
    deadline, flaps = time.monotonic() + net.flaky_s, 0
    while time.monotonic() < deadline:
        lab.net.cut(CUT_HOST)
        try:
            time.sleep(net.flap_s)
        finally:
            lab.net.heal(CUT_HOST)
        flaps += 1
        time.sleep(net.flap_s)
    return [f"{CUT_HOST}'s link down/up {flaps} times ({net.flap_s:g}s each) in {net.flaky_s:g}s"]


@dataclass(frozen=True)
class NetFault:
    name: str
    inject: Callable[[HostLab, Options, NetOptions], list[str]]
    needs_broker: bool = False
    cut_host: str = CUT_HOST  # whose workers must consume again afterwards ("" none)

    def applies(self, backend: str) -> str:
        if self.needs_broker and broker_of(backend) is None:
            return "n/a: the job row is the message (no broker apart from the database)"
        return ""


NETWORK_FAULTS = {
    f.name: f
    for f in (
        NetFault("partition", partition),
        NetFault("partition-api", partition_api, needs_broker=True, cut_host=""),
        NetFault("flaky-link", flaky_link),
    )
}


# --- rows and waits (the lab's database, read-only) ---


def read_rows(lab: HostLab, tag: str) -> list[dict]:
    with psycopg.connect(lab.database_url(), connect_timeout=10) as conn:
        cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
        return list(cursor.execute(ROWS_SQL, [tag]).fetchall())


def wait_running_on(lab: HostLab, tags: list[str], host: str, timeout_s: float) -> bool:
    """True once a job of every tag runs on a worker inside `host`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = lab.host_pids(host)
        running = [
            any(r["status"] == "RUNNING" and _pid(r["worker"]) in pids for r in read_rows(lab, t))
            for t in tags
        ]
        if all(running):
            return True
        time.sleep(POLL_S)
    return False


def _pid(worker: str) -> int:
    tail = worker.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def wait_finished(lab: HostLab, tag: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        if all(r["status"] in FINISHED for r in read_rows(lab, tag)):
            return
        time.sleep(POLL_S)
