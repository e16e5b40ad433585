"""What the locust users do, as plain data and functions (no locust import, so tests can
load this module without gevent's monkey patching).

The versions come from apps/jobs/versions.py: this module puts the project root on the
path (locust itself adds only locust/ and the working directory).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from apps.jobs import versions  # noqa: E402 (needs ROOT on the path)

SYNC_VERSIONS = versions.sync_versions()
QUEUE_VERSIONS = versions.queue_versions()
API_VERSION = versions.API_VERSION
VERSIONS = versions.names()  # v0..v6, api
FINISHED = ("DONE", "FAILED", "CANCELLED")

SUBMIT_NAME = "submit"  # the bench reads this line of the stats CSV for submit latency
POLL_NAME = "poll"
WAIT_NAME = "wait"  # GET ...?wait=S: the API answers when the job ends (long-poll)
WAIT_MODES = ("wait", "poll")
WAIT_MAX_S = 60.0  # the API's limit on ?wait=
JOB_TYPE, JOB_NAME = "JOB", "job end-to-end"

DEFAULT_VERSION = "v3"
DEFAULT_BACKEND = versions.backend_for(DEFAULT_VERSION)  # for --ocr-version api
DEFAULTS = {
    "ocr_version": DEFAULT_VERSION,
    "backend": DEFAULT_BACKEND,
    "workload": "ocr",
    "pdf_name": "sample.pdf",
    "deadline": 60.0,
    "jobs_per_user": 16,
    "poll_interval": 0.2,
    "poll_initial": 0.01,
    "wait_mode": "wait",
    "run_tag": "",
}


class JobTimeout(Exception):
    """The job did not finish within the deadline."""


class JobFailed(Exception):
    """The job ended FAILED (or a sync call did not answer 200)."""


@dataclass(frozen=True)
class Scenario:
    """One user's job: where to send it, what to run, how long to wait."""

    version: str = "v3"
    backend: str = DEFAULT_BACKEND
    workload: str = "ocr"
    pdf_name: str = "sample.pdf"
    deadline_s: float = 60.0
    jobs_per_user: int = 16
    poll_interval_s: float = 1.0
    poll_initial_s: float = 0.01
    wait_mode: str = "wait"
    run_tag: str = ""

    @property
    def is_sync(self) -> bool:
        return self.version in SYNC_VERSIONS

    @property
    def submit_path(self) -> str:
        return versions.submit_path(self.version)

    def status_path(self, job_id: str) -> str:
        """Where to poll a submitted job."""
        return versions.status_path(self.version, job_id)

    def submit_body(self) -> dict:
        """JSON body of the submit (sync call or job) request."""
        body = {"pdfName": self.pdf_name, "tag": self.run_tag}
        if not self.is_sync:
            body["workload"] = self.workload
        if self.version == API_VERSION:
            body["backend"] = self.backend
        return body

    def check(self) -> None:
        """Raise ValueError on options no run can use."""
        if self.version not in VERSIONS:
            raise ValueError(f"--ocr-version must be one of {', '.join(VERSIONS)}")
        if self.wait_mode not in WAIT_MODES:
            raise ValueError(f"--wait-mode must be one of {', '.join(WAIT_MODES)}")
        if self.deadline_s <= 0 or self.jobs_per_user < 1 or self.poll_interval_s <= 0:
            raise ValueError("--deadline, --jobs-per-user and --poll-interval must be > 0")


def user_class_name(version: str) -> str:
    """The locust user class of a version: V0SyncUser .. V2SyncUser, V3JobUser ..
    V6JobUser, ApiJobUser (name one on the command line to run only it)."""
    return f"{version.capitalize()}{'Sync' if version in SYNC_VERSIONS else 'Job'}User"


def scenario_from_options(options: object, version: str | None = None) -> Scenario:
    """A Scenario from locust's parsed options; `version` overrides --ocr-version."""

    def get(name: str):
        value = getattr(options, name, None)
        return DEFAULTS[name] if value in (None, "") else value

    scenario = Scenario(
        version=version or str(get("ocr_version")),
        backend=str(get("backend")),
        workload=str(get("workload")),
        pdf_name=str(get("pdf_name")),
        deadline_s=float(get("deadline")),
        jobs_per_user=int(get("jobs_per_user")),
        poll_interval_s=float(get("poll_interval")),
        poll_initial_s=float(get("poll_initial")),
        wait_mode=str(get("wait_mode")),
        run_tag=str(get("run_tag")),
    )
    scenario.check()
    return scenario


def poll_delays(initial_s: float, maximum_s: float) -> Iterator[float]:
    """Waits between polls: start small (fast jobs are seen fast), double up to the maximum."""
    delay = min(initial_s, maximum_s) if initial_s > 0 else maximum_s
    while True:
        yield delay
        delay = min(delay * 2, maximum_s)


def wait_param_s(remaining_s: float) -> float | None:
    """The `?wait=` value for a job with `remaining_s` left: capped at the API's limit,
    None when the deadline has passed."""
    if remaining_s <= 0:
        return None
    return round(min(max(remaining_s, 0.001), WAIT_MAX_S), 3)


def job_outcome(status: str | None, elapsed_s: float, deadline_s: float) -> Exception | None:
    """None for DONE within the deadline; JobFailed for FAILED; JobTimeout otherwise."""
    if status == "FAILED":
        return JobFailed("job ended FAILED")
    if status == "DONE" and elapsed_s <= deadline_s:
        return None
    return JobTimeout(f"job not DONE within {deadline_s:g}s (last status {status})")
