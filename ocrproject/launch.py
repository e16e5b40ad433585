"""Commands that start the lab's servers, shared by `make up`, test fixtures and the bench.

python -m ocrproject.launch api --port 8000
python -m ocrproject.launch ocr-server --port 8101
python -m ocrproject.launch ocr-servers --port 8101 --count 4   # 8101..8104, Ctrl-C stops

Servers bind 127.0.0.1 unless --host (or OCRLAB_BIND_HOST) says otherwise: containers
(compose/) bind 0.0.0.0.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 60.0
BIND_HOST_ENV = "OCRLAB_BIND_HOST"


def api_command(*, port: int, host: str = "127.0.0.1", workers: int = 2) -> list[str]:
    """The API on ASGI (uvicorn): async views (V1, V2) wait without holding a thread."""
    return [
        str(BIN / "uvicorn"),
        "ocrproject.asgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        # Load clients reuse connections; with uvicorn's 5 s keep-alive an overloaded
        # event loop closed some just as the next request arrived (client ReadError).
        "--timeout-keep-alive",
        "30",
        "--timeout-graceful-shutdown",
        "5",
    ]


OCR_SERVER_URLCONF = "ocrproject.ocr_urls"


def ocr_server_command(*, port: int, host: str = "127.0.0.1") -> list[str]:
    """One OCR server: gunicorn, one sync worker = one OCR at a time = one core. It mounts
    only /ocr/predict (its own URLconf)."""
    return [
        str(BIN / "gunicorn"),
        "ocrproject.wsgi:application",
        "--env",
        f"DJANGO_ROOT_URLCONF={OCR_SERVER_URLCONF}",
        "--bind",
        f"{host}:{port}",
        "--workers",
        "1",
        "--timeout",
        "600",
        "--graceful-timeout",
        "30",
        "--access-logfile",
        "-",
    ]


def wait_http(url: str, timeout: float = READY_TIMEOUT_S) -> None:
    """Wait until `url` answers with any HTTP status; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:g}s")


class ServerGroup:
    """Start processes in their own sessions; stop them all (SIGTERM, then SIGKILL)."""

    def __init__(self, log_dir: Path, env: dict | None = None):
        self.log_dir, self.env = log_dir, {**os.environ, **(env or {})}
        self.procs: list[subprocess.Popen] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, cmd: list[str], ready_url: str | None = None) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        if ready_url:
            wait_http(ready_url)

    def stop(self, timeout: float = 15.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_ocr_servers(first_port: int, count: int) -> None:
    """Several OCR servers on consecutive ports, in the foreground until Ctrl-C."""
    ports = range(first_port, first_port + count)
    with ServerGroup(ROOT / "var" / "log") as group:
        for port in ports:
            group.start(
                f"ocr-server-{port}",
                ocr_server_command(port=port),
                ready_url=f"http://127.0.0.1:{port}/ocr/predict",
            )
        urls = ",".join(f"http://127.0.0.1:{port}" for port in ports)
        print(f"OCR servers up; for the API: OCR_SERVER_URLS={urls}", flush=True)
        try:
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        finally:
            print("stopping OCR servers", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["api", "ocr-server", "ocr-servers"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--host",
        default=os.environ.get(BIND_HOST_ENV, "127.0.0.1"),
        help=f"address to bind (default ${BIND_HOST_ENV} or 127.0.0.1; 0.0.0.0 in containers)",
    )
    parser.add_argument("--workers", type=int, default=2, help="API worker processes")
    parser.add_argument("--count", type=int, default=2, help="how many OCR servers")
    args = parser.parse_args()
    if args.what == "ocr-servers":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        return run_ocr_servers(args.port, args.count)
    if args.what == "api":
        cmd = api_command(port=args.port, host=args.host, workers=args.workers)
    else:
        cmd = ocr_server_command(port=args.port, host=args.host)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
