"""Where the cores went: CPU seconds per component over a cell's measured window.

A background thread reads every process's CPU time about once a second and keeps the last
value per process, so processes that exit mid-window still count up to their last sample.
A process's time includes its reaped children's (cutime, cstime): a child too short-lived
to be sampled (Tesseract under the workload process) counts in its parent's component once
the parent waits for it. When a sampled child is reaped by a sampled parent, the parent's
children-time gain in that interval is the child's whole CPU: it counts in the child's own
component (a load generator reaped by the bench is `loadgen`, not `bench`, even when it
lived less than one interval after its first sample) and once. The machine's
busy time comes from psutil.cpu_times() at the start and the end;
`other` is the rest of the machine (busy minus every named component).

Components: the cell's own process trees (known from its ServerGroup: runworker ->
`workers`, uvicorn -> `api`, gunicorn -> `ocr_servers`), the bench process itself
(`bench`, including this sampler and its database status reads), any other child tree of
the bench process (`loadgen`: locust or the submit load generator), system services found
by process name (`postgres`: every process of the cluster; `broker`: redis-server,
RabbitMQ's Erlang VM, Tansu) and `other`. PostgreSQL and the brokers are shared: their
figure includes whatever else used them during the window.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

COMPONENTS = (
    "workers",
    "api",
    "ocr_servers",
    "postgres",
    "broker",
    "loadgen",
    "bench",
    "other",
)
INSTRUMENT = ("loadgen", "bench")
SERVICE_NAMES = {
    "postgres": "postgres",
    "redis-server": "broker",
    "beam.smp": "broker",
    "epmd": "broker",
    "erl_child_setup": "broker",
    "inet_gethost": "broker",
    "tansu": "broker",
}
COMMAND_COMPONENTS = (("runworker", "workers"), ("uvicorn", "api"), ("gunicorn", "ocr_servers"))
SAMPLE_INTERVAL_S = 1.0
BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq")  # guest is inside user on Linux
MAX_DEPTH = 64
PROC = Path("/proc")
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Proc:
    """One row of a process table: what classification and accounting need."""

    pid: int
    ppid: int
    name: str
    cpu_s: float  # user + system of the process and of its reaped children
    started: float = 0.0  # create time; (pid, started) identifies a process across reuse
    children_s: float = 0.0  # the reaped children's part of cpu_s


def command_component(args: Iterable[str]) -> str | None:
    """The component of a process the bench started, from its command line."""
    text = " ".join(str(a) for a in args)
    return next((comp for word, comp in COMMAND_COMPONENTS if word in text), None)


def classify(
    pid: int, table: Mapping[int, Proc], *, roots: Mapping[int, str], bench_pid: int
) -> str | None:
    """The component of `pid`: its nearest known ancestor (itself included), or None (other).

    A root (a process the cell started) gives its component; the bench process gives
    `bench` for itself and `loadgen` for any other tree it started; a service name
    (postgres, redis-server, beam.smp, tansu, ...) gives that service.
    """
    child, current = None, pid
    for _ in range(MAX_DEPTH):
        if current in roots:
            return roots[current]
        if current == bench_pid:
            return "bench" if child is None else "loadgen"
        proc = table.get(current)
        if proc is None:
            return None
        if proc.name in SERVICE_NAMES:
            return SERVICE_NAMES[proc.name]
        if proc.ppid in (0, current):
            return None
        child, current = current, proc.ppid
    return None


def split(
    base: Mapping[tuple, float], last: Mapping[tuple, float], components: Mapping[tuple, str]
) -> dict[str, float]:
    """CPU seconds per named component: last - base per process (base 0 when it started later)."""
    totals = dict.fromkeys(COMPONENTS[:-1], 0.0)
    for key, value in last.items():
        comp = components.get(key)
        if comp in totals:
            totals[comp] += max(0.0, value - base.get(key, 0.0))
    return totals


def with_other(named: Mapping[str, float], machine_busy_s: float) -> dict[str, float]:
    """Every component, `other` = the machine's busy seconds not in a named component."""
    out = {comp: named.get(comp, 0.0) for comp in COMPONENTS[:-1]}
    out["other"] = max(0.0, machine_busy_s - sum(out.values()))
    return out


def cpu_metrics(*, cpu_s: Mapping[str, float], jobs: int, wall_s: float, cores: int) -> dict:
    """The cell's CPU metrics (shared contract): cpu_s, cpu_ms_per_job, instrument_share,
    machine_busy_share; shares are fractions of wall x cores."""
    available = wall_s * cores
    busy = sum(cpu_s.values())
    return {
        "cpu_s": {k: round(v, 4) for k, v in cpu_s.items()},
        "cpu_ms_per_job": {k: v * 1000.0 / jobs for k, v in cpu_s.items()} if jobs else {},
        "instrument_share": sum(cpu_s.get(k, 0.0) for k in INSTRUMENT) / available
        if available > 0
        else None,
        "machine_busy_share": busy / available if available > 0 else None,
        "cpu_wall_s": wall_s,
    }


def busy_seconds(times) -> float:
    """Busy CPU seconds of a psutil.cpu_times() reading (all CPUs)."""
    return sum(getattr(times, name, 0.0) for name in BUSY_FIELDS)


def list_pids() -> set[int]:
    """Every process id now."""
    if PROC.is_dir():
        return {int(name) for name in os.listdir(PROC) if name.isdigit()}
    return set(psutil.pids())


def parse_stat(text: str) -> Proc:
    """A /proc/<pid>/stat line as Proc (times in seconds; `started` in clock ticks)."""
    head, _, rest = text.rpartition(")")
    pid, _, name = head.partition(" (")
    fields = rest.split()  # fields[0] is the state (field 3 of proc(5))
    ticks = [int(f) for f in fields[11:15]]  # utime, stime, cutime, cstime
    return Proc(
        int(pid),
        int(fields[1]),
        name,
        sum(ticks) / CLK_TCK,
        float(fields[19]),
        sum(ticks[2:]) / CLK_TCK,
    )


def read_proc(pid: int) -> Proc | None:
    """One process now, None when it is gone. On Linux one read of /proc/<pid>/stat
    (~20x cheaper than psutil); elsewhere through psutil."""
    if PROC.is_dir():
        try:
            with open(PROC / str(pid) / "stat") as handle:
                return parse_stat(handle.read())
        except (OSError, ValueError, IndexError):
            return None
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            t = p.cpu_times()
            children_s = t.children_user + t.children_system
            return Proc(
                pid, p.ppid(), p.name(), t.user + t.system + children_s, p.create_time(), children_s
            )
    except psutil.Error:
        return None


class CpuWindow:
    """Sample CPU per component between start() and stop(); metrics() afterwards.

    Each sample lists the process ids, reads and classifies the new ones once, and re-reads
    only the processes of a named component: the rest of the machine is `other`, computed
    from the machine's busy time, so it needs no per-process reads.
    """

    def __init__(
        self, *, roots: Mapping[int, str], interval_s: float = SAMPLE_INTERVAL_S, cores: int = 0
    ):
        self.roots, self.interval_s = dict(roots), interval_s
        self.cores = cores or psutil.cpu_count() or 1
        self.bench_pid = os.getpid()
        self.table: dict[int, Proc] = {}  # every process seen (for ancestry)
        self.tracked: dict[int, tuple] = {}  # pid -> key of the processes of a component
        self.base: dict[tuple, float] = {}
        self.last: dict[tuple, float] = {}
        self.children: dict[tuple, float] = {}  # key -> last reading of its children's part
        self.components: dict[tuple, str] = {}
        self.moved_s: dict[str, float] = {}  # per component: reaped seconds to take off
        self.sampler_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)

    def start(self) -> CpuWindow:
        self._t0, self._cpu0 = time.monotonic(), psutil.cpu_times()
        self._sample(first=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._t1, self._cpu1 = time.monotonic(), psutil.cpu_times()

    def __enter__(self) -> CpuWindow:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self, first: bool = False) -> None:
        started = time.thread_time()
        pids = list_pids()
        new = [p for p in pids if p not in self.table]
        for pid in new:
            proc = read_proc(pid)
            if proc is not None:
                self.table[pid] = proc
        for pid in new:
            self._classify(pid, first)
        gone = self.tracked.keys() - pids
        before = dict(self.children)
        for pid in pids & self.tracked.keys():
            proc = read_proc(pid) if pid not in new else self.table.get(pid)
            key = self.tracked[pid]
            if proc is not None and (pid, proc.started) == key:
                self.last[key], self.children[key] = proc.cpu_s, proc.children_s
        gains = {k: self.children[k] - v for k, v in before.items() if k in self.children}
        for pid in gone:
            self._gone(pid, gains)
        self.sampler_s += time.thread_time() - started

    def _classify(self, pid: int, first: bool) -> None:
        proc = self.table.get(pid)
        comp = proc and classify(pid, self.table, roots=self.roots, bench_pid=self.bench_pid)
        if proc is None or not comp:
            return
        key = (pid, proc.started)
        self.tracked[pid], self.components[key] = key, comp
        if first:  # processes started later count from 0
            self.base[key] = proc.cpu_s

    def _gone(self, pid: int, gains: dict[tuple, float]) -> None:
        """A sampled process exited. If a sampled parent is alive, that parent reaped it:
        the parent's children time gained the child's whole CPU in this interval, so that
        gain moves from the parent's component to the child's, where the child's last
        reading counts already. Two children reaped in one interval: the first takes the
        gain, the others their last reading."""
        key = self.tracked.pop(pid)
        proc = self.table.get(pid)
        parent = self.tracked.get(proc.ppid) if proc is not None else None
        if parent is None:
            return
        seen = self.last.get(key, 0.0)
        whole = max(seen, gains.get(parent, 0.0))
        gains[parent] = 0.0
        comp, own = self.components[parent], self.components[key]
        self.moved_s[comp] = self.moved_s.get(comp, 0.0) + whole
        self.moved_s[own] = self.moved_s.get(own, 0.0) - (whole - seen)

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds per component over the window (after stop())."""
        machine = busy_seconds(self._cpu1) - busy_seconds(self._cpu0)
        named = split(self.base, self.last, self.components)
        for comp, seconds in self.moved_s.items():
            named[comp] = max(0.0, named[comp] - seconds)
        return with_other(named, machine)

    def metrics(self, *, jobs: int) -> dict:
        """The cell's CPU metrics over the window; `cpu_sampler_s` is inside `bench`."""
        out = cpu_metrics(
            cpu_s=self.cpu_s(), jobs=jobs, wall_s=self._t1 - self._t0, cores=self.cores
        )
        out["cpu_sampler_s"] = round(self.sampler_s, 4)
        return out


def group_roots(procs: Iterable) -> dict[int, str]:
    """{pid: component} of a ServerGroup's processes (subprocess.Popen objects)."""
    roots = {}
    for proc in procs:
        comp = command_component(proc.args if isinstance(proc.args, list) else [proc.args])
        if comp:
            roots[proc.pid] = comp
    return roots
