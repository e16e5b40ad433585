"""What a result depends on: the machine, library versions and the git commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from django.db import connection

from apps.ops.launch import ROOT
from tasks.backends.registry import backend_aliases, get_backend

# The libraries every run exercises; each backend adds its own client libraries.
PACKAGES = (
    "Django",
    "djangorestframework",
    "locust",
    "psycopg",
    "ocrmypdf",
    "uvicorn",
    "gunicorn",
    "httpx",
)


def packages() -> tuple[str, ...]:
    """PACKAGES, then the client libraries of every backend that loads."""
    names = dict.fromkeys(PACKAGES)
    for alias in backend_aliases():
        try:
            names.update(dict.fromkeys(get_backend(alias).client_packages))
        except Exception:  # a backend whose client library is missing: noted elsewhere
            continue
    return tuple(names)


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _proc_field(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def machine() -> dict:
    """nproc, CPU model, RAM, OS and host name."""
    mem_kb = _proc_field("/proc/meminfo", "MemTotal").split()[0:1]
    return {
        "nproc": cores(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.processor(),
        "ram_gb": round(int(mem_kb[0]) / 1024 / 1024, 1) if mem_kb else None,
        "os": platform.platform(),
        "hostname": platform.node(),
    }


def _command_output(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).strip()


def versions() -> dict:
    """Python, the libraries the bench exercises, Tesseract and Postgres."""
    found = {"python": sys.version.split()[0]}
    for name in packages():
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    first = (_command_output(["tesseract", "--version"]).splitlines() or [""])[0]
    found["tesseract"] = first.removeprefix("tesseract ").strip() or "not found"
    found["postgres"] = _postgres_version()
    return found


def _postgres_version() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return cursor.fetchone()[0]
    except Exception:  # the report must not fail because the version is unknown
        return "unknown"


def git_info() -> dict:
    """{"commit": sha or "", "dirty": bool}."""
    commit = _command_output(["git", "rev-parse", "HEAD"])
    status = _command_output(["git", "status", "--porcelain", "--untracked-files=no"])
    return {"commit": commit if len(commit) == 40 else "", "dirty": bool(status)}
