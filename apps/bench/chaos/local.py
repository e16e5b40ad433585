"""The project's own local services, as chaos sees them: check they are on loopback, and
stop, start or restart the one serving an address (PostgreSQL, Redis, RabbitMQ, Tansu).

Each service is found by the port of its URL: PostgreSQL through `pg_lsclusters`, the
others through the process listening on that port (`ss -ltnp`). Nothing here touches a
service on another port, so a private set (scripts/chaos_services.sh) keeps a chaos run
away from the lab's shared services.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path

import redis
from django.conf import settings

from apps.ops import launch
from apps.ops.launch import broker_address

PORT_WAIT_S = 90.0
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
URL_SETTINGS = ("DATABASE_URL", "REDIS_URL", "AMQP_URL", "KAFKA_BOOTSTRAP_SERVERS")


class NotLocal(RuntimeError):
    """An address chaos would disturb is not on this machine's loopback."""


def is_loopback(host: str) -> bool:
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_local(urls: dict[str, str]) -> None:
    """Raise NotLocal unless every address in `urls` (setting -> URL) is loopback."""
    for name, url in urls.items():
        for part in url.split(","):
            address = broker_address(part)
            host = address[0] if address else part.strip()
            if not is_loopback(host):
                raise NotLocal(
                    f"{name}={url}: {host} is not a loopback address; chaos "
                    "restarts the services it uses, so it runs on local ones only"
                )


def service_urls() -> dict[str, str]:
    return {name: getattr(settings, name) for name in URL_SETTINGS}


def port_of(url: str, default: int) -> int:
    address = broker_address(url)
    return address[1] if address and address[1] else default


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on 127.0.0.1:`port`, if any."""
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"pid=(\d+)", out)
    return int(match.group(1)) if match else None


def wait_port(port: int, *, up: bool, timeout_s: float = PORT_WAIT_S) -> None:
    launch.wait_port("127.0.0.1", port, timeout_s, up=up)


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=PORT_WAIT_S)


class Postgres:
    """The pg_ctlcluster cluster serving DATABASE_URL's port."""

    def __init__(self, url: str):
        self.port = port_of(url, 5432)
        self.version, self.cluster = self._find()

    def _find(self) -> tuple[str, str]:
        out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            version, cluster, port, *_ = line.split()
            if int(port) == self.port:
                return version, cluster
        raise RuntimeError(f"no pg_lsclusters cluster serves port {self.port}")

    def _ctl(self, action: str) -> None:
        _run(
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                self.version,
                self.cluster,
                action,
                *(["-m", "fast"] if action in {"stop", "restart"} else []),
            ]
        )

    def stop(self) -> None:
        self._ctl("stop")

    def start(self) -> None:
        self._ctl("start")
        wait_port(self.port, up=True)


class Redis:
    """The redis-server on REDIS_URL's port, started again with the settings it had
    (Redis rewrites its process title, so they are read with CONFIG GET, not argv)."""

    KEYS = ("bind", "dir", "logfile", "save", "appendonly")

    def __init__(self, url: str):
        self.url, self.port = url, port_of(url, 6379)
        self.argv: list[str] | None = None

    def _remember(self) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=5)
        conf = {key: client.config_get(key).get(key) or "" for key in self.KEYS}
        # not /proc/<pid>/exe: Debian's redis-server is a link to redis-check-rdb
        self.argv = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--daemonize",
            "yes",
        ]
        for key, value in conf.items():
            self.argv += [f"--{key}", *(value.split() if key == "bind" else [value])]

    def stop(self) -> None:
        self._remember()
        with contextlib.suppress(redis.ConnectionError):  # it hangs up as it exits
            redis.Redis.from_url(self.url, socket_timeout=5).shutdown(nosave=True)
        wait_port(self.port, up=False)

    def start(self) -> None:
        assert self.argv, "stop() remembers the command line start() needs"
        _run(self.argv)
        wait_port(self.port, up=True)


class Rabbit:
    """The RabbitMQ node serving AMQP_URL's port: `rabbitmqctl stop_app / start_app`
    (the node stays up, its listeners close; durable queues keep their messages)."""

    def __init__(self, url: str):
        self.port = port_of(url, 5672)
        self.node = os.environ.get("CHAOS_RABBIT_NODE") or self._node()

    def _node(self) -> str:
        pid = listener_pid(self.port)
        environ = Path(f"/proc/{pid}/environ").read_bytes() if pid else b""
        for item in environ.split(b"\0"):
            if item.startswith(b"RABBITMQ_NODENAME="):
                return item.split(b"=", 1)[1].decode()
        return "rabbit@localhost"  # the Debian package's default node

    def stop(self) -> None:
        _run(["rabbitmqctl", "-n", self.node, "stop_app"])
        wait_port(self.port, up=False)

    def start(self) -> None:
        _run(["rabbitmqctl", "-n", self.node, "start_app"])
        wait_port(self.port, up=True)


class Tansu:
    """The Kafka-protocol broker on KAFKA_BOOTSTRAP_SERVERS' port, restarted with its own
    command line (memory storage: a restart loses every topic, offset and group)."""

    def __init__(self, url: str, log_path: Path):
        self.port, self.log_path = port_of(url, 9092), log_path
        self.argv: list[str] | None = None

    def stop(self) -> None:
        pid = listener_pid(self.port)
        if pid is None:
            raise RuntimeError(f"nothing listens on port {self.port}")
        self.argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        os.kill(pid, 15)
        wait_port(self.port, up=False)

    def start(self) -> None:
        assert self.argv, "stop() remembers the command line start() needs"
        launch.start(self.argv, log=self.log_path, cwd=None)  # a daemon: nobody waits on it
        wait_port(self.port, up=True)


def broker_kind(url: str) -> str:
    scheme = url.split("://")[0] if "://" in url else "kafka"
    return {"redis": "redis", "rediss": "redis", "amqp": "rabbit", "amqps": "rabbit"}.get(
        scheme, "kafka"
    )


def broker_service(url: str, *, log_dir: Path):
    """The service object (stop/start) for the broker at `url`."""
    kind = broker_kind(url)
    if kind == "redis":
        return Redis(url)
    if kind == "rabbit":
        return Rabbit(url)
    return Tansu(url, log_dir / "tansu.log")
