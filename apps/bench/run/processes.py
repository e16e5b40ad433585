"""The processes of a cell: API, OCR servers, workers and locust, plus broker probes."""

from __future__ import annotations

import csv
from pathlib import Path

from apps.bench.measure.metrics import SubmitStats
from apps.bench.plan.cells import CellSpec
from apps.jobs.versions import API_VERSION
from apps.ops import launch

LOCUSTFILE = launch.ROOT / "locust" / "locustfile.py"
LOCUST_BIN = launch.BIN / "locust"
LOCUST_STOP_S = 10.0
SUBMIT_NAME, JOB_NAME = "submit", "job end-to-end"  # as in locust/ocr_scenario.py
MISSING_ID = "00000000-0000-0000-0000-000000000000"
ENGINE_MODE_VAR = "OCR_ENGINE_MODE"  # read by the OCR engine of servers and workers


def cell_env(spec: CellSpec, base: dict[str, str], ocr_ports: list[int]) -> dict[str, str]:
    """The cell's environment: its OCR engine mode; V0-V2 get their OCR servers (V2 spreads
    over all W)."""
    env = {**base, "PYTHONUNBUFFERED": "1", ENGINE_MODE_VAR: spec.engine}
    if spec.kind == "sync":
        env["OCR_SERVER_URLS"] = ",".join(f"http://127.0.0.1:{p}" for p in ocr_ports)
        env["OCR_V2_SERVERS"] = str(spec.workers)
    return env


def start_stack(
    group: launch.ServerGroup, spec: CellSpec, *, ocr_ports: list[int], api_workers: int
) -> str:
    """OCR servers (sync) or runworker (queue), then the API; returns the API's base URL."""
    group.start_ocr_servers(ocr_ports)
    if spec.kind == "queue":
        group.start("worker", launch.worker_command(spec.backend, spec.workers))
    port = launch.free_port()
    host = f"http://127.0.0.1:{port}"
    group.start(
        "api",
        launch.api_command(port=port, workers=api_workers),
        ready_url=f"{host}/api/jobs/{MISSING_ID}",
    )
    return host


def locust_command(
    spec: CellSpec,
    *,
    host: str,
    csv_prefix: Path,
    tag: str,
    pdf_name: str,
    poll_interval_s: float,
    wait_mode: str = "wait",
) -> list[str]:
    """Headless locust for one cell: U users at once, J jobs each, then it quits. Job users
    wait on the API's long-poll (`wait_mode` "wait") or poll every `poll_interval_s`."""
    run_time_s = int(spec.jobs_per_user * (spec.deadline_s + 5) + 60)
    version = spec.version
    cmd = [
        str(LOCUST_BIN),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        str(spec.users),
        "-r",
        str(spec.users),
        "--host",
        host,
        "--csv",
        str(csv_prefix),
        "--only-summary",
        "--run-time",
        f"{run_time_s}s",
        "--exit-code-on-error",
        "0",
        "--ocr-version",
        version,
        "--workload",
        spec.workload,
        "--pdf-name",
        pdf_name,
        "--deadline",
        f"{spec.deadline_s:g}",
        "--jobs-per-user",
        str(spec.jobs_per_user),
        "--poll-interval",
        f"{poll_interval_s:g}",
        "--wait-mode",
        wait_mode,
        "--run-tag",
        tag,
    ]
    if version == API_VERSION:
        cmd += ["--backend", spec.backend]
    return cmd


def locust_timeout_s(spec: CellSpec) -> float:
    """How long to let locust run before killing it (its own --run-time plus slack)."""
    return spec.jobs_per_user * (spec.deadline_s + 5) + 120


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "N/A") else None
    except ValueError:
        return None


def read_locust_stats(path: Path) -> tuple[SubmitStats | None, dict[str, float | None]]:
    """The submit line as SubmitStats, and locust's own job end-to-end numbers."""
    if not path.is_file():
        return None, {}
    with path.open(newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    submit, job = rows.get(SUBMIT_NAME), rows.get(JOB_NAME)
    stats = (
        None
        if submit is None
        else SubmitStats(
            requests=int(submit["Request Count"]),
            failures=int(submit["Failure Count"]),
            p50_ms=_number(submit.get("50%")),
            p99_ms=_number(submit.get("99%")),
        )
    )
    extra = (
        {}
        if job is None
        else {
            "locust_jobs": _number(job["Request Count"]),
            "locust_job_failures": _number(job["Failure Count"]),
            "locust_job_p50_ms": _number(job.get("50%")),
            "locust_job_p99_ms": _number(job.get("99%")),
        }
    )
    return stats, extra
