"""CPU attribution on known inputs: fake process tables -> components, shares, report rows."""

import subprocess
import sys

import pytest

from apps.bench.measure import cpu
from apps.bench.measure.aggregate import summarize
from apps.bench.report.cpu_sections import cost_table, cpu_table, plot_cpu
from apps.bench.report.export import flat_metrics
from tests.bench.fakes import result

BENCH = 100
# pid: (ppid, name)
TABLE = {
    1: (0, "init"),
    BENCH: (1, "python"),
    200: (BENCH, "runworker"),  # a root: workers
    201: (200, "python"),
    202: (201, "python"),  # grandchild of the worker root
    300: (BENCH, "uvicorn"),  # a root: api
    301: (300, "python"),
    400: (BENCH, "gunicorn"),  # a root: ocr server
    500: (BENCH, "locust"),  # not a root: another child tree of the bench -> loadgen
    501: (500, "locust"),
    600: (1, "postgres"),
    601: (600, "postgres"),
    700: (1, "redis-server"),
    710: (1, "beam.smp"),
    711: (710, "sh"),  # rabbit's disk monitor: under beam.smp -> broker
    720: (1, "tansu"),
    800: (1, "python"),  # someone else's process
}
ROOTS = {200: "workers", 300: "api", 400: "ocr_servers"}
EXPECTED = {
    BENCH: "bench",
    200: "workers",
    201: "workers",
    202: "workers",
    300: "api",
    301: "api",
    400: "ocr_servers",
    500: "loadgen",
    501: "loadgen",
    600: "postgres",
    601: "postgres",
    700: "broker",
    710: "broker",
    711: "broker",
    720: "broker",
    800: None,
    1: None,
}


def _table(cpu_s=0.0):
    return {pid: cpu.Proc(pid, ppid, name, cpu_s) for pid, (ppid, name) in TABLE.items()}


@pytest.mark.parametrize("pid", sorted(EXPECTED))
def test_classify_walks_up_to_the_nearest_known_ancestor(pid):
    assert cpu.classify(pid, _table(), roots=ROOTS, bench_pid=BENCH) == EXPECTED[pid]


def test_classify_survives_a_missing_parent_and_a_cycle():
    table = {5: cpu.Proc(5, 6, "python", 0.0), 7: cpu.Proc(7, 7, "python", 0.0)}
    assert cpu.classify(5, table, roots={}, bench_pid=BENCH) is None
    assert cpu.classify(7, table, roots={}, bench_pid=BENCH) is None


def test_split_counts_deltas_and_processes_that_started_or_exited_in_the_window():
    base = {(200, 0): 10.0, (300, 0): 5.0, (600, 0): 100.0}
    last = {(200, 0): 12.5, (300, 0): 5.5, (600, 0): 101.0, (201, 9): 3.0, (500, 9): 0.4}
    comps = {
        (200, 0): "workers",
        (201, 9): "workers",  # started in the window (base 0), maybe exited since
        (300, 0): "api",
        (600, 0): "postgres",
        (500, 9): "loadgen",
    }
    named = cpu.split(base, last, comps)
    assert named == pytest.approx(
        {
            "workers": 5.5,
            "api": 0.5,
            "ocr_servers": 0.0,
            "postgres": 1.0,
            "broker": 0.0,
            "loadgen": 0.4,
            "bench": 0.0,
        }
    )
    full = cpu.with_other(named, machine_busy_s=10.0)
    assert full["other"] == pytest.approx(2.6) and list(full) == list(cpu.COMPONENTS)
    assert cpu.with_other(named, machine_busy_s=1.0)["other"] == 0.0  # never negative


def test_cpu_metrics_shares_and_per_job():
    cpu_s = dict.fromkeys(cpu.COMPONENTS, 0.0) | {"workers": 6.0, "loadgen": 0.6, "bench": 0.2}
    m = cpu.cpu_metrics(cpu_s=cpu_s, jobs=200, wall_s=10.0, cores=2)
    assert m["instrument_share"] == pytest.approx(0.8 / 20)
    assert m["machine_busy_share"] == pytest.approx(6.8 / 20)
    assert m["cpu_ms_per_job"]["workers"] == pytest.approx(30.0)
    assert m["cpu_s"]["loadgen"] == pytest.approx(0.6)
    assert cpu.cpu_metrics(cpu_s=cpu_s, jobs=0, wall_s=0.0, cores=2)["instrument_share"] is None


def test_command_component_and_group_roots():
    procs = [
        subprocess.Popen([sys.executable, "-c", "pass", "runworker"]),
        subprocess.Popen([sys.executable, "-c", "pass"]),
    ]
    for proc in procs:
        proc.wait()
    assert cpu.group_roots(procs) == {procs[0].pid: "workers"}
    assert cpu.command_component(["/venv/bin/uvicorn", "ocrproject.asgi:application"]) == "api"
    assert cpu.command_component(["/venv/bin/gunicorn", "x"]) == "ocr_servers"


def test_window_on_the_real_machine_attributes_this_process_to_bench():
    window = cpu.CpuWindow(roots={}, interval_s=0.05).start()
    sum(i * i for i in range(300_000))  # some CPU in the bench process
    window.stop()
    m = window.metrics(jobs=10)
    assert set(m["cpu_s"]) == set(cpu.COMPONENTS)
    assert m["cpu_s"]["bench"] > 0 and m["cpu_sampler_s"] > 0
    assert 0 < m["instrument_share"] <= 1 and m["machine_busy_share"] > 0


def test_a_child_that_starts_and_exits_in_the_window_counts_as_loadgen():
    burn = "import time\nend = time.process_time() + 0.2\nwhile time.process_time() < end: pass"
    window = cpu.CpuWindow(roots={}, interval_s=0.05).start()
    child = subprocess.Popen([sys.executable, "-c", burn + "\ntime.sleep(0.2)"])
    child.wait()
    window.stop()
    assert window.metrics(jobs=1)["cpu_s"]["loadgen"] >= 0.15  # its last sample before exit


def test_a_child_sampled_before_it_burns_counts_whole_as_loadgen():
    """A short load generator: seen once while starting, then it burns and is reaped by
    the bench before the next sample. Its CPU is loadgen's, not the bench's."""
    burn = "import sys, time\nsys.stdin.readline()\nend = time.process_time() + 0.3\n"
    burn += "while time.process_time() < end: pass"
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, text=True)
    window = cpu.CpuWindow(roots={}, interval_s=30.0).start()  # the first sample sees it
    window._sample()
    child.communicate("go\n")
    window.stop()
    spent = window.cpu_s()
    assert spent["loadgen"] >= 0.25 and spent["bench"] < 0.25


def test_parse_stat_handles_names_with_spaces_and_parentheses():
    line = "4242 (tricky (name) x) S 17 4242 4242 0 -1 0 0 0 0 0 250 50 30 20 20 0 1 0 999 0 0"
    proc = cpu.parse_stat(line)
    assert (proc.pid, proc.ppid, proc.name, proc.started) == (4242, 17, "tricky (name) x", 999.0)
    assert proc.cpu_s == pytest.approx(350 / cpu.CLK_TCK)  # its own and its reaped children's


def _cpu_result(target, workload, workers, cpu_ms):
    cpu_s = {c: cpu_ms.get(c, 0.0) / 10 for c in cpu.COMPONENTS}  # 100 jobs
    metrics = cpu.cpu_metrics(cpu_s=cpu_s, jobs=100, wall_s=10.0, cores=2)
    return result(target, workload, workers, **metrics)


def test_report_tables_medians_and_plot(tmp_path):
    runs = [
        _cpu_result("v3", "noop", 1, {"workers": 2.0, "postgres": 1.0, "loadgen": 5.0}),
        _cpu_result("v3", "noop", 1, {"workers": 4.0, "postgres": 3.0, "loadgen": 5.0}),
        _cpu_result("v4", "noop", 1, {"workers": 1.0, "broker": 0.5, "api": 9.0}),
    ]
    summaries = summarize(runs)
    v3 = summaries[0]["metrics"]
    assert v3["cpu_ms_per_job"]["workers"] == pytest.approx(3.0)  # median over the repeats
    cost = "\n".join(cost_table(summaries))
    assert "| db | v3 | 1 | 0.00 | 3.00 | 2.00 | 5.00 |" in cost
    assert "| redis | v4 | 1 | 0.50 | 1.00 | 0.00 | 1.50 |" in cost
    rows = "\n".join(cpu_table(summaries))
    assert "v3 db noop W1 u16x1" in rows and "2.5 %" in rows  # loadgen 0.5 s of 20 s
    assert plot_cpu(summaries, tmp_path / "cpu.png") and (tmp_path / "cpu.png").stat().st_size
    flat = flat_metrics(runs[0]["metrics"])
    assert flat["cpu_ms_per_job.workers"] == pytest.approx(2.0) and "cpu_s" not in flat


PARENT = """
import subprocess, sys, time
time.sleep(0.3)
burn = "import time\\nend = time.process_time() + 0.3\\nwhile time.process_time() < end: pass"
subprocess.run([sys.executable, "-c", burn], check=True)
print("reaped", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("interval_s", [30.0, 0.05], ids=["never-sampled", "sampled"])
def test_a_reaped_child_counts_once_in_its_parents_component(interval_s):
    """Tesseract under the workload process: a child that burns and is reaped counts in
    the parent's (live) component, whether a sample saw it (not twice) or not (not lost)."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    window = cpu.CpuWindow(roots={parent.pid: "workers"}, interval_s=interval_s).start()
    assert parent.stdout.readline().strip() == "reaped"
    window.stop()
    parent.communicate()
    assert 0.25 <= window.cpu_s()["workers"] <= 0.5
