"""Start, watch and stop the lab's processes: the API, OCR servers, workers, load tools.

One place for the command lines, for starting a process in a session of its own with its
output in a log file, for readiness (an HTTP answer or an open TCP port), for stopping a
process group (SIGTERM, wait, SIGKILL) and for the background stack of `make up`. Used by
the Makefile, the worker supervisor, the bench and the tests. Standard library only, and
nothing from Django: anything may import it without an import cycle.

python -m apps.ops.launch api --port 8000
python -m apps.ops.launch ocr-server --port 8101
python -m apps.ops.launch ocr-servers --port 8101 --count 4   # 8101..8104, Ctrl-C stops
python -m apps.ops.launch stack start|stop|stop-workers|status  # make up / down / status

Servers bind 127.0.0.1 unless --host (or OCRLAB_BIND_HOST) says otherwise: containers
(compose/) bind 0.0.0.0. The stack runs the OCR servers of OCR_SERVER_URLS (environment,
then .env), the API on API_PORT and one runworker per alias of STACK_WORKERS; pid files in
var/run, logs in var/log. Starting it again leaves running processes alone.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
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
from urllib.parse import urlsplit

from ocrproject.env import read_dotenv  # standard library only, like this module

DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}  # of brokers
ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
RUN_DIR, LOG_DIR = ROOT / "var" / "run", ROOT / "var" / "log"
LOCALHOST = "127.0.0.1"
BIND_HOST_ENV = "OCRLAB_BIND_HOST"
API_WORKERS = 2
OCR_SERVER_URLCONF = "ocrproject.ocr_urls"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
KILL_WAIT_S = 10.0
POLL_S = 0.1
STACK_STOP_TIMEOUT_S = 30.0
STACK_DEFAULTS = {  # the stack's settings: environment variable -> default
    "API_PORT": "8000",
    "STACK_WORKERS": "db redis rabbit kafka",
    "OCR_SERVER_URLS": "http://127.0.0.1:8101,http://127.0.0.1:8102",
}
STACK_NAMES = ("api", "ocr-server-*", "worker-*")  # the pid files `stack stop` stops


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


def _check_running(proc: subprocess.Popen[bytes] | None, what: str) -> None:
    if proc is not None and proc.poll() is not None:
        raise NotReady(f"{what}: the process exited with {proc.returncode} before answering")


def wait_http(
    url: str, timeout_s: float = READY_TIMEOUT_S, *, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until `url` answers with any HTTP status; NotReady (a TimeoutError) when
    `proc` exits first or after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _check_running(proc, url)
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


def broker_address(url: str) -> tuple[str, int] | None:
    """(host, port) of a broker URL: redis://h:p/0, amqp://u:p@h:p//, or Kafka's h:p,h:p."""
    first = url.split(",")[0].strip()
    parts = urlsplit(first if "://" in first else f"kafka://{first}")
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme, 0)


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
        _check_running(proc, f"{host}:{port}")
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


def run_ocr_servers(first_port: int, count: int, *, host: str = LOCALHOST) -> None:
    """Several OCR servers on consecutive ports, in the foreground until Ctrl-C/SIGTERM
    (a signal while they start stops them once all are up)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    group = ServerGroup(LOG_DIR)
    try:
        urls = group.start_ocr_servers(range(first_port, first_port + count), host=host)
        print(f"OCR servers up; for the API: OCR_SERVER_URLS={','.join(urls)}", flush=True)
        while not stop.wait(0.5):
            pass
        print("stopping OCR servers", flush=True)
    finally:
        with signals_ignored():
            group.stop()


# --- the background stack (make up / down / status) ---


class StackError(RuntimeError):
    """The stack cannot start (a port is taken) or a process of it did not come up."""


def stack_setting(name: str, dotenv: Path = ROOT / ".env") -> str:
    """A stack setting (STACK_DEFAULTS): the environment, then .env, then the default."""
    return os.environ.get(name) or read_dotenv(dotenv).get(name) or STACK_DEFAULTS[name]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Stack:
    """The lab's background processes: one pid file per process name in `run_dir`, its
    output appended to `log_dir`/<name>.log. A name whose pid file names a live process
    is running and is left alone by `up`."""

    def __init__(self, run_dir: Path = RUN_DIR, log_dir: Path = LOG_DIR):
        self.run_dir, self.log_dir = run_dir, log_dir

    def pid(self, name: str) -> int | None:
        try:
            return int((self.run_dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self, name: str) -> bool:
        pid = self.pid(name)
        return pid is not None and alive(pid)

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes] | None:
        """Start `cmd` as `name` unless it runs already (then None)."""
        if self.running(name):
            return None
        proc = start(cmd, log=self.log_dir / f"{name}.log")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
        return proc

    def up(self, *, api_port: int, ocr_ports: list[int], workers: list[str]) -> list[str]:
        """OCR servers, the API, one runworker per alias; returns once the servers answer."""
        host = os.environ.get(BIND_HOST_ENV, LOCALHOST)
        servers = {f"ocr-server-{p}": (ocr_server_command(port=p, host=host), p) for p in ocr_ports}
        servers["api"] = (api_command(port=api_port, host=host), api_port)
        taken = [
            f":{port} ({name})"
            for name, (_, port) in servers.items()
            if not self.running(name) and tcp_reachable(LOCALHOST, port, timeout_s=1.0)
        ]
        if taken:
            raise StackError(f"ports in use by processes not of this stack: {', '.join(taken)}")
        procs = {name: self.start(name, cmd) for name, (cmd, _) in servers.items()}
        for alias in workers:
            procs[f"worker-{alias}"] = self.start(f"worker-{alias}", worker_command(alias))
        for name, proc in procs.items():  # servers first: a worker has had time to fail
            try:
                if name in servers:
                    wait_port(LOCALHOST, servers[name][1], proc=proc)
                _check_running(proc, name)
            except NotReady as exc:
                log = self.log_dir / f"{name}.log"
                raise StackError(f"{name}: {exc}; last lines of {log}:\n{_tail(log)}") from None
        return [
            f"started  {name} (pid {proc.pid})" if proc else f"running  {name}"
            for name, proc in procs.items()
        ]

    def down(
        self, patterns: Iterable[str] = STACK_NAMES, timeout_s: float = STACK_STOP_TIMEOUT_S
    ) -> list[str]:
        """Stop the processes whose pid file names match `patterns` (SIGTERM their groups,
        then SIGKILL after `timeout_s`) and remove their pid files; one line each."""
        patterns = list(patterns)
        pids: dict[str, int] = {}
        for path in sorted(self.run_dir.glob("*.pid")):
            if any(fnmatch.fnmatchcase(path.stem, pattern) for pattern in patterns):
                pid = self.pid(path.stem)
                path.unlink(missing_ok=True)
                if pid is not None and alive(pid):
                    pids[path.stem] = pid
        in_time = stop_groups(pids.values(), timeout_s=timeout_s)
        return [
            f"stopped  {name}" if ok else f"killed   {name} (not stopped after {timeout_s:g}s)"
            for name, ok in zip(pids, in_time, strict=True)
        ]

    def status(self) -> list[str]:
        """'running  NAME' or 'stopped  NAME' for every pid file."""
        return [
            f"{'running' if self.running(path.stem) else 'stopped'}  {path.stem}"
            for path in sorted(self.run_dir.glob("*.pid"))
        ]


def stack_main(action: str, stack: Stack | None = None) -> int:
    """`stack start|stop|stop-workers|status` with the settings of STACK_DEFAULTS."""
    stack = stack or Stack()
    if action == "start":
        urls = stack_setting("OCR_SERVER_URLS").split(",")
        lines = stack.up(
            api_port=int(stack_setting("API_PORT")),
            ocr_ports=[urlsplit(url.strip()).port or 80 for url in urls if url.strip()],
            workers=stack_setting("STACK_WORKERS").replace(",", " ").split(),
        )
    elif action == "stop":
        lines = stack.down()
    elif action == "stop-workers":  # the bench starts its own; these would take its jobs
        lines = stack.down(["worker-*"])
    else:
        lines = stack.status()
    print("\n".join(lines) if lines else f"no processes ({stack.run_dir})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m apps.ops.launch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="what", required=True)
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--port", type=int, required=True)
    server.add_argument(
        "--host",
        default=os.environ.get(BIND_HOST_ENV, LOCALHOST),
        help=f"address to bind (default ${BIND_HOST_ENV} or {LOCALHOST}; 0.0.0.0 in containers)",
    )
    server.add_argument("--workers", type=int, default=API_WORKERS, help="API processes")
    server.add_argument("--count", type=int, default=2, help="how many OCR servers")
    sub.add_parser("api", parents=[server], help="the API (uvicorn), in the foreground")
    sub.add_parser("ocr-server", parents=[server], help="one OCR server (gunicorn)")
    sub.add_parser("ocr-servers", parents=[server], help="--count OCR servers from --port")
    stack = sub.add_parser("stack", help="the background stack of make up/down/status")
    stack.add_argument("action", choices=["start", "stop", "stop-workers", "status"])
    args = parser.parse_args(argv)
    if args.what == "stack":
        try:
            return stack_main(args.action)
        except StackError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.what == "ocr-servers":
        run_ocr_servers(args.port, args.count, host=args.host)
        return 0
    if args.what == "api":
        cmd = api_command(port=args.port, host=args.host, workers=args.workers)
    else:
        cmd = ocr_server_command(port=args.port, host=args.host)
    os.execv(cmd[0], cmd)
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
