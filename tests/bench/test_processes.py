"""Pure parts of apps.bench.run.processes: commands, environments, locust's CSV, broker URLs."""

from apps.bench.plan.cells import CellSpec
from apps.bench.run.processes import (
    cell_env,
    locust_command,
    read_locust_stats,
)
from apps.ops.launch import tcp_reachable
from tasks.backends.services import Kafka, RabbitMQ, Redis, Service

STATS = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,\
80%,90%,95%,98%,99%,99.9%,99.99%,100%
JOB,job end-to-end,6,1,20,21.0,17,24,0,88.1,14.6,20,22,24,24,24,24,24,24,24,24,24
GET,poll,12,0,4,3.5,2,5,120,176.2,0.0,4,4,5,5,6,6,6,6,6,6,6
POST,submit,7,1,5,5.4,3,9,300,88.1,0.0,5,5,7,7,9,9,9,9.5,9,9,9
,Aggregated,25,2,6,10.0,2,24,120,264.3,14.6,6,9,18,19,24,24,24,24,24,24,24
"""


def spec(**kw):
    base = dict(
        target="api:dramatiq",
        kind="queue",
        version="api",
        backend="dramatiq",
        workers=2,
        users=4,
        jobs_per_user=8,
        workload="noop",
        deadline_s=60.0,
    )
    return CellSpec(**{**base, **kw})


def test_read_locust_stats(tmp_path):
    path = tmp_path / "locust_stats.csv"
    path.write_text(STATS)
    submit, extra = read_locust_stats(path)
    assert (submit.requests, submit.failures, submit.p50_ms, submit.p99_ms) == (7, 1, 5.0, 9.5)
    assert extra["locust_job_failures"] == 1 and extra["locust_job_p99_ms"] == 24
    assert read_locust_stats(tmp_path / "missing.csv") == (None, {})


def test_locust_command_for_an_alias(tmp_path):
    cmd = locust_command(
        spec(),
        host="http://h:1",
        csv_prefix=tmp_path / "locust",
        tag="t1",
        pdf_name="sample.pdf",
        poll_interval_s=0.2,
    )
    joined = " ".join(cmd)
    assert f"--csv {tmp_path / 'locust'}" in joined and "--headless" in cmd
    for pair in (
        "-u 4",
        "-r 4",
        "--host http://h:1",
        "--ocr-version api",
        "--backend dramatiq",
        "--workload noop",
        "--jobs-per-user 8",
        "--deadline 60",
        "--run-tag t1",
        "--wait-mode wait",
    ):
        assert pair in joined


def test_sync_cells_get_their_ocr_servers_in_the_environment():
    env = cell_env(
        spec(target="v2", kind="sync", version="v2", backend="http", workers=3),
        {"DATABASE_URL": "postgres://x/test_db"},
        [8201, 8202, 8203],
    )
    assert env["OCR_SERVER_URLS"] == ",".join(f"http://127.0.0.1:{p}" for p in (8201, 8202, 8203))
    assert env["OCR_V2_SERVERS"] == "3" and env["DATABASE_URL"] == "postgres://x/test_db"
    assert "OCR_SERVER_URLS" not in cell_env(spec(), {}, [])


def test_service_address_of_each_url_style():
    assert Redis("redis://127.0.0.1:6379/0").address == ("127.0.0.1", 6379)
    assert RabbitMQ("amqp://guest:guest@127.0.0.1:5672//").address == ("127.0.0.1", 5672)
    assert RabbitMQ("amqp://guest:guest@rabbit//").address == ("rabbit", 5672)
    assert Kafka("127.0.0.1:9092,127.0.0.1:9093").address == ("127.0.0.1", 9092)
    assert Kafka("broker").address == ("broker", 9092)
    assert Service("").address is None


def test_tcp_reachable_on_a_dead_port():
    assert tcp_reachable("127.0.0.1", 1, timeout_s=0.5) is False
