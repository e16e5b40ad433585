"""`python manage.py demo`: sample.pdf through the running API, one version at a time.

`--requests 8 --clients 4` instead sends 8 requests from 4 concurrent clients to each
version and prints the wall time of each batch (the V0 vs V2 comparison in the README).
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from django.core.management.base import BaseCommand, CommandError

from apps.jobs.versions import is_sync, queue_versions, submit_path, sync_versions
from ocrproject.env import api_auth_headers

SYNC_VERSIONS = list(sync_versions())
QUEUE_VERSIONS = list(queue_versions())
WAIT_MAX_S = 60.0  # the API's limit on ?wait=
WAIT_SLACK_S = 1.0  # the answer may come a little after the wait; the client times out


def _check_sync(versions: str) -> None:
    """--requests batches call the sync endpoints: refuse any other version."""
    unknown = [v for v in versions.split(",") if v not in SYNC_VERSIONS]
    if unknown:
        raise CommandError(
            f"--versions takes sync versions ({', '.join(SYNC_VERSIONS)}), not {', '.join(unknown)}"
        )


class Command(BaseCommand):
    help = "Send sample.pdf through V0-V2 (and the queue versions with --queues) and print a table."

    def add_arguments(self, parser):
        parser.add_argument(
            "--api",
            default=os.environ.get(
                "API_URL", f"http://127.0.0.1:{os.environ.get('API_PORT', '8000')}"
            ),
        )
        parser.add_argument("--document", default="sample.pdf")
        parser.add_argument("--queues", action="store_true", help="also V3-V6 (needs workers)")
        parser.add_argument("--timeout", type=float, default=120.0)
        parser.add_argument(
            "--versions",
            default=",".join(SYNC_VERSIONS),
            help=f"with --requests: the sync versions to compare ({','.join(SYNC_VERSIONS)})",
        )
        parser.add_argument("--requests", type=int, default=0, help="batch size per version")
        parser.add_argument("--clients", type=int, default=4, help="concurrent clients")

    def handle(self, *args, api, document, queues, timeout, **options):
        if options["requests"]:
            _check_sync(options["versions"])
            return self._batches(api, document, timeout, **options)
        rows = []
        with httpx.Client(base_url=api, timeout=timeout, headers=api_auth_headers()) as client:
            for version in SYNC_VERSIONS + (QUEUE_VERSIONS if queues else []):
                rows.append(self._run(client, version, document, timeout))
        self.stdout.write(f"\n{'version':<8} {'seconds':>8}  {'status':<8} first words")
        for version, seconds, status, words in rows:
            self.stdout.write(f"{version:<8} {seconds:>8.2f}  {status:<8} {words}")
        if any(status != "DONE" for _, _, status, _ in rows):
            raise CommandError("some versions did not return text; see the table above")

    def _run(self, client, version, document, timeout):
        started = time.monotonic()
        try:
            body = (
                self._sync(client, version, document)
                if is_sync(version)
                else self._queued(client, version, document, timeout)
            )
        except (httpx.HTTPError, CommandError) as exc:
            return version, time.monotonic() - started, "ERROR", str(exc)[:80]
        words = " ".join((body.get("text") or "").split()[:8])
        status = "DONE" if words else body.get("status", "EMPTY")
        return version, time.monotonic() - started, status, words

    def _sync(self, client, version, document) -> dict:
        response = client.post(submit_path(version), json={"pdfName": document})
        if response.status_code != 200:
            raise CommandError(f"{response.status_code}: {response.text[:200]}")
        return response.json()

    def _queued(self, client, version, document, timeout) -> dict:
        response = client.post(submit_path(version), json={"pdfName": document})
        if response.status_code != 202:
            raise CommandError(f"{response.status_code}: {response.text[:200]}")
        url, deadline = response.json()["status_url"], time.monotonic() + timeout
        while (left_s := deadline - time.monotonic()) > WAIT_SLACK_S:
            # long-poll: the API answers when the job ends, or after `wait` s (at most 60)
            wait_s = min(left_s - WAIT_SLACK_S, WAIT_MAX_S)
            body = client.get(url, params={"wait": f"{wait_s:.3f}"}).json()
            if body["status"] in ("DONE", "FAILED", "CANCELLED"):
                return body
        raise CommandError(f"not finished within {timeout:g}s")

    def _batches(self, api, document, timeout, *, versions, requests, clients, **_):
        """Wall time of `requests` calls from `clients` concurrent clients, per version."""
        walls = {}
        with httpx.Client(
            base_url=api,
            timeout=timeout,
            headers=api_auth_headers(),
            limits=httpx.Limits(max_connections=clients),
        ) as client:
            for version in versions.split(","):
                started = time.monotonic()
                url = submit_path(version)
                with ThreadPoolExecutor(clients) as pool:
                    codes = list(
                        pool.map(
                            lambda _, url=url: (
                                client.post(url, json={"pdfName": document}).status_code
                            ),
                            range(requests),
                        )
                    )
                walls[version] = time.monotonic() - started
                ok = codes.count(200)
                self.stdout.write(
                    f"{version}: {requests} requests, {clients} clients: "
                    f"{walls[version]:.2f} s, {ok}/{requests} answered 200"
                )
        first, *rest = walls
        for version in rest:
            self.stdout.write(
                f"{first} / {version} wall-time ratio: {walls[first] / walls[version]:.2f}"
            )
