"""The API side of a multi-host run: `python -m apps.bench.hosts.client probe|burst ...`,
started with DATABASE_URL and the broker URLs of the lab's broker host in its environment.
It creates jobs through services.job_create (the row, then the publish after commit, as the
API does), waits on their rows and prints them as one JSON list (epoch-second floats), for
the caller to compute pickup and capacity. Django is set up before anything else is
imported (a process entry point, like wsgi.py).

probe: `--jobs` jobs one at a time, each after the previous finished.
burst: `--jobs` jobs at once, then wait for all of them (noop: the bench's burst, rows
inserted in one statement, then published as fast as the broker takes them; its tag gets
the suffix `-burst`).
inflight: keep `--jobs` unfinished jobs in flight until `--stop-file` exists; prints
{"ids": [...], "errors": N} (a failed submit is an error the user sees: nothing accepted).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
django.setup()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from django.db import DatabaseError, InterfaceError, connections  # noqa: E402

from apps.bench.run.burst import burst_tag, run_burst  # noqa: E402
from apps.bench.run.waiting import wait_finished  # noqa: E402
from apps.jobs import services  # noqa: E402
from apps.jobs.models import FINISHED, OcrJob  # noqa: E402
from apps.jobs.versions import API_VERSION  # noqa: E402

POLL_S = 0.02
ROW_FIELDS = ("id", "status", "attempts", "created_at", "queued_at", "started_at", "finished_at")


def create(*, backend: str, tag: str, workload: str, document: str) -> OcrJob:
    return services.job_create(
        version=API_VERSION, backend=backend, document=document, workload=workload, run_tag=tag
    )


def rows(tag: str) -> list[dict]:
    found = OcrJob.objects.filter(run_tag=tag).order_by("created_at").values(*ROW_FIELDS)
    return [
        {k: (v.timestamp() if hasattr(v, "timestamp") else v) for k, v in row.items()}
        | {"id": str(row["id"])}
        for row in found
    ]


def inflight(args: argparse.Namespace, kwargs: dict) -> dict:
    ids, errors = [], 0
    stop = Path(args.stop_file)
    while not stop.exists():
        try:
            unfinished = OcrJob.objects.filter(run_tag=args.tag).exclude(status__in=FINISHED)
            for _ in range(args.jobs - unfinished.count()):
                ids.append(str(create(**kwargs).id))
        except (DatabaseError, InterfaceError):
            errors += 1
            connections.close_all()
            time.sleep(0.5)
        time.sleep(0.1)
    return {"ids": ids, "errors": errors}


def run(args: argparse.Namespace) -> list[dict] | dict:
    kwargs = {"backend": args.backend, "tag": args.tag, "workload": args.workload}
    kwargs["document"] = args.document
    if args.mode == "inflight":
        return inflight(args, kwargs)
    if args.mode == "probe":
        for i in range(args.jobs):
            create(**kwargs)
            if not wait_finished(args.tag, i + 1, args.timeout_s, POLL_S):
                break
    elif args.workload == "noop":
        run_burst(
            version=API_VERSION,
            backend=args.backend,
            tag=args.tag,
            count=args.jobs,
            document=args.document,
            timeout_s=args.timeout_s,
        )
        return rows(burst_tag(args.tag))
    else:
        for _ in range(args.jobs):
            create(**kwargs)
        wait_finished(args.tag, args.jobs, args.timeout_s, POLL_S)
    return rows(args.tag)


def main() -> None:
    parser = argparse.ArgumentParser(description="create jobs, wait, print their rows")
    parser.add_argument("mode", choices=["probe", "burst", "inflight"])
    parser.add_argument("--backend", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--workload", default="noop")
    parser.add_argument("--document", default="sample.pdf")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument("--stop-file", help="inflight: stop once this file exists")
    parser.add_argument("--out", help="write the JSON here instead of to stdout")
    args = parser.parse_args()
    text = json.dumps(run(args)) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
