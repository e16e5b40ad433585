"""Workload specs: what a job does once claimed. `ocr` is the real work; the others
isolate the queue. The API validates a spec here; the worker runs it (tasks/workloads.py)."""

import os

WORKLOAD_OVERRIDE_ENV = "OCRLAB_WORKLOAD_OVERRIDE"  # set by `runworker --workload`
MAX_SECONDS = 3600.0
PLAIN = {"ocr", "noop", "fail"}
TIMED = {"sleep", "cpu", "hang", "alloc"}


def parse_workload(spec: str) -> tuple[str, float]:
    """Validate `ocr`, `noop`, `fail`, `sleep:S`, `cpu:S`, `hang:S` (S seconds inside C
    code, where no Python signal handler runs) or `alloc:MB` (allocate MB megabytes: an
    allocation bomb for the memory limit); raise ValueError otherwise."""
    name, _, arg = spec.strip().partition(":")
    if name in PLAIN and not arg:
        return name, 0.0
    if name in TIMED:
        try:
            seconds = float(arg)
        except ValueError:
            raise ValueError(f"workload {name!r} needs seconds, e.g. {name}:0.5") from None
        if not 0 <= seconds <= MAX_SECONDS:
            raise ValueError(f"workload seconds must be between 0 and {MAX_SECONDS:g}")
        return name, seconds
    raise ValueError(
        f"unknown workload {spec!r}; use ocr, noop, fail, sleep:S, cpu:S, hang:S or alloc:MB"
    )


def workload_seconds(spec: str, default: float = 0.0) -> float:
    """How long a `sleep:S`, `cpu:S` or `hang:S` job runs; `default` for any other spec
    (the bench's estimates and plots; the API validates with parse_workload)."""
    try:
        name, seconds = parse_workload(spec)
    except ValueError:
        return default
    return seconds if name in TIMED - {"alloc"} else default


def effective_workload(workload: str) -> str:
    """The job's workload, unless this worker runs every job as another (benchmarks)."""
    return os.environ.get(WORKLOAD_OVERRIDE_ENV) or workload
