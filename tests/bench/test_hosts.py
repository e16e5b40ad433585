"""The multi-host lab (apps.bench.hosts): a job through each broker family to a worker on
another host, a clean teardown, and the delay proxy's mechanism."""

from __future__ import annotations

import contextlib
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from apps.bench.hosts.delay import parse_route
from apps.bench.hosts.lab import HostLab
from apps.bench.hosts.netns import hosts_available
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
