"""Readiness: the database and every broker of settings.JOB_BACKENDS, each with a timeout."""

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db import connection, connections
from kombu import Connection

from apps.ops.launch import broker_address, tcp_reachable


@dataclass
class Dependency:
    name: str
    kind: str  # database, redis, amqp, kafka
    url: str = ""
    backends: list[str] = field(default_factory=list)


def dependencies() -> list[Dependency]:
    """The database, then one entry per distinct broker URL, naming the aliases using it."""
    by_url: dict[str, Dependency] = {}
    for alias, conf in settings.JOB_BACKENDS.items():
        url = conf.get("OPTIONS", {}).get("url")
        if not url:
            continue  # the `db` backend: its broker is the database
        if url not in by_url:
            by_url[url] = Dependency(name="", kind=_kind(url), url=url)
        by_url[url].backends.append(alias)
    brokers = list(by_url.values())
    for dep in brokers:
        same_kind = [d for d in brokers if d.kind == dep.kind]
        dep.name = dep.kind if len(same_kind) == 1 else f"{dep.kind}-{same_kind.index(dep) + 1}"
    db_backends = [a for a, c in settings.JOB_BACKENDS.items() if not c.get("OPTIONS", {})]
    return [Dependency(name="database", kind="database", backends=db_backends), *brokers]


def _kind(url: str) -> str:
    scheme = urlsplit(url).scheme if "://" in url else "kafka"
    return {"rediss": "redis", "amqps": "amqp", "pyamqp": "amqp"}.get(scheme, scheme)


def _ping(dep: Dependency, timeout_s: float) -> None:
    if dep.kind == "database":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    elif dep.kind == "redis":
        client = redis.Redis.from_url(
            dep.url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            client.ping()
        finally:
            client.close()
    elif dep.kind == "amqp":
        with Connection(dep.url, connect_timeout=timeout_s) as conn:
            conn.connect()
    else:
        address = broker_address(dep.url)
        if address is None or not tcp_reachable(*address, timeout_s=timeout_s):
            raise ConnectionError(f"nothing accepts connections at {address}")


def check(dep: Dependency, timeout_s: float) -> dict:
    """{"ok": bool, "ms": float, "backends": [...], "error"?: str} for one dependency."""
    started = time.monotonic()
    error = call_with_timeout(lambda: _ping(dep, timeout_s), timeout_s)
    result: dict[str, object]
    result = {"ok": error is None, "ms": round((time.monotonic() - started) * 1000, 1)}
    if dep.backends:
        result["backends"] = dep.backends
    if error:
        result["error"] = error
    return result


def readiness() -> tuple[bool, dict[str, dict]]:
    """All dependencies checked at once; (ready, {name: status})."""
    deps = dependencies()
    timeout_s = settings.OPS_CHECK_TIMEOUT_S
    with ThreadPoolExecutor(max_workers=len(deps)) as pool:
        results = list(pool.map(lambda dep: check(dep, timeout_s), deps))
    statuses = {dep.name: result for dep, result in zip(deps, results, strict=True)}
    return all(r["ok"] for r in results), statuses


def call_with_timeout(func: Callable[[], object], timeout_s: float) -> str | None:
    """Run func in a thread; None on success, else the error (or a timeout) as text."""
    outcome: list[str | None] = []

    def target() -> None:
        try:
            func()
            outcome.append(None)
        except Exception as exc:  # reported as the reason to skip the cell
            outcome.append(f"{type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return outcome[0] if outcome else f"no answer within {timeout_s:g}s"
