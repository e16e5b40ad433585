"""Readiness: the database and every server the backends of settings.JOB_BACKENDS need,
each asked through its own `ping` (tasks/backends/services.py) within a timeout."""

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections

from tasks.backends.registry import backend_aliases, get_backend
from tasks.backends.services import Postgres, Service


@dataclass
class Dependency:
    name: str  # "database", else the service's kind (numbered when several share it)
    service: Service
    backends: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.service.kind


def dependencies() -> list[Dependency]:
    """The database, then one entry per distinct server, naming the aliases using it."""
    database = Dependency(name="database", service=Postgres())
    by_service: dict[Service, Dependency] = {database.service: database}
    for alias in backend_aliases():
        for service in get_backend(alias).services():
            dep = by_service.setdefault(service, Dependency(name="", service=service))
            dep.backends.append(alias)
    others = [dep for dep in by_service.values() if dep is not database]
    for dep in others:
        same_kind = [d for d in others if d.kind == dep.kind]
        dep.name = dep.kind if len(same_kind) == 1 else f"{dep.kind}-{same_kind.index(dep) + 1}"
    return [database, *others]


def _ping(dep: Dependency, timeout_s: float) -> None:
    dep.service.ping(timeout_s)


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
