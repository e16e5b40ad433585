"""report.md's deadline sweep: per target and W, the share of N jobs done in time."""

from __future__ import annotations

from apps.bench.plan.deadline import DEADLINE_S, STOP_BELOW
from apps.bench.report.markdown import table


def sweep_table(summaries: list[dict]) -> list[str]:
    """Rows (target, W), columns N: the share of jobs done within the deadline."""
    ocr = [
        s for s in summaries if s["spec"]["workload"] == "ocr" and s["spec"]["jobs_per_user"] == 1
    ]
    sizes = sorted({s["spec"]["users"] for s in ocr})
    rows: dict[tuple, dict[int, str]] = {}
    for s in ocr:
        spec = s["spec"]
        ratio = s["metrics"].get("success_ratio") if s["status"] == "ok" else None
        text = (
            "stopped"
            if s["status"] == "skipped"
            else ("-" if ratio is None else f"{ratio * 100:.0f} %")
        )
        rows.setdefault((spec["target"], spec["workers"]), {})[spec["users"]] = text
    if not sizes:  # one N is a table too (a queue row at the N where the deadline bites)
        return []
    header = ["target", "W", *[f"N = {n}" for n in sizes]]
    body = [[t, w, *[cells.get(n, "") for n in sizes]] for (t, w), cells in sorted(rows.items())]
    intro = (
        f"N OCR jobs submitted at once, {DEADLINE_S:g} s deadline: the share done in time. A row "
        f"stops after the first N under {STOP_BELOW:.0%}. The seed's 25 / 37.5 / 50 % at N = 16 "
        "is reached here only at the N where the work exceeds what W workers do in 60 s."
    )
    return ["## The deadline sweep", "", intro, ""] + table(
        header, [[str(c) for c in r] for r in body], "lr" + "r" * len(sizes)
    )
