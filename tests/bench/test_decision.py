"""The decision table on known inputs: best, "no difference" within spread, worse."""

import pytest

from apps.bench.measure.aggregate import summarize
from apps.bench.report.decision import BEST, SAME, WORSE, Value, decide, same
from apps.bench.report.export import write_all
from apps.bench.report.family_sections import faults_table
from apps.bench.report.targets import evaluate
from tests.bench.fakes import result

CONTEXT = {"machine": {"nproc": 2}, "bare_ocr": {"median_s": 2.0}}


def family(target, fam, workers=2, repeat=1, **metrics):
    r = result(target, fam, workers, None, repeat=repeat)
    r["spec"].update(family=fam, users=0, jobs_per_user=0)
    r["metrics"] = metrics
    return r


def run():
    """db and redis within each other's spread on pickup; kafka clearly slower on HOL."""
    rows = [
        result("v3", "ocr", 1, 0.48),
        result("v3", "ocr", 2, 0.95),
        result("v4", "ocr", 2, 0.93),  # within 5 % of db: no difference (single run)
        result("api:kafka", "ocr", 2, 0.70),  # 26 % lower: different
    ]
    for rep, (a, b, c) in enumerate([(10, 11, 12), (12, 9, 14), (11, 13, 13)], start=1):
        rows.append(family("v3", "pickup", repeat=rep, pickup_p99_ms=a, burst_throughput=300.0))
        rows.append(family("v4", "pickup", repeat=rep, pickup_p99_ms=b, burst_throughput=900.0))
        rows.append(
            family(
                "api:kafka",
                "pickup",
                repeat=rep,
                pickup_p99_ms=c,
                burst_throughput=860.0 + 20 * rep,
            )
        )
        rows.append(family("v3", "mixed", repeat=rep, hol_penalty_s=0.05 + rep / 100))
        rows.append(family("v4", "mixed", repeat=rep, hol_penalty_s=0.06 + rep / 100))
        rows.append(family("api:kafka", "mixed", repeat=rep, hol_penalty_s=1.5 + rep / 10))
    rows[-4]["metrics"]["cpu_ms_per_job"] = {"workers": 2.0, "broker": 1.0}  # kafka pickup
    return rows


def test_values_and_verdicts_from_known_inputs():
    results = run()
    decision = decide(summarize(results), results, CONTEXT)
    values, verdicts = decision["values"], decision["verdicts"]
    assert set(values) == {"db", "redis", "kafka"}
    assert values["db"]["ocr_w2"].median == pytest.approx(0.95)
    assert values["db"]["ceiling"].median == pytest.approx(0.95 / (2 / 2.0) * 100)
    assert verdicts["ocr_w2"] == {"db": BEST, "redis": SAME, "kafka": WORSE}
    assert values["db"]["pickup_p99"] == Value(11, 10, 12, 3)
    # medians 11, 11, 13; ranges 10-12, 9-13, 12-14 all overlap the best's: no difference
    assert verdicts["pickup_p99"] == {"db": BEST, "redis": SAME, "kafka": SAME}
    assert verdicts["hol"] == {"db": BEST, "redis": SAME, "kafka": WORSE}
    assert verdicts["capacity"]["db"] == WORSE and verdicts["capacity"]["kafka"] == SAME
    assert values["kafka"]["cpu"].median == 3.0 and values["db"]["cpu"] is None
    assert verdicts["faults_bad"] == {}  # no chaos.json


def test_advice_names_no_difference_and_what_to_pick():
    results = run()
    advice = decide(summarize(results), results, CONTEXT)["advice"]
    hol = next(line for line in advice if line.startswith("**head-of-line"))
    assert "best db" in hol and "no difference (within the run's spread): redis" in hol
    assert "different: kafka" in hol
    pick = next(line for line in advice if line.startswith("What to pick"))
    assert "**redis**" in pick and "kafka (differs on" in pick
    assert any("Not measured" in line and "faults" in line for line in advice)


def test_same_uses_ranges_for_repeats_and_noise_for_single_runs():
    assert same(Value(10, 8, 12, 3), Value(13, 11.5, 14, 3))
    assert not same(Value(10, 8, 11, 3), Value(13, 11.5, 14, 3))
    assert same(Value(1.0, 1.0, 1.0), Value(0.96, 0.96, 0.96))
    assert not same(Value(1.0, 1.0, 1.0), Value(0.9, 0.9, 0.9))


def test_report_starts_with_the_reference_then_the_answer(tmp_path):
    results = run()
    summaries = summarize(results)
    context = {**CONTEXT, "command": "manage.py runbench"}
    write_all(tmp_path, results, summaries, evaluate(summaries, bare_s=2.0, cores=2), context)
    report = (tmp_path / "report.md").read_text()
    headings = [line for line in report.splitlines() if line.startswith("## ")]
    assert headings[0].startswith("## Successes and errors") and headings[1] == "## The answer"
    assert "| kafka |" in report and "not measured" in report and " =" in report
    assert "Faults: not measured in this run" in report
    page = (tmp_path / "index.html").read_text()
    assert page.count("<table>") >= 5 and "<h2>The answer</h2>" in page
    assert '<img src="data:image/png;base64,' in page and "<strong>" in page


def test_chaos_rows_feed_the_faults_column_and_table():
    results = run()
    chaos = [
        {"backend": "db", "fault": "kill -9", "lost": 0, "doubled": 0, "stuck": 0, "recovery_s": 2},
        {
            "backend": "kafka",
            "fault": "kill -9",
            "lost": 1,
            "doubled": 2,
            "stuck": 0,
            "recovery_s": 9,
        },
    ]
    decision = decide(summarize(results), results, {**CONTEXT, "chaos": chaos})
    assert decision["verdicts"]["faults_bad"] == {"db": BEST, "kafka": WORSE}
    assert decision["values"]["kafka"]["faults_bad"].median == 3
    lines = faults_table(chaos)
    assert "| kafka | kill -9 | 1 | 2 | 0 | 9 |" in lines
    assert "failed: exit 2" in "\n".join(faults_table([], "exit 2"))
