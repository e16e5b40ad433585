"""Time the kafka backend's consumer-group joins with real `runworker` processes.

    KAFKA_PORT=9117 scripts/tansu.sh start      # a private Tansu: never the shared :9092
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9117 OCRLAB_QUEUE_PREFIX=joinlab \\
        .venv/bin/python scripts/measure_kafka_join.py [--rounds 3] [--cycles 3]

Each round: start `runworker --backend kafka --workers 2`, submit one noop job and time
its pickup from the start of runworker (`first job`: process start-up + group join + fetch;
`join`: the workers' own "kafka: joined group in N s" lines); then 4 more jobs, kill -9
the whole worker tree, start a new runworker and time 5 noop jobs from the kill. The next
round starts without a purge, on the group the last one left. Then `--cycles` times:
2 workers, 20 noop jobs, stop, purge (the bench's cell cycle). Jobs go to the database of
DATABASE_URL (tagged, deleted at the end); every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
django.setup()

from django.conf import settings  # noqa: E402

from apps.jobs import services  # noqa: E402
from apps.jobs.models import OcrJob  # noqa: E402
from apps.jobs.versions import version_backends  # noqa: E402
from tasks.backends.kafka_group import join_times  # noqa: E402
from tasks.backends.registry import get_backend, reset_backends  # noqa: E402

RUN_TAG = "measure-kafka-join"
WAIT_S = 90.0
STOP_TIMEOUT_S = 30.0
SHARED_BROKER = "127.0.0.1:9092"  # the lab's own Tansu: this script purges and kills
ALIAS = version_backends()["v6"]  # the Kafka design (V6)


def start(workers: int, log: Path) -> tuple[subprocess.Popen, float]:
    argv = [sys.executable, "manage.py", "runworker", "--backend", ALIAS]
    out = log.open("w")
    proc = subprocess.Popen(
        [*argv, "--workers", str(workers)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
    )
    return proc, time.time()


def submit(count: int) -> list:
    reset_backends()  # a fresh producer, like a new API process's
    return [
        services.job_create(
            version="api", backend=ALIAS, document="sample.pdf", workload="noop", run_tag=RUN_TAG
        ).id
        for _ in range(count)
    ]


def wait_all(ids: list, field: str) -> float | None:
    """When the last of `ids` got `field` set (epoch seconds), or None after WAIT_S."""
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        stamps = list(OcrJob.objects.filter(id__in=ids).values_list(field, flat=True))
        if len(stamps) == len(ids) and all(stamps):
            return max(stamps).timestamp()
        time.sleep(0.2)
    return None


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    children = [int(p) for p in out.stdout.split()]
    return [p for child in children for p in (child, *descendants(child))]


def kill_tree(proc: subprocess.Popen) -> None:
    """kill -9 runworker and everything under it (its workers run in sessions of their own)."""
    for pid in [proc.pid, *descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_tree(proc)


def since(start_s: float, end_s: float | None) -> str:
    return f"not within {WAIT_S:.0f} s" if end_s is None else f"{end_s - start_s:.1f} s"


def joins(log: Path) -> str:
    return ", ".join(f"{s:.1f}" for s in join_times(log.read_text(errors="replace"))) or "-"


def one_round(number: int, logs: Path) -> None:
    log = logs / f"round{number}-fresh.log"
    proc, started = start(2, log)
    first = wait_all(submit(1), "started_at")
    print(f"round {number}: first job {since(started, first)} (join s: {joins(log)})")
    wait_all(submit(4), "finished_at")
    kill_tree(proc)
    killed = time.time()
    log = logs / f"round{number}-after-kill.log"
    proc, _ = start(2, log)
    done = wait_all(submit(5), "finished_at")
    after = since(killed, done)
    print(f"round {number}: 5 noop jobs done {after} after kill -9 (join s: {joins(log)})")
    stop(proc)


def one_cycle(number: int, logs: Path) -> None:
    log = logs / f"cycle{number}.log"
    proc, started = start(2, log)
    done = wait_all(submit(20), "finished_at")
    stop(proc)
    get_backend(ALIAS).purge()
    verdict = "ok" if done else "FAILED"
    took = since(started, done)
    print(f"cycle {number}: 20 noop jobs {verdict} in {took} (join s: {joins(log)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    if settings.KAFKA_BOOTSTRAP_SERVERS == SHARED_BROKER:
        sys.exit(f"refusing to purge and kill on the shared broker {SHARED_BROKER}: see --help")
    session_ms = settings.KAFKA_SESSION_TIMEOUT_MS
    print(f"broker {settings.KAFKA_BOOTSTRAP_SERVERS}, session {session_ms} ms")
    logs = Path(tempfile.mkdtemp(prefix="kafka-join-"))
    get_backend(ALIAS).purge()
    try:
        for number in range(1, args.rounds + 1):
            one_round(number, logs)
        for number in range(1, args.cycles + 1):
            one_cycle(number, logs)
    finally:
        OcrJob.objects.filter(run_tag=RUN_TAG).delete()
        print(f"worker logs: {logs}")


if __name__ == "__main__":
    main()
