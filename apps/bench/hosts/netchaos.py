"""Chaos phases across hosts: `run_network_faults` builds a HostLab, starts each backend's
workers on both worker hosts, and runs the network faults (faults.NETWORK_FAULTS) one at a
time on every backend at once; one cell per backend and fault, in chaos.summary's shape
(NetCell adds the recovery after the heal and the hosts whose workers stalled)."""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from apps.bench.chaos.scenario import Options
from apps.bench.chaos.summary import Cell, compute_cell, recovery_seconds
from apps.bench.hosts.faults import (
    CLIENT_STOP_S,
    NETWORK_FAULTS,
    NetCell,
    NetFault,
    NetOptions,
    Run,
    read_rows,
    wait_finished,
    wait_running_on,
)
from apps.bench.hosts.lab import HostLab

log = logging.getLogger("chaos")
Procs = dict[tuple[str, str], subprocess.Popen[bytes]]


def _now() -> datetime:
    return datetime.now(UTC)


class NetChaos:
    """The lab, the workers of every backend on every worker host, and the phases."""

    def __init__(self, lab: HostLab, backends: list[str], opts: Options, net: NetOptions):
        self.lab, self.backends, self.opts, self.net = lab, backends, opts, net
        self.procs: Procs = {}
        self.stamp = _now().strftime("%H%M%S")
        self.per_host = max(1, opts.workers // len(lab.worker_hosts))

    def start_workers(self, backend: str, hosts: list[str]) -> None:
        for host in hosts:
            proc = self.lab.start_worker(backend, host, count=self.per_host, workload=None)
            self.procs[(backend, host)] = proc

    def stop_workers(self, backend: str, hosts: list[str]) -> None:
        for host in hosts:
            if proc := self.procs.pop((backend, host), None):
                self.lab.stop(proc)

    # --- one phase ---

    def phase(self, fault: NetFault) -> list[NetCell]:
        cells: dict[str, NetCell] = {}
        runs: dict[str, Run] = {}
        for backend in self.backends:
            if why_not := fault.applies(backend):
                cells[backend] = NetCell(backend=backend, fault=fault.name, skipped=why_not)
            else:
                runs[backend] = self._start_run(backend, fault.name)
        try:
            notes = self._wait_started(fault, runs)
            fault_at = _now()
            notes += fault.inject(self.lab, self.opts, self.net)
            fault_end = _now()
            time.sleep(self.opts.tail_s)
        finally:
            outputs = {backend: self._stop_client(run) for backend, run in runs.items()}
        deadline = time.monotonic() + self.opts.deadline_s
        for run in runs.values():
            wait_finished(self.lab, run.tag, deadline)
        for backend, run in runs.items():
            cell = self._cell(run, outputs[backend], fault_at, fault_end)
            cell.notes += notes
            cells[backend] = cell
        if fault.cut_host:
            self._check_stalled([cells[b] for b in runs], fault.cut_host)
        return [cells[backend] for backend in self.backends]

    def _start_run(self, backend: str, fault: str) -> Run:
        tag = f"chaosnet-{self.stamp}-{backend}-{fault}"
        logs = [self.lab.worker_log(backend, host) for host in self.lab.worker_hosts]
        offsets = {path: path.stat().st_size if path.exists() else 0 for path in logs}
        work = self.lab.net.workdir
        run = Run(backend, fault, tag, work / f"{tag}.stop", work / f"{tag}.json", offsets)
        run.client = self.lab.start_client(
            "inflight",
            backend=backend,
            tag=tag,
            jobs=self.opts.jobs,
            workload=f"sleep:{self.opts.job_s:g}",
            stop_file=run.stop_file,
            out=run.out_file,
        )
        return run

    def _wait_started(self, fault: NetFault, runs: dict[str, Run]) -> list[str]:
        tags = [run.tag for run in runs.values()]
        host = fault.cut_host or self.lab.worker_hosts[0]
        if wait_running_on(self.lab, tags, host, self.net.start_timeout_s):
            return []
        return [f"not every backend had a job running on {host} when the fault began"]

    def _stop_client(self, run: Run) -> dict:
        run.stop_file.touch()
        proc = run.client
        assert isinstance(proc, subprocess.Popen)
        try:
            proc.wait(CLIENT_STOP_S)
            return json.loads(run.out_file.read_text())
        except (subprocess.TimeoutExpired, OSError, ValueError) as exc:
            self.lab.stop(proc)
            return {"ids": [], "errors": 0, "failed": f"client: {type(exc).__name__}"}

    def _cell(self, run: Run, output: dict, fault_at: datetime, fault_end: datetime) -> NetCell:
        rows = [
            {k: v for k, v in row.items() if k != "worker"} for row in read_rows(self.lab, run.tag)
        ]
        text = "".join(_text_since(path, offset) for path, offset in run.offsets.items())
        cell = compute_cell(
            backend=run.backend,
            fault=run.fault,
            submitted=output["ids"] or [row["id"] for row in rows],
            rows=rows,
            log_text=text,
            fault_at=fault_at,
            fault_end=fault_end,
            submit_errors=output["errors"],
        )
        net_cell = NetCell(**vars(cell))
        net_cell.healed_recovery_s = recovery_seconds(rows, fault_at=fault_end, fault_end=fault_end)
        healed = net_cell.healed_recovery_s
        net_cell.notes.append(f"recovery after the heal: {'never' if healed is None else healed}s")
        if "failed" in output:
            net_cell.notes.append(output["failed"])
        return net_cell

    def _check_stalled(self, cells: list[NetCell], host: str) -> None:
        """Alone (the other hosts' workers stopped), must `host`'s workers run a new job?"""
        others = [h for h in self.lab.worker_hosts if h != host]
        for cell in cells:
            self.stop_workers(cell.backend, others)

        def probe(cell: NetCell) -> None:
            tag = f"chaosnet-{self.stamp}-{cell.backend}-{cell.fault}-alone"
            rows = self.lab.client(
                "probe", backend=cell.backend, tag=tag, timeout_s=self.net.stall_timeout_s
            )
            if [row["status"] for row in rows] != ["DONE"]:
                cell.stalled.append(host)
                cell.notes.append(f"stalled: {host}'s workers ran no new job without a restart")

        _each([functools.partial(probe, cell) for cell in cells])
        for cell in cells:
            self.start_workers(cell.backend, others)


def _each(calls: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=call, daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _text_since(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as log_file:
        log_file.seek(offset)
        return log_file.read().decode(errors="replace")


def run_network_faults(
    *,
    backends: list[str],
    faults: list[str],
    opts: Options,
    out_dir: Path,
    net: NetOptions | None = None,
    on_cell: Callable[[Cell], None] | None = None,
) -> list[Cell]:
    """Every network fault in turn, on every backend at once, in a lab of its own; returns
    the cells backend by backend, in the order of `faults` (like chaos.scenario.run_all)."""
    net = net or NetOptions()
    cells: list[Cell] = []
    with HostLab(workers=2, log_dir=out_dir / "logs") as lab:
        lab.extra_env = opts.worker_env(lab.prefix)
        chaos = NetChaos(lab, backends, opts, net)
        for backend in backends:
            chaos.start_workers(backend, lab.worker_hosts)
        for name in faults:
            log.info("network fault %s on %s", name, ",".join(backends))
            phase = chaos.phase(NETWORK_FAULTS[name])
            for cell in phase:
                if on_cell:
                    on_cell(cell)
            cells += phase
            time.sleep(opts.settle_s)
    order = {backend: i for i, backend in enumerate(backends)}
    return sorted(cells, key=lambda c: order[c.backend])
