"""The multi-host lab (apps.bench.hosts): a job through each broker family to a worker on
another host, a clean teardown, and the delay proxy's mechanism."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.bench.chaos.scenario import Options
from apps.bench.hosts import findings
from apps.bench.hosts.delay import parse_route
from apps.bench.hosts.faults import NETWORK_FAULTS, NetOptions, flaky_link
from apps.bench.hosts.lab import HostLab
from apps.bench.hosts.netchaos import run_network_faults
from apps.bench.hosts.netns import Lab, hosts_available
from apps.bench.hosts.network import NetworkParams, plan, worker_aliases, write_network
from apps.ops import launch

AVAILABLE, WHY_NOT = hosts_available()
needs_hosts = pytest.mark.skipif(not AVAILABLE, reason=f"multi-host lab: {WHY_NOT}")
FAMILIES = ("db", "redis", "rabbit", "kafka")
DELAY_MS = 20.0


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if launch.alive(pid)]


def _namespace_pids(lab: HostLab) -> list[int]:
    out = []
    for host in lab.net.hosts.values():
        done = subprocess.run(["ip", "netns", "pids", host.netns], capture_output=True, text=True)
        out += [int(pid) for pid in done.stdout.split()]
    return out


@pytest.mark.slow
@needs_hosts
def test_a_job_of_each_broker_family_runs_on_a_worker_host_and_nothing_is_left():
    with HostLab(workers=1) as lab:
        for backend in FAMILIES:
            lab.start_worker(backend, "w1", count=1, workload="noop")

        def one_job(backend: str) -> list[dict]:
            return lab.client("probe", backend=backend, tag=f"hosts-{backend}", timeout_s=45)

        with ThreadPoolExecutor(len(FAMILIES)) as pool:
            rows = dict(zip(FAMILIES, pool.map(one_job, FAMILIES), strict=True))
        pids = _namespace_pids(lab)
        names = [host.netns for host in lab.net.hosts.values()]
        assert len(names) == 3 and pids
    assert {b: [r["status"] for r in rs] for b, rs in rows.items()} == {
        b: ["DONE"] for b in FAMILIES
    }
    assert lab.net.namespaces() == [] and lab.net.links() == []
    assert _alive(pids) == []
    assert not lab.net.workdir.exists()


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def serve() -> None:
        with server, contextlib.suppress(OSError):  # closed at the end of the test
            while True:
                conn, _ = server.accept()
                threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_the_delay_proxy_holds_each_direction_for_the_delay_and_keeps_order():
    server, port = _echo_server()
    listen = launch.free_port()
    cmd = [sys.executable, "-m", "apps.bench.hosts.delay", "--delay-ms", f"{DELAY_MS:g}"]
    proxy = launch.start([*cmd, f"127.0.0.1:{listen}=127.0.0.1:{port}"], log=None)
    try:
        launch.wait_port("127.0.0.1", listen, 20, proc=proxy)
        with socket.create_connection(("127.0.0.1", listen), timeout=5) as conn:
            rtts = []
            for i in range(5):
                started = time.monotonic()
                conn.sendall(b"a%d" % i)
                conn.sendall(b"b%d" % i)
                got = b""
                while len(got) < 4:
                    got += conn.recv(64)
                rtts.append(time.monotonic() - started)
                assert got == b"a%db%d" % (i, i)
    finally:
        launch.stop_group(proxy)
        server.close()
    rtt_ms = statistics.median(rtts) * 1000
    assert 2 * DELAY_MS <= rtt_ms < 2 * 2 * DELAY_MS + 100


def test_routes_parse_and_bad_ones_are_refused():
    assert parse_route("198.18.0.2:15432=198.18.0.2:5432") == (
        ("198.18.0.2", 15432),
        ("198.18.0.2", 5432),
    )
    with pytest.raises(Exception, match="ADDR:PORT"):
        parse_route("nonsense")


def test_hosts_available_says_why_not():
    ok, reason = hosts_available()
    assert ok or reason


@pytest.mark.slow
@needs_hosts
def test_a_worker_host_cut_off_past_its_lease_loses_nothing_and_consumes_again(tmp_path):
    opts = Options(jobs=2, workers=2, job_s=1.0, lease_s=3.0, pause_margin_s=2.0, tail_s=1.0)
    opts.deadline_s = 40.0
    net = NetOptions(stall_timeout_s=20.0, start_timeout_s=30.0)
    cells = run_network_faults(
        backends=["db", "redis"], faults=["partition"], opts=opts, out_dir=tmp_path, net=net
    )
    assert [(c.backend, c.fault, c.skipped) for c in cells] == [
        ("db", "partition", ""),
        ("redis", "partition", ""),
    ]
    for cell in cells:
        assert cell.jobs > 0 and (cell.lost, cell.stored_twice, cell.stuck) == (0, 0, 0)
        assert cell.stalled == [] and cell.healed_recovery_s is not None
    assert not [n for n in _namespaces() if n.startswith(f"ocrlab-{os.getpid()}-")]


def _namespaces() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()


def test_flaky_link_flaps_for_its_duration():
    class FakeNet:
        def __init__(self):
            self.calls = []

        def cut(self, host):
            self.calls.append(("cut", host))

        def heal(self, host):
            self.calls.append(("heal", host))

    lab = type("FakeLab", (), {"net": FakeNet()})()
    notes = flaky_link(lab, Options(), NetOptions(flap_s=0.01, flaky_s=0.05))
    calls = lab.net.calls
    assert calls[0] == ("cut", "w1") and calls[-1] == ("heal", "w1")
    assert calls.count(("cut", "w1")) == calls.count(("heal", "w1")) >= 2
    assert "down/up" in notes[0]


def test_the_broker_partition_does_not_apply_to_the_database_backend():
    assert NETWORK_FAULTS["partition-api"].applies("db").startswith("n/a")
    assert NETWORK_FAULTS["partition-api"].applies("redis") == ""
    assert NETWORK_FAULTS["partition"].applies("db") == ""


NOOP_ROWS = [
    {"kind": "noop", "backend": b, "rtt_ms": rtt, "pickup_p50_ms": p, "pickup_p99_ms": 2 * p,
     "capacity_per_s": c, "lost": 0, "proxy_cpu_s": 0.1}
    for b, rtt, p, c in [("db", 0.0, 3.0, 90.0), ("db", 10.0, 25.0, 40.0),
                         ("redis", 0.0, 2.0, 120.0), ("redis", 10.0, 21.0, 50.0)]
]  # fmt: skip


def test_the_network_report_has_a_row_per_cell_says_the_delay_method_and_plots(tmp_path):
    rows = [
        *NOOP_ROWS,
        {"kind": "noop", "backend": "kafka", "rtt_ms": 0.0, "error": "RuntimeError: boom"},
        {"kind": "ocr", "backend": "db", "rtt_ms": 10.0, "workers": 2, "ocr_jobs_per_s": 0.8},
    ]
    result = write_network(rows, tmp_path, meta={"delay_method": "proxy"})
    md = result.markdown
    assert "delay method: proxy" in md and "| redis | 10 | 21 | 42 | 50 |" in md
    assert "RuntimeError: boom" in md and "OCR throughput" in md
    assert result.paths["png"].stat().st_size > 1000
    assert json.loads(result.paths["json"].read_text())["rows"][0]["backend"] == "db"


def test_network_aliases_are_those_that_run_in_workers():
    aliases = worker_aliases()
    assert {"db", "redis", "rabbit", "kafka"} <= set(aliases) and "memory" not in aliases


def test_chaos_lists_the_network_faults_and_refuses_unknown_ones():
    with pytest.raises(CommandError, match="partition-api"):
        call_command("chaos", "--faults", "partition,nope")


def test_runbench_network_refuses_bad_rtts():
    with pytest.raises(CommandError, match="rtts|multi-host"):
        call_command("runbench", "--family", "network", "--rtts", "ten")


SERVE = "import socket,time; s=socket.create_server(('{addr}', 7000)); time.sleep(60)"


@needs_hosts
def test_a_cut_link_and_a_blackhole_partition_and_heal_and_a_failure_leaves_nothing():
    with pytest.raises(RuntimeError, match="boom"), Lab(["a", "b"]) as lab:
        addr = lab.hosts["a"].addr
        server = lab.start("a", "server", [sys.executable, "-c", SERVE.format(addr=addr)])
        launch.wait_port(addr, 7000, 20, proc=server)
        lab.cut("a")
        assert not launch.tcp_reachable(addr, 7000, timeout_s=0.5)
        lab.heal("a")
        launch.wait_port(addr, 7000, 10)
        probe = [
            sys.executable,
            "-c",
            f"import socket; socket.create_connection(('{addr}', 7000), 1)",
        ]
        lab.run("b", probe)
        lab.block("b", addr)
        with pytest.raises(RuntimeError, match="exited"):
            lab.run("b", probe)
        lab.unblock("b", addr)
        lab.run("b", probe)
        raise RuntimeError("boom")
    assert lab.namespaces() == [] and lab.links() == []
    assert not launch.alive(server.pid)


def test_the_plan_runs_ocr_at_the_lowest_and_highest_rtt_after_the_noop_cells():
    cells = plan(NetworkParams(rtts_ms=(0.0, 1.0, 10.0)), ["db", "redis"])
    assert cells[:2] == [("noop", 0.0, "db"), ("noop", 0.0, "redis")]
    assert [c for c in cells if c[0] == "ocr"] == [
        ("ocr", 0.0, "db"), ("ocr", 0.0, "redis"), ("ocr", 10.0, "db"), ("ocr", 10.0, "redis"),
    ]  # fmt: skip
    assert not [c for c in plan(NetworkParams(ocr=False), ["db"]) if c[0] == "ocr"]


FAULT_CELLS = [
    {"backend": "db", "fault": "partition", "executed_twice": 1, "ok": True,
     "healed_recovery_s": 1.2},
    {"backend": "db", "fault": "partition-api", "skipped": "n/a: no broker", "ok": True},
    {"backend": "redis", "fault": "partition", "stuck": 2, "ok": False, "recovery_s": 9.0},
    {"backend": "redis", "fault": "sigkill", "lost": 5},  # not a network fault: left out
]  # fmt: skip


def _hosts_folder(path):
    ocr = [
        {"kind": "ocr", "backend": b, "rtt_ms": rtt, "ocr_jobs_per_s": r}
        for b, rtt, r in [("db", 0.0, 1.0), ("db", 10.0, 0.9), ("redis", 0.0, 1.0),
                          ("redis", 10.0, 1.0)]
    ]  # fmt: skip
    path.mkdir()
    (path / "network.json").write_text(
        json.dumps({"meta": {"delay_method": "proxy"}, "rows": [*NOOP_ROWS, *ocr]})
    )
    (path / "chaos.json").write_text(json.dumps({"meta": {}, "cells": FAULT_CELLS}))
    return path


def test_the_hosts_section_counts_round_trips_capacity_ocr_and_fault_verdicts(tmp_path):
    hosts = findings.load(_hosts_folder(tmp_path / "hosts"))
    items = {i["backend"]: i for i in findings.per_backend(hosts)}
    assert items["db"]["round_trips"] == pytest.approx(2.2)  # (25 - 3) ms over 10 ms RTT
    assert items["redis"]["capacity_ratio"] == pytest.approx(50 / 120)
    assert items["db"]["ocr_ratio"] == pytest.approx(0.9)
    assert set(items["redis"]["faults"]) == {"partition"}
    text = "\n".join(findings.section(hosts))
    assert "2.2-1.9 round trips" not in text and "1.9-2.2 round trips" in text
    assert "redis (partition: 2 stuck (9 s))" in text  # a stuck job is named
    assert "run again elsewhere on db" in text
    assert items["db"]["job_trips"] == pytest.approx((2000 / 40 - 2000 / 90) / 10)
    row = (
        "| db | 3.0 | 25.0 | 2.2 | 2.8 | 90.0 | 40.0 | 1.00 | 0.90 | 1 executed twice (1 s) | n/a |"
    )
    assert row in text
    assert findings.section({}) == [] and findings.load(tmp_path) == {}


def test_a_poller_whose_pickup_does_not_grow_with_the_rtt_gets_no_pickup_round_trips():
    poller = [
        {"kind": "noop", "backend": "poller", "rtt_ms": rtt, "pickup_p50_ms": p,
         "capacity_per_s": 50.0 - rtt}
        for rtt, p in [(0.0, 190.0), (1.0, 30.0), (10.0, 120.0)]
    ]  # fmt: skip
    items = {i["backend"]: i for i in findings.per_backend({"network": NOOP_ROWS + poller})}
    assert items["poller"]["polls"] and "round_trips" not in items["poller"]
    assert "job_trips" in items["poller"] and "round_trips" in items["db"]
    text = findings.summary(list(items.values()))
    assert "(poller: set by its polling, not the link)" in text


def test_bench_report_attaches_a_hosts_folder_and_refuses_bad_folders(tmp_path):
    with pytest.raises(CommandError, match="no cells.json"):
        call_command("bench_report", str(tmp_path))
    run = tmp_path / "run"
    run.mkdir()
    context = {"command": "runbench", "cores": 2}
    (run / "cells.json").write_text(
        json.dumps({"context": context, "summaries": [], "targets": [], "results": []})
    )
    with pytest.raises(CommandError, match="no network.json"):
        call_command("bench_report", str(run), "--hosts", str(tmp_path / "nowhere"))
    call_command("bench_report", str(run), "--hosts", str(_hosts_folder(tmp_path / "h")))
    assert "## Workers on other hosts" in (run / "report.md").read_text()
    assert (run / "hosts" / "network.json").is_file()
    assert (
        "data:image/png" in (run / "index.html").read_text()
        or not (run / "hosts" / "network.png").exists()
    )
    assert json.loads((run / "cells.json").read_text())["context"]["hosts"]["source"] == "h"
