"""locust/: the scenario helpers in-process, the locustfile in locust's own process.

Importing locust monkey-patches the process with gevent, so the locustfile itself only
ever runs in a subprocess here: its options through locust's parser, and a short headless
run against a stub API that checks users stop after their jobs and the run quits.
"""

import csv
import importlib.util
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from apps.jobs import versions

ROOT = Path(__file__).resolve().parent.parent.parent
LOCUST_DIR = ROOT / "locust"
LOCUST = Path(sys.executable).parent / "locust"
STUB_TOKEN = "stub-token"


def load_scenario():
    spec = importlib.util.spec_from_file_location("ocr_scenario", LOCUST_DIR / "ocr_scenario.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("ocr_scenario", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


sc = load_scenario()


def test_paths_and_bodies_per_version():
    sync = sc.Scenario(version="v1", run_tag="t")
    assert sync.is_sync and sync.submit_path == "/v1/ocr/sync"
    assert sync.submit_body() == {"pdfName": "sample.pdf", "tag": "t"}
    v4 = sc.Scenario(version="v4", workload="noop")
    assert v4.submit_path == "/v4/ocr/jobs" and v4.status_path("x") == "/v4/ocr/jobs/x"
    assert v4.submit_body()["workload"] == "noop"
    api = sc.Scenario(version="api", backend="dramatiq")
    assert api.submit_path == "/api/jobs" and api.status_path("x") == "/api/jobs/x"
    assert api.submit_body()["backend"] == "dramatiq"


def test_scenario_from_options_uses_defaults_and_the_class_version():
    options = SimpleNamespace(ocr_version="v5", deadline=30.0, jobs_per_user=3, backend=None)
    s = sc.scenario_from_options(options)
    assert (s.version, s.deadline_s, s.jobs_per_user, s.backend) == ("v5", 30.0, 3, "db")
    assert sc.scenario_from_options(options, version="v0").version == "v0"
    with pytest.raises(ValueError):
        sc.scenario_from_options(SimpleNamespace(deadline=0.0))


def test_poll_delays_double_up_to_the_maximum():
    delays = sc.poll_delays(0.01, 0.2)
    assert [round(next(delays), 3) for _ in range(7)] == [0.01, 0.02, 0.04, 0.08, 0.16, 0.2, 0.2]


def test_wait_param_is_the_time_left_capped_at_the_api_limit():
    assert sc.wait_param_s(12.3456) == 12.346
    assert sc.wait_param_s(300) == sc.WAIT_MAX_S == 60
    assert sc.wait_param_s(0.0001) == 0.001
    assert sc.wait_param_s(0) is None and sc.wait_param_s(-1) is None


def test_wait_mode_defaults_to_the_long_poll_and_is_checked():
    assert sc.scenario_from_options(SimpleNamespace()).wait_mode == "wait"
    assert sc.scenario_from_options(SimpleNamespace(wait_mode="poll")).wait_mode == "poll"
    with pytest.raises(ValueError, match="--wait-mode"):
        sc.scenario_from_options(SimpleNamespace(wait_mode="sleep"))


def test_job_outcome():
    assert sc.job_outcome("DONE", 5, 60) is None
    assert isinstance(sc.job_outcome("DONE", 61, 60), sc.JobTimeout)
    assert isinstance(sc.job_outcome("RUNNING", 60, 60), sc.JobTimeout)
    assert isinstance(sc.job_outcome("FAILED", 1, 60), sc.JobFailed)


PARSE = """
import json, sys
sys.path.insert(0, "locust")
import locustfile  # registers the options listener
from locust.argument_parser import get_parser, ui_extra_args_dict
from ocr_scenario import scenario_from_options
args = ["-f", "locust/locustfile.py", "--ocr-version", "api", "--backend", "dramatiq",
        "--deadline", "30", "--jobs-per-user", "3", "--workload", "noop"]
opts = get_parser().parse_args(args)
ui = ui_extra_args_dict(args)
print(json.dumps({"scenario": scenario_from_options(opts).__dict__, "ui": sorted(ui),
                  "choices": ui["ocr_version"]["choices"]}))
"""


def locust_json(code: str) -> dict:
    """Run `code` in a fresh interpreter (locust patches the process) and read the JSON
    it prints last."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_options_parse_and_show_in_the_web_ui():
    data = locust_json(PARSE)
    assert data["scenario"]["version"] == "api" and data["scenario"]["backend"] == "dramatiq"
    assert data["scenario"]["deadline_s"] == 30.0 and data["scenario"]["jobs_per_user"] == 3
    assert {"ocr_version", "backend", "workload", "deadline", "jobs_per_user"} <= set(data["ui"])
    assert data["choices"] == ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "api"]


class StubApi(BaseHTTPRequestHandler):
    """POST /v3/ocr/jobs -> 202; GET -> DONE (or FAILED for odd ids); POST /v0/ocr/sync."""

    counter = iter(range(1_000_000))
    gets: list[tuple[str, str | None]] = []  # (path, Authorization header)

    def log_message(self, *args):
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Token {STUB_TOKEN}":
            return True
        self._send(401, {"detail": "Authentication credentials were not provided."})
        return False

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not self._authorized():
            return None
        if self.path == "/v0/ocr/sync":
            return self._send(200, {"text": "x"})
        return self._send(202, {"id": str(next(self.counter)), "status": "QUEUED"})

    def do_GET(self):
        StubApi.gets.append((self.path, self.headers.get("Authorization")))
        if not self._authorized():
            return
        job = int(self.path.split("?")[0].rsplit("/", 1)[1])
        self._send(200, {"id": job, "status": "FAILED" if job % 2 else "DONE"})


@pytest.fixture
def stub_api():
    StubApi.gets.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run_locust(host: str, tmp_path: Path, *extra: str) -> dict[str, dict]:
    cmd = [
        str(LOCUST),
        "-f",
        str(LOCUST_DIR / "locustfile.py"),
        "--headless",
        "-u",
        "2",
        "-r",
        "2",
        "--host",
        host,
        "--csv",
        str(tmp_path / "l"),
        "--only-summary",
        "--run-time",
        "60s",
        "--jobs-per-user",
        "3",
        "--poll-initial",
        "0.01",
        *extra,
    ]
    env = {**os.environ, "OCRLAB_API_TOKEN": STUB_TOKEN}  # the stub answers 401 without it
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=45)  # quits before 60 s
    with (tmp_path / "l_stats.csv").open() as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def test_job_users_stop_after_their_jobs_and_report_end_to_end(stub_api, tmp_path):
    stats = run_locust(stub_api, tmp_path, "--ocr-version", "v3")
    assert stats["submit"]["Request Count"] == "6" and stats["submit"]["Failure Count"] == "0"
    assert stats["job end-to-end"]["Request Count"] == "6"
    assert stats["job end-to-end"]["Failure Count"] == "3"  # the odd ids end FAILED


def test_job_users_long_poll_by_default_and_send_the_auth_headers(stub_api, tmp_path):
    stats = run_locust(stub_api, tmp_path, "--ocr-version", "v3")
    assert stats["wait"]["Request Count"] == "6" and "poll" not in stats
    assert all("?wait=" in path for path, _ in StubApi.gets), StubApi.gets
    assert {auth for _, auth in StubApi.gets} == {f"Token {STUB_TOKEN}"}


def test_poll_mode_polls_for_comparison(stub_api, tmp_path):
    stats = run_locust(stub_api, tmp_path, "--ocr-version", "v3", "--wait-mode", "poll")
    assert stats["poll"]["Request Count"] == "6" and "wait" not in stats
    assert not any("?wait=" in path for path, _ in StubApi.gets)
    assert stats["job end-to-end"]["Failure Count"] == "3"


def test_sync_users_time_the_call(stub_api, tmp_path):
    stats = run_locust(stub_api, tmp_path, "--ocr-version", "v0")
    assert stats["submit"]["Request Count"] == "6"
    assert stats["job end-to-end"]["Failure Count"] == "0"


def test_locust_scenario_uses_the_definition():
    sc = load_scenario()
    assert versions.names() == sc.VERSIONS
    for name in versions.names():
        scenario = sc.Scenario(version=name)
        assert scenario.submit_path == versions.submit_path(name)
        assert scenario.is_sync == (versions.get(name).kind == versions.SYNC)


LOAD_CLASSES = """
import json
from locust.util.load_locustfile import load_locustfile
user_classes, _ = load_locustfile("locust/locustfile.py")
print(json.dumps({name: cls.version for name, cls in user_classes.items()}))
"""


def test_locust_has_one_user_class_per_version():
    classes = locust_json(LOAD_CLASSES)
    assert sorted(classes.values()) == sorted(versions.names())
    assert classes["V5JobUser"] == "v5" and classes["V0SyncUser"] == "v0"
    assert classes["ApiJobUser"] == "api"
