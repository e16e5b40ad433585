"""Submit capacity: cells of workload `submit` drive POST of a version (or /api/jobs) hard.

A submit cell starts the same stack as a noop queue cell (workers running), then runs the
light load generator (apps.bench.run.loadgen) instead of locust: U users on keep-alive
connections POST noop jobs, first in a closed loop (J each, back to back: throughput,
p50/p99/p99.9, errors by status code), then an open-loop rate ladder (each user at 1, 2,
4, ... POSTs per second) that stops at the first step whose p99 exceeds 50 ms, that had an
error or that fell short of its rate. The last step that held is the sustained rate.
The jobs it made are drained by the workers and measured from their rows like any cell.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from apps.bench.measure.metrics import SubmitStats
from apps.bench.plan.cells import QUEUE_VERSIONS, CellSpec, MatrixParams
from apps.jobs.versions import API_VERSION, submit_path
from apps.ops import launch

SUBMIT = "submit"
JOB_WORKLOAD = "noop"
RESULT_FILE = "submit.json"
FAMILY_USERS = (64, 256)
FAMILY_WORKERS = (2,)
FAMILY_REQUESTS = 10
QUICK_USERS, QUICK_REQUESTS, QUICK_RATES, QUICK_STEP_S = 64, 5, (1.0, 2.0), 2.0
P99_LIMIT_MS = 50.0
LOADGEN_SLACK_S = 120.0
LOADGEN_STOP_S = 5.0


@dataclass(frozen=True)
class SubmitOptions:
    """The rate ladder of every submit cell of a run."""

    rates: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    step_s: float = 3.0
    p99_ms: float = P99_LIMIT_MS


@dataclass(frozen=True)
class SubmitRun:
    """What run_submit needs besides the cell: where, how, and the environment."""

    host: str
    tag: str
    cell_dir: Path
    env: dict = field(default_factory=dict)
    pdf_name: str = "sample.pdf"
    options: SubmitOptions = SubmitOptions()


def job_workload(workload: str) -> str:
    """The workload of the jobs a cell submits (a submit cell submits noop jobs)."""
    return JOB_WORKLOAD if workload == SUBMIT else workload


def family_params(
    versions: list[str],
    backends: list[str],
    *,
    users=FAMILY_USERS,
    workers=FAMILY_WORKERS,
    repeat: int = 1,
) -> MatrixParams:
    """The submit family: V3-V6 and the aliases x 64 and 256 users, workers running."""
    return MatrixParams(
        versions=[v for v in versions if v in QUEUE_VERSIONS],
        backends=list(backends),
        workers=list(workers),
        users=list(users),
        noop_users=list(users),
        jobs_per_user=FAMILY_REQUESTS,
        workloads=[SUBMIT],
        repeat=repeat,
    )


def quick_params(version: str = "v3") -> MatrixParams:
    """One small submit cell for --quick: V3 (db) at 64 users, 5 POSTs each, W = 2."""
    return MatrixParams(
        versions=[version],
        backends=[],
        workers=[2],
        users=[QUICK_USERS],
        noop_users=[QUICK_USERS],
        jobs_per_user=QUICK_REQUESTS,
        workloads=[SUBMIT],
    )


def loadgen_command(spec: CellSpec, run: SubmitRun) -> list[str]:
    """The load generator's command line for one cell."""
    body = {"pdfName": run.pdf_name, "tag": run.tag, "workload": JOB_WORKLOAD}
    if spec.version == API_VERSION:
        body["backend"] = spec.backend
    path = submit_path(spec.version)
    opts = run.options
    return [
        sys.executable,
        "-m",
        "apps.bench.run.loadgen",
        "--host",
        run.host,
        "--path",
        path,
        "--body",
        json.dumps(body),
        "--users",
        str(spec.users),
        "--requests",
        str(spec.jobs_per_user),
        "--rates",
        ",".join(f"{r:g}" for r in opts.rates),
        "--step-s",
        f"{opts.step_s:g}",
        "--p99-ms",
        f"{opts.p99_ms:g}",
        "--out",
        str(run.cell_dir / RESULT_FILE),
    ]


def timeout_s(spec: CellSpec, options: SubmitOptions) -> float:
    """How long the load generator may run: its ladder plus generous slack."""
    return len(options.rates) * options.step_s + spec.jobs_per_user + LOADGEN_SLACK_S


def run_submit(spec: CellSpec, run: SubmitRun) -> str:
    """Run the load generator as a child process; '' when it finished, else a note."""
    proc = launch.start(
        loadgen_command(spec, run), log=run.cell_dir / "loadgen.log", env=run.env or None
    )
    try:
        proc.wait(timeout_s(spec, run.options))
    except subprocess.TimeoutExpired:
        return "submit load generator did not finish in time and was stopped"
    finally:
        with launch.signals_ignored():
            launch.stop_group(proc, timeout_s=LOADGEN_STOP_S)
    return "" if proc.returncode == 0 else f"submit load generator exited with {proc.returncode}"


def read_result(cell_dir: Path) -> dict | None:
    """The load generator's result (see apps.bench.run.loadgen.run), None when missing."""
    path = cell_dir / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def submit_stats(result: dict | None) -> SubmitStats | None:
    """Every POST of the cell (closed loop + ladder) as SubmitStats; p50/p99 of the closed loop."""
    if not result:
        return None
    phases = [result.get("closed") or {}] + list(result.get("ladder") or [])
    closed = result.get("closed") or {}
    return SubmitStats(
        requests=sum(p.get("requests", 0) for p in phases),
        failures=sum(p.get("errors", 0) for p in phases),
        p50_ms=closed.get("p50_ms"),
        p99_ms=closed.get("p99_ms"),
    )


def capacity_metrics(result: dict | None) -> dict:
    """The cell's submit-capacity metrics (flat numbers, plus status counts as a dict)."""
    if not result:
        return {}
    closed = result.get("closed") or {}
    ladder = result.get("ladder") or []
    return {
        "submit_rps": closed.get("rps"),
        "submit_p999_ms": closed.get("p999_ms"),
        "submit_requests": closed.get("requests"),
        "submit_http_errors": closed.get("errors"),
        "submit_5xx": closed.get("errors_5xx"),
        "submit_no_answer": closed.get("no_answer"),
        "submit_status_counts": closed.get("status_counts") or {},
        "submit_sustained_rps": result.get("sustained_rps"),
        "ladder_steps": len(ladder),
        "ladder_errors": sum(s.get("errors", 0) for s in ladder),
        "ladder_5xx": sum(s.get("errors_5xx", 0) for s in ladder),
        "ladder_last_p99_ms": ladder[-1].get("p99_ms") if ladder else None,
        "ladder_first_rate": ladder[0].get("rate_per_user") if ladder else None,
        "ladder_first_p99_ms": ladder[0].get("p99_ms") if ladder else None,
    }
