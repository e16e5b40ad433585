"""Load scenarios for the OCR job-queue lab: one user class per version (made from
apps/jobs/versions.py: V0SyncUser .. V2SyncUser, V3JobUser .. V6JobUser, ApiJobUser).

    locust -f locust/locustfile.py                        # web UI on :8089, API on :8000
    locust -f locust/locustfile.py --headless -u 16 -r 16 --ocr-version v4 --jobs-per-user 16

Sync users (V0-V2) time the call. Job users (V3-V6, and `api` with --backend ALIAS) submit,
then wait until DONE/FAILED or the deadline: by default with the API's long-poll
(`GET ...?wait=S`, S = the time left, at most 60; --wait-mode wait), or by polling with
growing delays (--wait-mode poll, up to --poll-interval) for comparison; they report one
"job end-to-end" sample per job beside the submit request (a failure when FAILED or past
the deadline). Each user does --jobs-per-user jobs, then idles; when every user is done
the run stops (headless: quits).

The class is chosen by --ocr-version unless classes are named on the command line
(`locust -f locust/locustfile.py V5JobUser`) or picked with --class-picker.
"""

from __future__ import annotations

import logging
import time

import gevent
from locust.runners import STATE_RUNNING, STATE_SPAWNING
from ocr_scenario import (  # puts the project root on the path, for ocrproject below
    DEFAULTS,
    FINISHED,
    JOB_NAME,
    JOB_TYPE,
    POLL_NAME,
    QUEUE_VERSIONS,
    ROOT,
    SUBMIT_NAME,
    SYNC_VERSIONS,
    VERSIONS,
    WAIT_MODES,
    WAIT_NAME,
    job_outcome,
    poll_delays,
    scenario_from_options,
    user_class_name,
    wait_param_s,
)

from locust import FastHttpUser, constant, events, task
from ocrproject.env import api_auth_headers, load_dotenv

load_dotenv(ROOT / ".env")  # OCRLAB_API_TOKEN, unless the environment already sets it
DEFAULT_HOST = "http://127.0.0.1:8000"
IDLE_S = 1.0
NETWORK_SLACK_S = 10.0  # a ?wait= answer may come a little after the wait it asked for
FINAL_STATS_WAIT_S = 2.5
log = logging.getLogger("ocrlab")
_done_users: set[int] = set()


OPTIONS = [  # (flag, type, help); defaults from ocr_scenario.DEFAULTS
    (
        "--ocr-version",
        str,
        f"sync {','.join(SYNC_VERSIONS)}; queue {','.join(QUEUE_VERSIONS)}; "
        "api: POST /api/jobs with --backend",
    ),
    ("--backend", str, "backend alias for --ocr-version api (db, redis, dramatiq, ...)"),
    ("--workload", str, "ocr, noop, sleep:S or cpu:S (queue versions)"),
    ("--pdf-name", str, "corpus document: sample.pdf, multipage.pdf, degraded.pdf"),
    ("--deadline", float, "seconds a job may take end to end before it counts as timed out"),
    ("--jobs-per-user", int, "jobs each user runs before it stops"),
    ("--wait-mode", str, "wait: long-poll GET ?wait=S (default); poll: repeated GETs"),
    ("--poll-interval", float, "longest wait between status polls (s), --wait-mode poll"),
    ("--poll-initial", float, "first wait before polling (s); doubles up to --poll-interval"),
    ("--run-tag", str, "label stored on every job (OcrJob.run_tag)"),
]


@events.init_command_line_parser.add_listener
def add_arguments(parser) -> None:
    """The lab's options, on the command line and in the web UI's custom parameters."""
    for flag, kind, text in OPTIONS:
        dest = flag[2:].replace("-", "_")
        choices = {"ocr_version": list(VERSIONS), "wait_mode": list(WAIT_MODES)}.get(dest)
        parser.add_argument(
            flag,
            type=kind,
            default=DEFAULTS[dest],
            choices=choices,
            include_in_web_ui=True,
            help=text,
        )


class _OcrUser(FastHttpUser):
    abstract = True
    version = "v3"
    host = DEFAULT_HOST
    wait_time = constant(0)
    default_headers = api_auth_headers()  # Authorization: Token $OCRLAB_API_TOKEN

    def __init__(self, environment) -> None:
        self.scenario = scenario_from_options(environment.parsed_options, self.version)
        self.network_timeout = self.scenario.deadline_s + NETWORK_SLACK_S
        self.connection_timeout = self.scenario.deadline_s
        super().__init__(environment)
        self.jobs_done = 0

    @task
    def one_job(self) -> None:
        """Run the next job, or idle once this user has done its share."""
        if self.jobs_done >= self.scenario.jobs_per_user:
            _done_users.add(id(self))
            gevent.sleep(IDLE_S)
            return
        self.jobs_done += 1
        self.run_job()

    def run_job(self) -> None:
        raise NotImplementedError

    def report_job(self, elapsed_s: float, exception: Exception | None) -> None:
        """One "job end-to-end" sample, a failure when `exception` is set."""
        self.environment.events.request.fire(
            request_type=JOB_TYPE,
            name=JOB_NAME,
            response_time=elapsed_s * 1000,
            response_length=0,
            exception=exception,
            context={},
        )


class _SyncUser(_OcrUser):
    abstract = True

    def run_job(self) -> None:
        """POST the sync call; 200 within the deadline is a success."""
        s, started = self.scenario, time.perf_counter()
        with self.client.post(
            s.submit_path, json=s.submit_body(), name=SUBMIT_NAME, catch_response=True
        ) as resp:
            ok = resp.status_code == 200
            if not ok:
                resp.failure(f"HTTP {resp.status_code}: {_short(resp.text)}")
        elapsed = time.perf_counter() - started
        status = "DONE" if ok else (None if elapsed >= s.deadline_s else "FAILED")
        self.report_job(elapsed, job_outcome(status, elapsed, s.deadline_s))


class _JobUser(_OcrUser):
    abstract = True

    def run_job(self) -> None:
        """Submit, poll until finished or the deadline, report the job's end."""
        started = time.perf_counter()
        job_id = self.submit()
        if job_id is None:
            return  # the failed submit is already in the stats
        status = self.wait_for_job(job_id, started)
        elapsed = time.perf_counter() - started
        self.report_job(elapsed, job_outcome(status, elapsed, self.scenario.deadline_s))

    def submit(self) -> str | None:
        """POST the job; its id, or None (and a failure) unless the API answered 202."""
        s = self.scenario
        with self.client.post(
            s.submit_path, json=s.submit_body(), name=SUBMIT_NAME, catch_response=True
        ) as resp:
            if resp.status_code != 202:
                resp.failure(f"HTTP {resp.status_code}: {_short(resp.text)}")
                return None
            job_id = _json(resp).get("id")
            if not job_id:
                resp.failure("202 without a job id")
            return job_id

    def wait_for_job(self, job_id: str, started: float) -> str | None:
        """The last status seen (DONE/FAILED, or not finished at the deadline)."""
        if self.scenario.wait_mode == "poll":
            return self.wait_polling(job_id, started)
        deadline, status = started + self.scenario.deadline_s, None
        while status not in FINISHED:
            wait_s = wait_param_s(deadline - time.perf_counter())
            if wait_s is None:
                break
            status = self.poll(job_id, wait_s=wait_s) or status
        return status

    def wait_polling(self, job_id: str, started: float) -> str | None:
        """Poll with growing waits (--wait-mode poll, for comparison)."""
        s, status = self.scenario, None
        deadline = started + s.deadline_s
        for delay in poll_delays(s.poll_initial_s, s.poll_interval_s):
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return status
            gevent.sleep(min(delay, remaining))
            status = self.poll(job_id) or status
            if status in FINISHED:
                return status
        return status

    def poll(self, job_id: str, wait_s: float | None = None) -> str | None:
        """One status GET (a long-poll one with `wait_s`); the status, None on an error."""
        path, name = self.scenario.status_path(job_id), POLL_NAME
        if wait_s is not None:
            path, name = f"{path}?wait={wait_s:g}", WAIT_NAME
        with self.client.get(path, name=name, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {_short(resp.text)}")
                return None
            return _json(resp).get("status")


def _json(resp) -> dict:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _short(text: str | None, limit: int = 160) -> str:
    return (text or "").replace("\n", " ")[:limit]


def _user_class(version: str) -> type:
    base = _SyncUser if version in SYNC_VERSIONS else _JobUser
    return type(user_class_name(version), (base,), {"version": version, "__module__": __name__})


# One class per version; locust finds user classes among the module's names.
USER_CLASSES = {version: _user_class(version) for version in VERSIONS}
globals().update({cls.__name__: cls for cls in USER_CLASSES.values()})


@events.test_start.add_listener
def on_test_start(environment, **_kwargs) -> None:
    """Run only --ocr-version's class (unless classes were named), watch for the end."""
    options = environment.parsed_options
    if options is not None and not getattr(options, "user_classes", None):
        environment.user_classes = [USER_CLASSES[options.ocr_version]]
    _done_users.clear()
    if environment.runner is not None:
        gevent.spawn(_stop_when_all_done, environment)


def _stop_when_all_done(environment, check_s: float = 0.5, start_wait_s: float = 60.0) -> None:
    runner, seen, waited = environment.runner, False, 0.0
    while seen or waited < start_wait_s:
        gevent.sleep(check_s)
        waited += check_s
        if runner.state not in (STATE_SPAWNING, STATE_RUNNING):
            if seen:
                return  # stopped by someone else
            continue
        seen = True
        target = runner.target_user_count or 0
        if runner.state == STATE_RUNNING and target and len(_done_users) >= target:
            log.info("all %d users finished their jobs; stopping", target)
            gevent.sleep(FINAL_STATS_WAIT_S)  # let the --csv writer (every 1 s) see the end
            if getattr(environment.parsed_options, "headless", False):
                runner.quit()
            else:
                runner.stop()
            return
