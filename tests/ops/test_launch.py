"""apps.ops.launch: command lines, starting, readiness, stopping process groups."""

import os
import signal
import subprocess
import sys
import time

import pytest

from apps.ops import launch
from tests.conftest import wait_for

SLEEPER = "import time\nwhile True:\n    time.sleep(0.1)\n"
# the leader starts a child (same group, or a session of its own with argv[2] == "own"),
# which writes its pid to argv[1] and ignores SIGTERM; the leader ignores it with argv[3]
FAMILY = """
import signal, subprocess, sys, time
child = (
    "import os, signal, sys, time\\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
    "open(sys.argv[1], 'w').write(str(os.getpid()))\\n"
    "while True:\\n    time.sleep(0.1)\\n"
)
subprocess.Popen([sys.executable, "-c", child, sys.argv[1]], start_new_session=sys.argv[2] == "own")
if sys.argv[3] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(0.1)
"""


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def child_pid(path) -> int:
    return wait_for(lambda: path.exists() and path.read_text() and int(path.read_text()), 10)


def test_the_module_imports_only_the_standard_library():
    code = (
        "import sys; import apps.ops.launch; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'django', 'ocrproject', 'tasks', 'psutil', 'apps'} "
        "and m not in {'apps', 'apps.ops', 'apps.ops.launch'}))"
    )
    done = subprocess.run(python(code), cwd=launch.ROOT, capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_start_logs_and_readiness_by_http_and_port(tmp_path):
    port = launch.free_port()
    log = tmp_path / "logs" / "http.log"
    cmd = python("import http.server as h, sys; h.test(h.SimpleHTTPRequestHandler, "
                 "port=int(sys.argv[1]), bind='127.0.0.1')", str(port))  # fmt: skip
    proc = launch.start(cmd, log=log)
    try:
        launch.wait_http(f"http://127.0.0.1:{port}/nothing-here", 20, proc=proc)  # a 404 is up
        launch.wait_port("127.0.0.1", port, 5, proc=proc)
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)  # a session of its own
    finally:
        assert launch.stop_group(proc, timeout_s=10)
    launch.wait_port("127.0.0.1", port, 5, up=False)
    assert "Serving HTTP" in log.read_text()


def test_readiness_fails_at_once_when_the_process_exits(tmp_path):
    proc = launch.start(python("import sys; sys.exit(3)"), log=tmp_path / "x.log")
    started = time.monotonic()
    with pytest.raises(launch.NotReady, match="exited with 3"):
        launch.wait_port("127.0.0.1", launch.free_port(), 30, proc=proc)
    assert time.monotonic() - started < 10


def test_stop_group_kills_grandchildren_in_the_group(tmp_path):
    pid_file = tmp_path / "child"
    proc = launch.start(python(FAMILY, str(pid_file), "group", "exit"), log=tmp_path / "f.log")
    child = child_pid(pid_file)
    assert launch.stop_group(proc, timeout_s=10)  # the leader stops on SIGTERM ...
    assert not launch.alive(child)  # ... and the child that ignores it is killed after


def test_stop_group_kills_a_descendant_with_a_group_of_its_own(tmp_path):
    pid_file = tmp_path / "child"
    proc = launch.start(python(FAMILY, str(pid_file), "own", "ignore"), log=tmp_path / "f.log")
    child = child_pid(pid_file)
    assert os.getpgid(child) != proc.pid
    assert not launch.stop_group(proc, timeout_s=0.5)  # not in time: killed, tree and all
    assert proc.returncode == -signal.SIGKILL
    wait_for(lambda: not launch.alive(child), 5, message="the child gone")


def test_leader_only_sends_sigterm_to_the_leader_alone(tmp_path):
    seen = tmp_path / "seen"  # the child writes "ready", then "TERM" if it gets SIGTERM
    code = (
        "import subprocess, sys, time\n"
        "note = 'import signal, sys, time\\n"
        'signal.signal(signal.SIGTERM, lambda *_: open(sys.argv[1], "w").write("TERM"))\\n'
        'open(sys.argv[1], "w").write("ready")\\n'
        "while True:\\n    time.sleep(0.1)\\n'\n"
        "subprocess.Popen([sys.executable, '-c', note, sys.argv[1]])\n"
        "time.sleep(60)\n"
    )
    proc = launch.start(python(code, str(seen)), log=tmp_path / "l.log")
    wait_for(lambda: seen.exists() and seen.read_text() == "ready", 10, message="the child")
    assert launch.stop_group(proc, timeout_s=5, leader_only=True)
    assert seen.read_text() == "ready"  # the group got SIGKILL only, after the leader stopped


def test_command_lines():
    assert launch.worker_command("redis", 2, "noop")[1:] == [
        "manage.py", "runworker", "--backend", "redis", "--workers", "2", "--workload", "noop"
    ]  # fmt: skip
    api = launch.api_command(port=8010, host="0.0.0.0")
    assert api[0].endswith("uvicorn") and "--workers" in api and "0.0.0.0" in api
    ocr = launch.ocr_server_command(port=8111)
    assert ocr[0].endswith("gunicorn") and "127.0.0.1:8111" in ocr
