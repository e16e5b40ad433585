"""Start, watch and stop the lab's processes: the API, OCR servers, workers, load tools.

The process toolkit: the command lines (API, OCR server, runworker, manage.py), starting a
process in a session of its own with its output in a log file, readiness (an HTTP answer
or an open TCP port), stopping a process group (SIGTERM, wait, SIGKILL) and server groups
(processes started and stopped together). Used by the worker supervisor, the backends'
services, the bench, the pid-file stack of `make up` (apps/ops/stack.py, which also holds
the command line) and the tests. Standard library only, nothing from Django or the rest of
the project: anything may import it without an import cycle.

Servers bind 127.0.0.1 unless told otherwise (`host=`): containers (compose/) bind 0.0.0.0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
LOCALHOST = "127.0.0.1"
API_WORKERS = 2
OCR_SERVER_URLCONF = "ocrproject.ocr_urls"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
KILL_WAIT_S = 10.0
POLL_S = 0.1


# --- command lines ---


def api_command(*, port: int, host: str = LOCALHOST, workers: int = API_WORKERS) -> list[str]:
    """The API on ASGI (uvicorn): async views (V1, V2) wait without holding a thread.
    Keep-alive 30 s: load clients reuse connections, and with uvicorn's 5 s an overloaded
    event loop closed some just as the next request arrived (client ReadError).
    No proxy headers: the client address is the peer's; X-Forwarded-For is weighed by the
    app against TRUSTED_PROXIES (apps/jobs/clientip.py)."""
    options = f"--host {host} --port {port} --workers {workers} --no-access-log"
    options += " --no-proxy-headers"
    options += " --timeout-keep-alive 30 --timeout-graceful-shutdown 5"
    return [str(BIN / "uvicorn"), "ocrproject.asgi:application", *options.split()]


def ocr_server_command(*, port: int, host: str = LOCALHOST) -> list[str]:
    """One OCR server: gunicorn, one sync worker = one OCR at a time = one core. It mounts
    only /ocr/predict (its own URLconf)."""
    options = f"--env DJANGO_ROOT_URLCONF={OCR_SERVER_URLCONF} --bind {host}:{port}"
    options += " --workers 1 --timeout 600 --graceful-timeout 30 --access-logfile -"
    return [str(BIN / "gunicorn"), "ocrproject.wsgi:application", *options.split()]


def manage_command(*args: str) -> list[str]:
    """`python manage.py ARGS` with this interpreter (run from ROOT)."""
    return [sys.executable, "manage.py", *args]


def worker_command(alias: str, count: int = 1, workload: str | None = None) -> list[str]:
    """`runworker`: `count` job slots for the backend `alias`, optionally one workload."""
    cmd = manage_command("runworker", "--backend", alias, "--workers", str(count))
    return [*cmd, "--workload", workload] if workload else cmd


def ocr_ready_url(port: int) -> str:
    """Any HTTP answer here (a GET on the POST-only endpoint is a 4xx) means it is up."""
    return f"http://{LOCALHOST}:{port}/ocr/predict"


# --- starting and readiness ---


def start(
    cmd: list[str],
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = ROOT,
) -> subprocess.Popen[bytes]:
    """Start `cmd` in a session (and process group) of its own: a Ctrl-C in the terminal
    does not reach it, and stop_group reaches what it starts. stdin is /dev/null; stdout
    and stderr are appended to `log`, or inherited without one. `env` is the whole
    environment (default: this process's)."""
    if log is None:
        return _popen(cmd, env, cwd, None, None)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return _popen(cmd, env, cwd, out, subprocess.STDOUT)


def _popen(
    cmd: list[str],
    env: dict[str, str] | None,
    cwd: Path | None,
    stdout: IO[bytes] | None,
    stderr: int | None,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


class NotReady(TimeoutError):
    """A process did not become ready: it exited first, or the time ran out."""


def check_running(proc: subprocess.Popen[bytes] | None, what: str) -> None:
    if proc is not None and proc.poll() is not None:
        raise NotReady(f"{what}: the process exited with {proc.returncode} before answering")


def wait_http(
    url: str, timeout_s: float = READY_TIMEOUT_S, *, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until `url` answers with any HTTP status; NotReady (a TimeoutError) when
    `proc` exits first or after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check_running(proc, url)
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError as exc:
            exc.close()
            return
        except OSError:
            time.sleep(POLL_S)
    raise NotReady(f"{url} did not answer within {timeout_s:g}s")


def tcp_reachable(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """True when something accepts a TCP connection at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_port(
    host: str,
    port: int,
    timeout_s: float = READY_TIMEOUT_S,
    *,
    up: bool = True,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until host:port accepts connections (or, with up=False, refuses them)."""
    deadline = time.monotonic() + timeout_s
    while tcp_reachable(host, port, timeout_s=1.0) != up:
        check_running(proc, f"{host}:{port}")
        if time.monotonic() > deadline:
            state = "down" if up else "up"
            raise NotReady(f"port {port} still {state} after {timeout_s:g}s")
        time.sleep(POLL_S)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --- stopping ---


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]; [] if unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text.rpartition(")")[2].split()


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _stat(pid)[:1] != ["Z"]


def _processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, stat fields) of every process (from /proc: Linux; none elsewhere)."""
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            stat = _stat(int(entry.name)) if entry.name.isdigit() else []
            if len(stat) > 2:
                yield int(entry.name), stat


def descendants(pid: int) -> list[int]:
    """Children, grandchildren, ... of `pid`."""
    children: dict[int, list[int]] = {}
    for child, stat in _processes():
        children.setdefault(int(stat[1]), []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def group_members(pgid: int) -> list[int]:
    """The live processes (zombies excluded) of the process group `pgid`."""
    return [pid for pid, stat in _processes() if stat[2] == str(pgid) and stat[0] != "Z"]


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to the process group `pgid`, if it still has members."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _Leader:
    """A group leader to stop: our child (a Popen, waited on) or any pid (polled)."""

    def __init__(self, proc: subprocess.Popen[bytes] | int):
        self.proc = proc if isinstance(proc, subprocess.Popen) else None
        self.pid = proc.pid if isinstance(proc, subprocess.Popen) else int(proc)

    def running(self) -> bool:
        return self.proc.poll() is None if self.proc else alive(self.pid)

    def wait(self, deadline: float) -> bool:
        if self.proc is not None:
            try:
                self.proc.wait(max(0.0, deadline - time.monotonic()))
                return True
            except subprocess.TimeoutExpired:
                return False
        while alive(self.pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)
        return True


def stop_groups(
    procs: Iterable[subprocess.Popen[bytes] | int],
    *,
    timeout_s: float = STOP_TIMEOUT_S,
    leader_only: bool = False,
) -> list[bool]:
    """Stop processes started in groups of their own (see `start`), all at once: SIGTERM
    each group (leader_only: only its leader, a warm shutdown it passes on itself; to
    Celery and Dramatiq a second SIGTERM means "kill now"), wait up to `timeout_s`, then
    SIGKILL each group, and the descendants of a leader still alive (a child that made a
    group of its own would outlive it). True for each leader that stopped in time."""
    leaders = [_Leader(proc) for proc in procs]
    for leader in leaders:
        if leader.running():
            (_kill if leader_only else signal_group)(leader.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    in_time = [leader.wait(deadline) for leader in leaders]
    killed: list[int] = []
    for leader, stopped in zip(leaders, in_time, strict=True):
        killed += [] if stopped else descendants(leader.pid)
        for pid in killed:
            _kill(pid, signal.SIGKILL)
        signal_group(leader.pid, signal.SIGKILL)  # and whatever it left in its group
    deadline = time.monotonic() + KILL_WAIT_S
    for leader in leaders:
        leader.wait(deadline)
    while any(map(alive, killed)) or any(group_members(leader.pid) for leader in leaders):
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    return in_time


def stop_group(
    proc: subprocess.Popen[bytes] | int,
    *,
    timeout_s: float = STOP_TIMEOUT_S,
    leader_only: bool = False,
) -> bool:
    """stop_groups for one process: True when it stopped within `timeout_s`."""
    return stop_groups([proc], timeout_s=timeout_s, leader_only=leader_only)[0]


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore Ctrl-C / SIGTERM while stopping processes, so cleanup is never cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


# --- processes started and stopped together ---


class ServerGroup:
    """Processes started together, each in a session of its own with its output in
    <log_dir>/<name>.log, and stopped together (stop_groups)."""

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None):
        self.log_dir, self.env = log_dir, {**os.environ, **(env or {})}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        name: str,
        cmd: list[str],
        *,
        ready_url: str | None = None,
        ready_port: int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `cmd`; with `ready_url` or `ready_port`, return once it answers there."""
        log = self.log_dir / f"{name}.log"
        proc = start(cmd, log=log, env=self.env)
        self.procs.append(proc)
        try:
            if ready_url:
                wait_http(ready_url, proc=proc)
            if ready_port:
                wait_port(LOCALHOST, ready_port, proc=proc)
        except NotReady as exc:
            raise NotReady(f"{name}: {exc}; see {log}") from None
        return proc

    def start_ocr_servers(self, ports: Iterable[int], *, host: str = LOCALHOST) -> list[str]:
        """One OCR server per port, each answering before the next starts; their URLs."""
        urls = []
        for port in ports:
            cmd = ocr_server_command(port=port, host=host)
            self.start(f"ocr-server-{port}", cmd, ready_url=ocr_ready_url(port))
            urls.append(f"http://{LOCALHOST}:{port}")
        return urls

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        stop_groups(self.procs, timeout_s=timeout_s)
        self.procs.clear()

    def __enter__(self) -> ServerGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
