"""Acceptance: with the broker stopped, submits still answer 202 at once, and the jobs
run soon after the broker is back. A PRIVATE Redis (never the shared one) is frozen with
SIGSTOP: it accepts connections but answers nothing, the worst case for a publisher.

The goal is 20 concurrent submits within 200 ms each. The shared test host is often far
busier than that allows even with the broker up, so the burst is compared, in the same
run, with the same burst while the broker answers (and with the broker's timeouts)."""

import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from apps.jobs.models import JobStatus, OcrJob
from apps.ops import launch
from tests.conftest import wait_for

SUBMITS = 20
ANSWER_WITHIN_S = 0.2
BROKER_TIMEOUT_S = 2.0  # the shortest connect timeout of a publisher (Redis, Celery)


@pytest.fixture
def private_redis(tmp_path):
    """A throw-away redis-server on a free port (no persistence); yields (proc, url)."""
    port = launch.free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = launch.start([*cmd, "--appendonly", "no"], log=tmp_path / "redis.log")
    client = redis.Redis(port=port, socket_connect_timeout=1)
    wait_for(lambda: _pings(client), 20, message="private redis")
    yield proc, f"redis://127.0.0.1:{port}/0"
    proc.send_signal(signal.SIGCONT)
    launch.stop_group(proc, timeout_s=10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.mark.django_db(transaction=True)
def test_submits_answer_at_once_while_the_broker_is_stopped(
    private_redis, subprocess_env, auth_headers, start_worker, tmp_path, settings
):
    proc, url = private_redis
    env = {**subprocess_env, "REDIS_URL": url}
    env.pop("RELAY_QUEUED_STALE_S", None)  # the default: derived from the lease
    port = launch.free_port()
    base = f"http://127.0.0.1:{port}"
    with launch.ServerGroup(tmp_path / "api", env=env) as group:
        group.start("api", launch.api_command(port=port), ready_url=f"{base}/api/jobs")
        worker = start_worker("redis", workers=2, env={"REDIS_URL": url})
        with httpx.Client(base_url=base, headers=auth_headers, timeout=30) as client:
            warm = [submit(client)[1] for _ in range(4)]  # both API workers, warm
            wait_for(lambda: done(warm), 60, message=worker.output)

            baseline = burst(client)  # the same burst with the broker up: this host's noise
            wait_for(lambda: done([i for _, i in baseline]), 60, message=worker.output)
            proc.send_signal(signal.SIGSTOP)  # the broker stops answering
            answers = burst(client)
            started = time.monotonic()
            unrelated = client.get("/api/jobs")
            unrelated_s = time.monotonic() - started
        proc.send_signal(signal.SIGCONT)  # the broker is back
        back = time.monotonic()
        ids = [job_id for _, job_id in answers]
        wait_for(lambda: done(ids), 60, message=worker.output)
        recovered_s = time.monotonic() - back
    seconds = sorted(s for s, _ in answers)
    up = sorted(s for s, _ in baseline)
    print(
        f"\n{SUBMITS} concurrent submits, broker up: median {statistics.median(up):.3f}s"
        f" max {up[-1]:.3f}s; broker stopped: median {statistics.median(seconds):.3f}s"
        f" max {seconds[-1]:.3f}s; unrelated GET {unrelated_s:.3f}s;"
        f" all DONE {recovered_s:.1f}s after the broker was back"
        f" (lease {settings.JOB_LEASE_S:g}s)"
    )
    assert unrelated.status_code == 200
    # Within 200 ms on an idle host; on a loaded one no slower than the broker-up burst
    # (2x for noise), and far below any broker timeout (a publish in the request took >=2 s).
    assert seconds[-1] < max(ANSWER_WITHIN_S, 2 * up[-1]), (seconds, up)
    assert seconds[-1] < BROKER_TIMEOUT_S, seconds
    assert recovered_s < 2 * settings.JOB_LEASE_S + 10  # + worker pickup on a busy host


def burst(client: httpx.Client) -> list[tuple[float, str]]:
    """SUBMITS concurrent submits: (seconds, job id) of each."""
    with ThreadPoolExecutor(SUBMITS) as pool:
        return list(pool.map(lambda _: submit(client), range(SUBMITS)))


def submit(client: httpx.Client) -> tuple[float, str]:
    started = time.monotonic()
    response = client.post(
        "/api/jobs", json={"pdfName": "sample.pdf", "backend": "redis", "workload": "noop"}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.text
    return elapsed, response.json()["id"]


def done(ids: list[str]) -> bool:
    return OcrJob.objects.filter(id__in=ids, status=JobStatus.DONE).count() == len(ids)
