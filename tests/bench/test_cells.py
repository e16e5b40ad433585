"""The bench matrix and the progress line."""

import pytest

from apps.bench.plan.cells import (
    MatrixParams,
    build_matrix,
    default_extra_backends,
    parse_int_list,
    parse_name_list,
    quick_params,
    target_spec,
)
from apps.bench.run.session import format_duration, progress_line


def test_targets_map_versions_and_aliases():
    assert target_spec("v1") == ("v1", "sync", "v1", "http")
    assert target_spec("v5") == ("v5", "queue", "v5", "rabbit")
    assert target_spec("dramatiq") == ("api:dramatiq", "queue", "api", "dramatiq")


def test_extra_backends_are_the_aliases_no_version_covers():
    aliases = ["db", "redis", "rabbit", "celery-redis", "dramatiq", "kafka"]
    assert default_extra_backends(aliases) == ["celery-redis", "dramatiq"]


def test_matrix_product_skips_noop_for_sync_versions_and_repeats_outermost():
    params = MatrixParams(
        versions=["v0", "v3"],
        backends=["dramatiq"],
        workers=[1, 2],
        users=[16],
        noop_users=[16, 64],
        workloads=["ocr", "noop"],
        repeat=2,
    )
    cells = build_matrix(params)
    # per repeat: v0 ocr 2 + v3 (ocr 2 + noop 4) + dramatiq (ocr 2 + noop 4) = 14
    assert len(cells) == 28
    assert {c.workload for c in cells if c.target == "v0"} == {"ocr"}
    assert [c.repeat for c in cells[:14]] == [1] * 14
    noop_users = {c.users for c in cells if c.workload == "noop"}
    assert noop_users == {16, 64}
    assert cells[0].cell_id == "v0-ocr-w1-u16x16-r1"
    assert len({c.cell_id for c in cells}) == len(cells)


def test_quick_matrix_is_small():
    params = quick_params(["v3", "v4", "dramatiq"])
    cells = [c for p in params for c in build_matrix(p)]
    noop = [c for c in cells if c.workload == "noop"]
    ocr = [c for c in cells if c.workload == "ocr"]
    assert {c.target for c in noop} == {"v3", "v4", "api:dramatiq"}
    assert {c.target for c in ocr} == {"v2", "v3"}
    assert sum(c.jobs for c in ocr) <= 30
    assert max(c.workers for c in cells) == 2


def test_parse_lists():
    assert parse_int_list("1, 2,4") == [1, 2, 4]
    assert parse_name_list("v3, dramatiq") == ["v3", "dramatiq"]
    assert parse_name_list("none") == []
    with pytest.raises(ValueError):
        parse_int_list("0,1")


def test_progress_line_estimates_from_the_mean_cell_time():
    assert progress_line(1, 4, 0, "a") == "[1/4] a  elapsed 0s  ETA ~?"
    assert progress_line(3, 4, 120, "b") == "[3/4] b  elapsed 2m00s  ETA ~2m00s"
    assert format_duration(3725) == "1h02m"
