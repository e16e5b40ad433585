"""The servers backends run on, as the rest of the lab sees them: PostgreSQL (the lab's
database), Redis, RabbitMQ and a Kafka-protocol broker (Tansu locally).

A backend lists its own (`Backend.services()`); readiness (`apps/ops/checks.py`), the
bench (reachability, broker memory) and chaos (stop and start) ask these objects, so
none of them switches on a URL scheme. Each service knows its default port, how to ping
it within a timeout, its process names, and how to stop and start the local server at
its address: PostgreSQL through `pg_ctlcluster` (the cluster on its port), the others
through the process that listens on the port. A service on another port (a private set,
scripts/chaos_services.sh) is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db import connection
from kombu import Connection

from apps.ops import launch

PORT_WAIT_S = 90.0
LOCALHOST = "127.0.0.1"


def address_of(url: str, default_port: int = 0) -> tuple[str, int] | None:
    """(host, port) of a server URL: scheme://user@h:p/x, or a Kafka list h:p,h:p (the
    first); None when it names no host."""
    first = url.split(",")[0].strip()
    parts = urlsplit(first if "://" in first else f"//{first}")
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or default_port


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on `port`, if any."""
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"pid=(\d+)", out)
    return int(match.group(1)) if match else None


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=PORT_WAIT_S)


class Service:
    """One server at one address. Subclasses set the class attributes and may override
    `ping`, `stop` and `start`; `stop` may remember what `start` needs."""

    kind: str = ""  # the server software: one dependency name per kind in /readyz
    default_port: int = 0
    processes: tuple[str, ...] = ()  # its process names (the bench's broker memory)
    restart_note: str = ""  # what a restart loses (chaos notes)
    url_template: str = ""  # how a client addresses one at {host}:{port}

    @classmethod
    def url_at(cls, host: str, port: int, **extra: str) -> str:
        """The URL of a server of this kind at host:port (the multi-host lab's)."""
        return cls.url_template.format(host=host, port=port, **extra)

    def __init__(self, url: str):
        self.url = url

    @property
    def address(self) -> tuple[str, int] | None:
        return address_of(self.url, self.default_port)

    @property
    def port(self) -> int:
        address = self.address
        return address[1] if address and address[1] else self.default_port

    def ping(self, timeout_s: float) -> None:
        """Return if the server answers within `timeout_s`, else raise. The default: it
        accepts a TCP connection."""
        address = self.address
        if address is None or not launch.tcp_reachable(*address, timeout_s=timeout_s):
            raise ConnectionError(f"nothing accepts connections at {address}")

    def stop(self) -> None:
        """Stop the local server at this address (chaos)."""
        raise NotImplementedError(f"cannot stop {self.kind} here")

    def start(self, *, log_dir: Path) -> None:
        """Start it again after `stop` and wait until it listens."""
        raise NotImplementedError(f"cannot start {self.kind} here")

    def wait_port(self, *, up: bool) -> None:
        launch.wait_port(LOCALHOST, self.port, PORT_WAIT_S, up=up)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Service) and (self.kind, self.url) == (other.kind, other.url)

    def __hash__(self) -> int:
        return hash((self.kind, self.url))

    def __repr__(self) -> str:
        return f"<{self.kind} {self.url}>"


class Postgres(Service):
    """The lab's database (Django's default connection); chaos restarts the
    pg_lsclusters cluster on its port."""

    kind = "postgres"
    default_port = 5432
    url_template = "postgres://postgres@{host}:{port}/{db}"
    processes = ("postgres",)

    def __init__(self, url: str | None = None):
        super().__init__(url or settings.DATABASE_URL)

    def ping(self, timeout_s: float) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    def _cluster(self) -> tuple[str, str]:
        out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            version, cluster, port, *_ = line.split()
            if int(port) == self.port:
                return version, cluster
        raise RuntimeError(f"no pg_lsclusters cluster serves port {self.port}")

    def _ctl(self, action: str) -> None:
        version, cluster = self._cluster()
        fast = ["-m", "fast"] if action == "stop" else []
        _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, action, *fast])

    def stop(self) -> None:
        self._ctl("stop")

    def start(self, *, log_dir: Path) -> None:
        self._ctl("start")
        self.wait_port(up=True)


class Redis(Service):
    """A redis-server, started again with the settings it had (Redis rewrites its
    process title, so they are read with CONFIG GET, not from argv)."""

    kind = "redis"
    default_port = 6379
    url_template = "redis://{host}:{port}/0"
    processes = ("redis-server",)
    restart_note = (
        "Redis keeps nothing on disk here: the restart drops the stream, its group "
        "and every pending entry; the job rows (the outbox) are the truth and the "
        "relay resends QUEUED jobs after RELAY_QUEUED_STALE_S"
    )
    KEYS = ("bind", "dir", "logfile", "save", "appendonly")

    def __init__(self, url: str):
        super().__init__(url)
        self.argv: list[str] | None = None

    def _client(self, timeout_s: float) -> redis.Redis:
        return redis.Redis.from_url(
            self.url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )

    def ping(self, timeout_s: float) -> None:
        client = self._client(timeout_s)
        try:
            client.ping()
        finally:
            client.close()

    def _remember(self) -> None:
        client = self._client(5.0)
        conf = {key: client.config_get(key).get(key) or "" for key in self.KEYS}
        # not /proc/<pid>/exe: Debian's redis-server is a link to redis-check-rdb
        binary = shutil.which("redis-server") or "redis-server"
        self.argv = [binary, "--port", str(self.port), "--daemonize", "yes"]
        for key, value in conf.items():
            self.argv += [f"--{key}", *(value.split() if key == "bind" else [value])]

    def stop(self) -> None:
        self._remember()
        with contextlib.suppress(redis.ConnectionError):  # it hangs up as it exits
            self._client(5.0).shutdown(nosave=True)
        self.wait_port(up=False)

    def start(self, *, log_dir: Path) -> None:
        assert self.argv, "stop() remembers the command line start() needs"
        _run(self.argv)
        self.wait_port(up=True)


class RabbitMQ(Service):
    """A RabbitMQ node: `rabbitmqctl stop_app / start_app` (the node stays up, its
    listeners close; durable queues keep their messages)."""

    kind = "rabbitmq"
    default_port = 5672
    url_template = "amqp://guest:guest@{host}:{port}//"
    processes = ("beam.smp",)
    restart_note = "stop_app/start_app: durable queues keep their persistent messages"
    NODE_ENV = "CHAOS_RABBIT_NODE"  # the node name, when the listener's cannot be read

    def __init__(self, url: str):
        super().__init__(url)
        self.node: str | None = None  # read while it listens; start() needs it after stop()

    def ping(self, timeout_s: float) -> None:
        with Connection(self.url, connect_timeout=timeout_s) as conn:
            conn.connect()

    def _node(self) -> str:
        if node := os.environ.get(self.NODE_ENV):
            return node
        pid = listener_pid(self.port)
        environ = Path(f"/proc/{pid}/environ").read_bytes() if pid else b""
        for item in environ.split(b"\0"):
            if item.startswith(b"RABBITMQ_NODENAME="):
                return item.split(b"=", 1)[1].decode()
        return "rabbit@localhost"  # the Debian package's default node

    def stop(self) -> None:
        self.node = self._node()
        _run(["rabbitmqctl", "-n", self.node, "stop_app"])
        self.wait_port(up=False)

    def start(self, *, log_dir: Path) -> None:
        assert self.node, "stop() remembers the node start() needs"
        _run(["rabbitmqctl", "-n", self.node, "start_app"])
        self.wait_port(up=True)


class Kafka(Service):
    """A Kafka-protocol broker (Tansu here), restarted with its own command line (memory
    storage: a restart loses every topic, offset and group). Ping: an open port."""

    kind = "kafka"
    default_port = 9092
    url_template = "{host}:{port}"
    processes = ("tansu", "java")
    restart_note = (
        "Tansu keeps topics in memory: the restart drops the topic, its messages and "
        "the group's offsets; publish recreates the topic, the relay resends"
    )

    def __init__(self, url: str):
        super().__init__(url)
        self.argv: list[str] | None = None

    def stop(self) -> None:
        pid = listener_pid(self.port)
        if pid is None:
            raise RuntimeError(f"nothing listens on port {self.port}")
        self.argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        os.kill(pid, 15)
        self.wait_port(up=False)

    def start(self, *, log_dir: Path) -> None:
        assert self.argv, "stop() remembers the command line start() needs"
        log = log_dir / f"{self.kind}-{self.port}.log"  # a daemon: nobody waits on it
        launch.start(self.argv, log=log, cwd=None)
        self.wait_port(up=True)
