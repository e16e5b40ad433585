"""The decision rule on known inputs: separated samples differ, overlapping ones do not,
too few repeats cannot decide, defects fail, and the first screen says so."""

import json

from apps.bench.decide.answer import first_screen, stability
from apps.bench.decide.decision import BEST, FAIL, OK, SAME, UNDECIDED, WORSE, decide
from apps.bench.decide.rule import Samples, differs, mad, relative_spread
from apps.bench.measure.aggregate import summarize
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


def ocr(target, workers, thr, repeat):
    return result(target, "ocr", workers, thr, repeat=repeat)


def run():
    """Three interleaved OCR rounds at W = 2 (db, redis alike; kafka 25 % lower), W = 1
    once each (the noise floor), and three family repeats."""
    rows = [ocr("v3", 1, 0.60, 1), ocr("v4", 1, 0.57, 1), ocr("api:kafka", 1, 0.58, 1)]
    for rep in (1, 2, 3):
        rows += [
            ocr("v3", 2, 1.10 + rep / 100, rep),
            ocr("v4", 2, 1.12 - rep / 100, rep),
            ocr("api:kafka", 2, 0.82 + rep / 100, rep),
        ]
    for rep, (a, b, c) in enumerate([(10, 11, 12), (12, 9, 14), (11, 13, 13)], start=1):
        rows.append(family("v3", "pickup", repeat=rep, pickup_p99_ms=a, burst_throughput=300.0))
        rows.append(family("v4", "pickup", repeat=rep, pickup_p99_ms=b, burst_throughput=900.0))
        rows.append(family("api:kafka", "pickup", repeat=rep, pickup_p99_ms=c,
                           burst_throughput=860.0 + 20 * rep))  # fmt: skip
        rows.append(family("v3", "mixed", repeat=rep, hol_penalty_s=0.05 + rep / 100))
        rows.append(family("v4", "mixed", repeat=rep, hol_penalty_s=0.06 + rep / 100))
        rows.append(family("api:kafka", "mixed", repeat=rep, hol_penalty_s=1.5 + rep / 10))
    return rows


def test_separated_samples_differ_overlapping_do_not_few_cannot_decide():
    a, b = Samples((10.0, 11.0, 12.0)), Samples((30.0, 31.0, 29.0))
    assert differs(a, b, effect=1.0) is True
    assert mad(a.values) == 1.0
    overlapping = Samples((9.0, 13.0, 11.5))
    assert differs(a, overlapping, effect=0.5) is False
    assert differs(a, Samples((30.0,)), effect=1.0) is None  # one run: no verdict
    # a large tail in two repeats of three: one lucky repeat does not make it "the same"
    tail = Samples((17.0, 834.0, 1019.0))
    assert differs(tail, Samples((14.0, 15.0, 16.0)), effect=5.0) is True
    # a wide spread swallows a moderate gap
    assert differs(Samples((78.7, 84.9, 96.7)), Samples((73.6, 74.5, 75.2)), effect=8.0) is False
    # separated but smaller than the minimum effect: no difference
    assert differs(Samples((1.00, 1.01, 1.02)), Samples((1.05, 1.06, 1.07)), effect=0.1) is False


def test_verdicts_one_criterion_per_property_and_noise_floor():
    results = run()
    decision = decide(summarize(results), results, CONTEXT)
    verdicts, values = decision["verdicts"], decision["values"]
    assert set(values) == {"db", "redis", "kafka"}
    assert values["db"]["ocr"].runs == 3  # W = 2 rounds only, W = 1 is the noise floor
    assert verdicts["ocr"]["kafka"] == WORSE and SAME in (
        verdicts["ocr"]["db"],
        verdicts["ocr"]["redis"],
    )
    assert round(decision["noise"]["rel"], 3) == round((0.60 - 0.57) / 0.58, 3)
    assert verdicts["pickup_p99"] == {"db": BEST, "redis": SAME, "kafka": SAME}
    assert verdicts["hol"] == {"db": BEST, "redis": SAME, "kafka": WORSE}
    assert verdicts["capacity"]["db"] == WORSE
    assert verdicts["defects"] == {}  # no chaos.json
    assert decision["pick"]["names"] == ["redis"]


def test_first_screen_names_the_pick_and_what_does_not_differ():
    results = run()
    text = "\n".join(first_screen(decide(summarize(results), results, CONTEXT)))
    assert "**Pick: redis**" in text
    assert "not kafka: worse on OCR jobs/s (W=cores)" in text and "head-of-line" in text
    assert "**What does not differ** between the queues: pickup p99 at idle" in text
    assert "Noise floor" in text and "5%" in text


def test_a_backend_not_measured_on_a_decided_criterion_is_no_pick():
    results = run() + [ocr("api:dramatiq", 2, 1.11 + r / 100, r) for r in (1, 2, 3)]
    decision = decide(summarize(results), results, CONTEXT)
    assert "dramatiq" not in decision["pick"]["names"]  # no pickup, mixed: absence is no win
    assert decision["pick"]["unmeasured"]["dramatiq"] == ["capacity", "pickup_p99", "hol"]
    text = "\n".join(first_screen(decision))
    assert "not dramatiq: not measured on noop capacity, pickup p99 at idle, head-of" in text


def test_too_few_repeats_cannot_decide():
    rows = [ocr("v3", 2, 1.0, 1), ocr("v4", 2, 0.5, 1)]
    decision = decide(summarize(rows), rows, CONTEXT)
    assert decision["verdicts"]["ocr"] == {"db": BEST, "redis": UNDECIDED}
    assert decision["pick"]["names"] == []
    assert "The data cannot decide" in "\n".join(first_screen(decision))


def test_chaos_defects_must_be_zero_and_executed_twice_counts():
    results = run()
    chaos = [
        {"backend": "db", "fault": "kill", "lost": 0, "stored_twice": 0, "stuck": 0,
         "executed_twice": 1, "recovery_s": 2},
        {"backend": "kafka", "fault": "kill", "lost": 1, "stored_twice": 2, "stuck": 0,
         "executed_twice": 5, "recovery_s": 9},
    ]  # fmt: skip
    decision = decide(summarize(results), results, {**CONTEXT, "chaos": chaos})
    assert decision["verdicts"]["defects"] == {"db": OK, "kafka": FAIL}
    assert decision["verdicts"]["executed_twice"] == {"db": BEST, "kafka": UNDECIDED}  # 1 run
    assert decision["values"]["kafka"]["defects"].median == 3
    assert "must be 0" in "\n".join(first_screen(decision))
    errored = [*chaos, {"backend": "redis", "fault": "kill", "skipped": "error: timeout"}]
    decision = decide(summarize(results), results, {**CONTEXT, "chaos": errored})
    assert "redis" not in decision["verdicts"]["defects"]  # a fault that did not run
    lines = faults_table(chaos)
    assert any(line.startswith("| kafka | kill | 1 |") for line in lines)
    assert "failed: exit 2" in "\n".join(faults_table([], "exit 2"))


def test_stability_lists_changed_verdicts_and_a_changed_pick():
    results = run()
    now = decide(summarize(results), results, CONTEXT)
    before = json.loads(json.dumps(now, default=lambda o: o.__dict__))
    before["verdicts"]["hol"]["redis"] = WORSE
    before["pick"]["names"] = ["db"]
    text = "\n".join(stability(before, now, "2026-12-02"))
    assert "| head-of-line penalty | redis | worse | no difference |" in text
    assert "the data cannot decide" in text
    assert "pick is the same" in "\n".join(stability(now, now, "x"))


def test_report_starts_with_the_answer(tmp_path):
    results = run()
    summaries = summarize(results)
    context = {**CONTEXT, "command": "manage.py runbench"}
    write_all(tmp_path, results, summaries, evaluate(summaries, bare_s=2.0, cores=2), context)
    report = (tmp_path / "report.md").read_text()
    headings = [line for line in report.splitlines() if line.startswith("## ")]
    assert headings[0] == "## The answer" and headings[1].startswith("## Successes and errors")
    assert "**Pick: redis**" in report and "| kafka |" in report and " =" in report
    assert "Faults: not measured in this run" in report
    page = (tmp_path / "index.html").read_text()
    assert "<h2>The answer</h2>" in page and '<img src="data:image/png;base64,' in page
    # an earlier run (its cells.json) gives the stability section
    context["previous_run"] = str(tmp_path)
    later = tmp_path / "later"
    write_all(later, results, summaries, evaluate(summaries, bare_s=2.0, cores=2), context)
    text = (later / "report.md").read_text()
    assert "## Stability against an earlier run" in text
    first_screen_text = text.split("### The decision table")[0]  # the verdict under the pick
    assert "**Stability:** The pick is the same as in " in first_screen_text


def test_relative_spread():
    assert relative_spread([1.0]) is None
    assert abs(relative_spread([0.9, 1.0, 1.1]) - 0.2) < 1e-9
