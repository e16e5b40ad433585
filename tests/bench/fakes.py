"""Fake cell results for report and target tests (no processes, no database)."""

from apps.bench.plan.cells import CellSpec


def result(
    target="v3",
    workload="ocr",
    workers=1,
    thr=0.35,
    *,
    users=16,
    jobs=1,
    deadline=60.0,
    repeat=1,
    status="ok",
    note="",
    **metrics,
):
    kind = "sync" if target in ("v0", "v1", "v2") else "queue"
    version = target if not target.startswith("api:") else "api"
    backend = {"v3": "db", "v4": "redis"}.get(target, target.removeprefix("api:"))
    spec = CellSpec(
        target,
        kind,
        version,
        "http" if kind == "sync" else backend,
        workers,
        users,
        jobs,
        workload,
        deadline,
        repeat,
    )
    n = users * jobs
    base = {
        "submitted": n,
        "rows": n,
        "successes": n,
        "errors": 0,
        "timeouts": 0,
        "success_ratio": 1.0,
        "error_ratio": 0.0,
        "timeout_ratio": 0.0,
        "throughput": thr,
        "e2e_p50_ms": 3000.0,
        "e2e_p95_ms": 5000.0,
        "e2e_p99_ms": 6000.0,
        "pickup_p50_ms": 2.0,
        "pickup_p99_ms": 20.0,
        "service_p50_ms": 2800.0,
        "submit_p50_ms": 8.0,
        "submit_p99_ms": 40.0,
    }
    return {
        "spec": spec.as_dict(),
        "cell_id": spec.cell_id,
        "tag": f"t-{spec.cell_id}",
        "status": status,
        "note": note,
        "metrics": {} if status != "ok" else {**base, **metrics},
        "jobs": [],
    }


def matrix() -> list[dict]:
    """A small run: two queue backends and V2 with OCR, noop at 16 and 64 users, a skip."""
    return [
        result("v3", "ocr", 1, 0.36),
        result("v3", "ocr", 2, 0.70),
        result(
            "v3", "ocr", 4, 0.69, successes=200, timeouts=56, success_ratio=0.78, timeout_ratio=0.22
        ),
        result("v4", "ocr", 1, 0.35),
        result(
            "v4",
            "ocr",
            2,
            0.60,
            successes=250,
            errors=6,
            success_ratio=250 / 256,
            error_ratio=6 / 256,
        ),
        result("v2", "ocr", 1, 0.33),
        result("v2", "ocr", 2, 0.64),
        result("v3", "noop", 2, 320.0),
        result("v3", "noop", 2, 350.0, users=64, submit_p99_ms=90.0),
        result("v4", "noop", 1, 600.0, pickup_p50_ms=1.0, pickup_p99_ms=9.0),
        result("v4", "noop", 2, 900.0, pickup_p50_ms=1.5, pickup_p99_ms=12.0),
        result(
            "v6",
            "noop",
            1,
            None,
            status="skipped",
            note="broker of 'kafka' unreachable at 127.0.0.1:9092",
        ),
    ]
