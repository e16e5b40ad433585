"""apps.ops.stack: the pid-file stack of make up/down/status and the command line."""

import signal
import socket
import subprocess
import sys
import time

import pytest

from apps.ops import launch, stack

SLEEPER = "import time\nwhile True:\n    time.sleep(0.1)\n"


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def test_the_module_imports_only_the_standard_library():
    code = (  # (and ocrproject.env, the stdlib-only .env reader it shares with the settings,
        # and the pure apps/jobs/versions.py: the stack's default workers)
        "import sys; import apps.ops.stack; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'ocrproject', "
        "'tasks', 'psutil'} and m not in {'ocrproject', 'ocrproject.env'} "
        "or m.startswith('apps.') and m not in "
        "{'apps.ops', 'apps.ops.launch', 'apps.ops.stack', 'apps.jobs', 'apps.jobs.versions'}))"
    )
    done = subprocess.run(python(code), cwd=launch.ROOT, capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_pid_file_stack_start_is_idempotent_and_stops(tmp_path):
    pids = stack.Stack(run_dir=tmp_path / "run", log_dir=tmp_path / "log")
    first = pids.start("worker-x", python(SLEEPER))
    assert first is not None and pids.pid("worker-x") == first.pid
    assert pids.start("worker-x", python(SLEEPER)) is None  # running: left alone
    assert pids.pid("worker-x") == first.pid
    assert pids.status() == ["running  worker-x"]
    (tmp_path / "run" / "api.pid").write_text("999999999\n")
    assert pids.down(["worker-*"]) == ["stopped  worker-x"]
    assert not launch.alive(first.pid) and first.wait(5) is not None
    assert pids.status() == ["stopped  api"]  # stop-workers leaves the rest
    assert pids.down() == [] and pids.status() == []


def test_stack_refuses_a_port_another_process_holds(tmp_path):
    pids = stack.Stack(run_dir=tmp_path / "run", log_dir=tmp_path / "log")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(stack.StackError, match=f":{port} \\(api\\)"):
            pids.up(api_port=port, ocr_ports=[], workers=[])
    assert pids.status() == []  # nothing started


def test_stack_reports_a_worker_that_exits_with_its_log(tmp_path):
    pids = stack.Stack(run_dir=tmp_path / "run", log_dir=tmp_path / "log")
    proc = pids.start("worker-x", python("print('no broker'); raise SystemExit(2)"))
    assert proc is not None and proc.wait(10) == 2
    with pytest.raises(stack.StackError, match="worker-x: .*exited with 2(.|\n)*no broker"):
        pids.check_up("worker-x", proc, None)


def test_stack_settings_come_from_the_environment_then_dotenv(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nOCR_SERVER_URLS='http://127.0.0.1:9001'\nAPI_PORT=9000\n")
    monkeypatch.setenv("API_PORT", "8010")
    monkeypatch.delenv("OCR_SERVER_URLS", raising=False)
    monkeypatch.delenv("STACK_WORKERS", raising=False)
    assert stack.stack_setting("API_PORT", dotenv) == "8010"
    assert stack.stack_setting("OCR_SERVER_URLS", dotenv) == "http://127.0.0.1:9001"
    assert stack.stack_setting("STACK_WORKERS", dotenv) == "db redis rabbit kafka"


def test_cli_status_of_an_empty_stack_and_help(tmp_path):
    pids = stack.Stack(run_dir=tmp_path / "run", log_dir=tmp_path / "log")
    assert stack.stack_main("status", pids) == 0
    cmd = [sys.executable, "-m", "apps.ops.stack", "--help"]
    done = subprocess.run(cmd, cwd=launch.ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "start|stop|stop-workers|status" in done.stdout
    assert {"api", "ocr-server", "ocr-servers", "start", "stop", "stop-workers", "status"} <= set(
        done.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    )


@pytest.mark.slow
def test_ocr_servers_cli_runs_until_sigterm_and_stops_them_at_once(tmp_path):
    port = launch.free_port()
    cmd = [sys.executable, "-m", "apps.ops.stack", "ocr-servers", "--port", str(port)]
    proc = launch.start([*cmd, "--count", "1"], log=tmp_path / "cli.log")
    try:
        launch.wait_http(launch.ocr_ready_url(port), 60, proc=proc)
        servers = launch.descendants(proc.pid)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert time.monotonic() - started < 10  # the servers took SIGTERM (no SIGKILL at 15 s)
    finally:
        launch.stop_group(proc, timeout_s=5)
    assert not [pid for pid in servers if launch.alive(pid)]
    assert "stopping OCR servers" in (tmp_path / "cli.log").read_text()
