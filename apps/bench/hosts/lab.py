"""A ready multi-host lab: the hosts (netns), the services on the broker host (services),
the database migrated, the delay in place (delay) and helpers to start workers on worker
hosts and run the API-side client (client). `HostLab` is a context manager: leaving it,
by any path, tears everything down.

with HostLab(workers=2) as lab:
    lab.set_delay(5.0)                       # one-way ms: RTT 10 ms worker <-> broker host
    lab.start_worker("redis", "w1", count=1, workload="noop")
    rows = lab.client("probe", backend="redis", tag="t1", jobs=5)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from apps.bench.hosts import delay
from apps.bench.hosts.netns import Lab, install_handlers, ip
from apps.bench.hosts.services import DELAYED_OFFSET, PORTS, Endpoints, start_services
from apps.ops import launch

BROKER, API = "broker", "api"
ROOT = launch.ROOT
MIGRATE_TIMEOUT_S = 120.0
WORKER_ENV = {  # short leases and a quick relay, as the chaos runs use
    "JOB_LEASE_S": "4",
    "JOB_MAX_ATTEMPTS": "3",
    "RELAY_INTERVAL_S": "0.5",
    "RELAY_PENDING_GRACE_S": "1",
    "RELAY_QUEUED_STALE_S": "10",
    "PYTHONUNBUFFERED": "1",
}


class HostLab:
    """Broker host (two addresses), an API host and `workers` worker hosts w1..wN."""

    def __init__(
        self,
        *,
        workers: int = 2,
        kinds: tuple[str, ...] = tuple(PORTS),
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
    ):
        self.worker_hosts = [f"w{i + 1}" for i in range(workers)]
        names = [BROKER, API, *self.worker_hosts]
        self.net = Lab(names, extra_addrs={BROKER: 1}, log_dir=log_dir)
        self.kinds, self.extra_env = kinds, dict(env or {})
        self.ends: Endpoints | None = None
        self.proxy: subprocess.Popen[bytes] | None = None
        self.method = delay.PROXY
        self.delay_ms = 0.0
        self.prefix = f"hosts{os.getpid()}"

    def __enter__(self) -> HostLab:
        install_handlers()
        self.net.__enter__()
        try:
            self.ends = start_services(
                self.net, BROKER, kinds=self.kinds, on_db_ready=self._migrate
            )
            host = self.net.hosts[self.worker_hosts[0]]
            self.method = delay.NETEM if delay.netem_available(host.veth) else delay.PROXY
            self._start_proxy(0.0)
        except BaseException:
            self.net.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.net.teardown()

    def teardown(self) -> None:
        self.net.teardown()

    # --- environment ---

    def env(self, *, delayed: bool) -> dict[str, str]:
        """This process's environment, WORKER_ENV, `env` (the constructor's, or extra_env set
        later) and the lab's URLs (delayed: the workers' view)."""
        assert self.ends is not None
        urls = self.ends.urls(delayed=delayed)
        base = {**os.environ, **WORKER_ENV, "OCRLAB_QUEUE_PREFIX": self.prefix}
        return {**base, **self.extra_env, **urls}

    def _migrate(self, ends: Endpoints) -> None:
        self.ends = ends
        cmd = launch.manage_command("migrate", "--noinput")
        subprocess.run(
            cmd,
            cwd=ROOT,
            env=self.env(delayed=False),
            check=True,
            capture_output=True,
            timeout=MIGRATE_TIMEOUT_S,
        )

    # --- delay ---

    def _start_proxy(self, delay_ms: float) -> None:
        assert self.ends is not None
        routes = [
            f"{addr}:{port + DELAYED_OFFSET}={addr}:{port}"
            for kind, (addr, port) in self.ends.targets().items()
            if kind in self.kinds
        ]
        cmd = [sys.executable, "-m", "apps.bench.hosts.delay", "--delay-ms", f"{delay_ms:g}"]
        self.proxy = self.net.start(BROKER, "delay-proxy", [*cmd, *routes])
        for route in routes:
            addr, port = route.split("=")[0].rsplit(":", 1)
            launch.wait_port(addr, int(port), 20.0, proc=self.proxy)

    def set_delay(self, one_way_ms: float) -> None:
        """One-way delay between every worker host and the broker host (RTT = 2x). With
        the proxy, its restart drops the connections through it: set it between runs."""
        self.delay_ms = one_way_ms
        if self.method == delay.NETEM:
            for name in self.worker_hosts:
                host = self.net.hosts[name]
                delay.netem_set(host.veth, one_way_ms)
                delay.netem_set(host.peer, one_way_ms, netns=host.netns)
            return
        if self.proxy is not None:
            self.net.stop(self.proxy)
        self._start_proxy(one_way_ms)

    def proxy_cpu_s(self) -> float:
        """CPU seconds the delay proxy used so far (instrument cost)."""
        pids = [self.proxy.pid] if self.proxy else []
        pids += launch.descendants(self.proxy.pid) if self.proxy else []
        return sum(_cpu_s(pid) for pid in pids)

    # --- processes ---

    def start_worker(
        self, backend: str, host: str, *, count: int = 1, workload: str | None = "noop"
    ) -> subprocess.Popen[bytes]:
        """`runworker` inside a worker host, talking to the broker host through the delay."""
        cmd = launch.worker_command(backend, count, workload)
        name = f"worker-{backend}-{host}"
        return self.net.start(host, name, cmd, env=self.env(delayed=True))

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        self.net.stop(proc)

    def _client_cmd(self, mode: str, backend: str, tag: str, jobs: int, opts: dict) -> list[str]:
        cmd = [sys.executable, "-m", "apps.bench.hosts.client", mode, "--backend", backend]
        cmd += ["--tag", tag, "--jobs", str(jobs)]
        for key, value in opts.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        return cmd

    def client(self, mode: str, *, backend: str, tag: str, jobs: int = 1, **opts) -> list[dict]:
        """Run the API-side client inside the API host; the rows of the jobs it made."""
        cmd = self._client_cmd(mode, backend, tag, jobs, opts)
        timeout_s = float(opts.get("timeout_s", 60.0)) * max(1, jobs if mode == "probe" else 1)
        done = self.net.run(API, cmd, cwd=ROOT, env=self.env(delayed=False), timeout=timeout_s + 60)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def start_client(
        self, mode: str, *, backend: str, tag: str, jobs: int = 1, **opts
    ) -> subprocess.Popen[bytes]:
        """The client in the background (inflight: until its --stop-file exists)."""
        cmd = self._client_cmd(mode, backend, tag, jobs, opts)
        return self.net.start(API, f"client-{tag}", cmd, env=self.env(delayed=False))

    def database_url(self) -> str:
        """The lab's PostgreSQL as the API host and this process reach it (no delay)."""
        return self.env(delayed=False)["DATABASE_URL"]

    def host_pids(self, host: str) -> set[int]:
        """Every process running inside `host` now."""
        out = ip("netns", "pids", self.net.hosts[host].netns, check=False).stdout
        return {int(pid) for pid in out.split()}

    def worker_log(self, backend: str, host: str) -> Path:
        return self.net.log(f"worker-{backend}-{host}")


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
