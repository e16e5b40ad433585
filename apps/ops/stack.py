"""The lab's background stack (`make up` / `make down` / `make status`) and its command line.

The stack is the API, the OCR servers of OCR_SERVER_URLS and one runworker per alias of
STACK_WORKERS, each a process with a pid file in var/run and its output in var/log; each
setting comes from the environment, then .env, then STACK_DEFAULTS. Starting it again
leaves running processes alone. The command line also runs the API or OCR servers in the
foreground (compose/ and deploy/k8s/ start them this way). The processes themselves are
started, awaited and stopped by apps/ops/launch.py. Standard library only (and the pure
apps/jobs/versions.py and ocrproject/env.py), nothing from Django.

python -m apps.ops.stack start|stop|stop-workers|status  # make up / down / status
python -m apps.ops.stack api --port 8000
python -m apps.ops.stack ocr-server --port 8101
python -m apps.ops.stack ocr-servers --port 8101 --count 4   # 8101..8104, Ctrl-C stops

Servers bind 127.0.0.1 unless --host (or OCRLAB_BIND_HOST) says otherwise: containers
(compose/) bind 0.0.0.0.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from apps.jobs.versions import version_backends  # pure Python, like this module
from apps.ops.launch import (
    API_WORKERS,
    LOCALHOST,
    ROOT,
    NotReady,
    ServerGroup,
    alive,
    api_command,
    check_running,
    ocr_server_command,
    signals_ignored,
    start,
    stop_groups,
    tcp_reachable,
    wait_port,
    worker_command,
)
from ocrproject.env import read_dotenv  # standard library only, like this module

RUN_DIR, LOG_DIR = ROOT / "var" / "run", ROOT / "var" / "log"
BIND_HOST_ENV = "OCRLAB_BIND_HOST"
STACK_STOP_TIMEOUT_S = 30.0
TAIL_LINES = 15  # of a log, in the error of a process that did not come up
STACK_DEFAULTS = {  # the stack's settings: environment variable -> default
    "API_PORT": "8000",
    "STACK_WORKERS": " ".join(dict.fromkeys(version_backends().values())),  # V3-V6's
    "OCR_SERVER_URLS": "http://127.0.0.1:8101,http://127.0.0.1:8102",
}
STACK_NAMES = ("api", "ocr-server-*", "worker-*")  # the pid files `stop` stops
STACK_ACTIONS = {  # the stack's commands: make up, make down, make demo, make status
    "start": "start the background stack (what runs already is left alone)",
    "stop": "stop the background stack",
    "stop-workers": "stop the stack's workers only (the bench runs its own)",
    "status": "running or stopped, per pid file",
}


class StackError(RuntimeError):
    """The stack cannot start (a port is taken) or a process of it did not come up."""


def stack_setting(name: str, dotenv: Path = ROOT / ".env") -> str:
    """A stack setting (STACK_DEFAULTS): the environment, then .env, then the default."""
    return os.environ.get(name) or read_dotenv(dotenv).get(name) or STACK_DEFAULTS[name]


def bind_host() -> str:
    """The address servers bind: $OCRLAB_BIND_HOST, else 127.0.0.1."""
    return os.environ.get(BIND_HOST_ENV, LOCALHOST)


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
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
        host = bind_host()
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
            self.check_up(name, proc, servers[name][1] if name in servers else None)
        return [
            f"started  {name} (pid {proc.pid})" if proc else f"running  {name}"
            for name, proc in procs.items()
        ]

    def check_up(self, name: str, proc: subprocess.Popen[bytes] | None, port: int | None) -> None:
        """Wait for `port` to open (a server), then check `proc` still runs."""
        try:
            if port is not None:
                wait_port(LOCALHOST, port, proc=proc)
            check_running(proc, name)
        except NotReady as exc:
            log = self.log_dir / f"{name}.log"
            raise StackError(f"{name}: {exc}; last lines of {log}:\n{_tail(log)}") from None

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
    """`start|stop|stop-workers|status` with the settings of STACK_DEFAULTS."""
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


def parser() -> argparse.ArgumentParser:
    """The command line: the stack's actions, `api`, `ocr-server`, `ocr-servers`."""
    parser = argparse.ArgumentParser(
        prog="python -m apps.ops.stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="what", required=True)
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--port", type=int, required=True)
    server.add_argument(
        "--host",
        default=bind_host(),
        help=f"address to bind (default ${BIND_HOST_ENV} or {LOCALHOST}; 0.0.0.0 in containers)",
    )
    server.add_argument("--workers", type=int, default=API_WORKERS, help="API processes")
    server.add_argument("--count", type=int, default=2, help="how many OCR servers")
    sub.add_parser("api", parents=[server], help="the API (uvicorn), in the foreground")
    sub.add_parser("ocr-server", parents=[server], help="one OCR server (gunicorn)")
    sub.add_parser("ocr-servers", parents=[server], help="--count OCR servers from --port")
    for action, text in STACK_ACTIONS.items():
        sub.add_parser(action, help=text)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.what in STACK_ACTIONS:
        try:
            return stack_main(args.what)
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
