"""Workload specs (apps/jobs/workloads.py): what the API accepts and how long a timed one runs."""

import pytest

from apps.jobs.workloads import parse_workload, workload_seconds


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [("ocr", ("ocr", 0.0)), ("noop", ("noop", 0.0)), ("sleep:2.5", ("sleep", 2.5)),
     ("cpu:1", ("cpu", 1.0)), (" hang:3 ", ("hang", 3.0))],
)  # fmt: skip
def test_valid_specs_parse(spec, parsed):
    assert parse_workload(spec) == parsed


@pytest.mark.parametrize("spec", ["", "ocr:1", "sleep", "sleep:x", "sleep:-1", "sleep:9999", "rm"])
def test_invalid_specs_are_refused_with_a_reason(spec):
    with pytest.raises(ValueError, match="workload"):
        parse_workload(spec)


def test_workload_seconds_of_timed_specs_else_the_default():
    assert workload_seconds("sleep:2") == 2.0 and workload_seconds("cpu:0.5", 9.0) == 0.5
    assert workload_seconds("noop", 0.01) == 0.01 and workload_seconds("ocr") == 0.0
    assert workload_seconds("alloc:500", 0.1) == 0.1  # megabytes, not seconds
    assert workload_seconds("sleep:bad", 0.2) == 0.2
