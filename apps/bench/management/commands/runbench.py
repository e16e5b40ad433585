"""`python manage.py runbench [--quick]`: the benchmark matrix, written to results/<time>/."""

import json
import logging
import os
import shlex
import signal
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import TextIO, cast

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.bench.hosts import network
from apps.bench.hosts.netns import hosts_available
from apps.bench.plan import deadline
from apps.bench.plan.cells import (
    ALL_VERSIONS,
    QUEUE_VERSIONS,
    CellSpec,
    MatrixParams,
    build_matrix,
    default_extra_backends,
    parse_int_list,
    parse_name_list,
)
from apps.bench.plan.defaults import (
    OCR_JOB_S,
    estimate_total_s,
    family_cells,
    full_plan,
    plan_lines,
    quick_plan,
)
from apps.bench.report import long_jobs as long_jobs_table
from apps.bench.report import raw_table
from apps.bench.run import raw, stray, submit_cells
from apps.bench.run.cell import RunConfig
from apps.bench.run.families import FAMILIES, FULL, QUICK, TINY, FamilyParams
from apps.bench.run.long_jobs import Params as LongJobsParams
from apps.bench.run.long_jobs import run_long_jobs
from apps.bench.run.session import BenchOptions, ChaosSource, run_bench
from tasks.backends.registry import backend_aliases, reset_backends

LONG_JOBS = "long-jobs"
ENGINE_MODES = ("lab", "seed")  # settings.OCR_ENGINE_MODE
LONG_JOBS_PLAN = "defaults then lab settings, all aliases at once, ~2-4 min"
MATRIX_OPTIONS = ("versions", "backends", "workers", "users", "noop_users", "jobs_per_user",
                  "workload", "families")  # fmt: skip


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class Command(BaseCommand):
    help = (
        "Run the bench matrix (versions/backends x workers x users x jobs x workload); "
        "writes results/<timestamp>/report.md and saves a BenchRun."
    )

    def add_arguments(self, parser):
        add = parser.add_argument
        add(
            "--versions",
            default=None,
            help=f"{','.join(ALL_VERSIONS)} (comma list, or none); any matrix option runs a "
            "custom matrix instead of the full plan",
        )
        add(
            "--backends",
            default=None,
            help="aliases run through /api/jobs (default: those no version covers)",
        )
        add("--workers", default=None, help="worker processes (V0-V2: OCR servers); 1,2,4")
        add(
            "--users",
            default=None,
            help="locust users for the ocr workload (16); --family deadline: the N list "
            "(16,32,64,128)",
        )
        add("--noop-users", default=None, help="locust users for the noop workload (16,64)")
        add("--jobs-per-user", type=int, default=None, help="jobs each user runs (16)")
        add(
            "--workload",
            default=None,
            help="ocr, noop, sleep:S, cpu:S (comma list, or none); default ocr,noop",
        )
        add(
            "--families",
            default=None,
            help="custom matrix: scenario families on its queue targets (pickup,mixed,overload)",
        )
        add("--family-size", choices=["full", "quick", "tiny"], default=None, help="family sizes")
        add("--family-repeats", type=int, default=3, help="custom families: warm repeats")
        add("--chaos", action="store_true", help="also run `manage.py chaos` into the run")
        add("--chaos-file", default=None, help="a chaos.json to show in the report")
        add("--stop-stray", action="store_true", help="stop the stack's workers first")
        add("--plan", action="store_true", help="print the cells and the time estimate; exit")
        add("--deadline", type=float, default=60.0, help="seconds a job may take end to end")
        add("--repeat", type=int, default=1, help="run the matrix N times (medians reported)")
        add("--quick", action="store_true", help="small matrix: a few minutes on 2 cores")
        add("--out", default="results", help="results root; a <timestamp> folder is made")
        add("--drain-timeout", type=float, default=300.0, help="max wait for the queue to drain")
        add(
            "--poll-interval",
            type=float,
            default=1.0,
            help="locust users' longest poll wait with --wait-mode poll (polls cost API CPU)",
        )
        add(
            "--wait-mode",
            choices=["wait", "poll"],
            default="wait",
            help="how locust job users see a job end: long-poll GET ?wait= (default) or polls",
        )
        add("--document", default="sample.pdf", help="corpus document for every job")
        add("--api-workers", type=int, default=2, help="uvicorn worker processes of the API")
        add("--bare-runs", type=int, default=3, help="in-process run_ocr timings (0: skip)")
        add(
            "--queue-prefix",
            default=None,
            help="queue/stream/topic prefix of the bench (default: <OCRLAB_QUEUE_PREFIX>-bench)",
        )
        add(
            "--burst-jobs",
            type=int,
            default=None,
            help="noop queue cells: jobs published at once to measure capacity "
            "(default 500, --quick 100, 0: off)",
        )
        add(
            "--family",
            choices=["submit", "deadline", LONG_JOBS, network.FAMILY, raw.FAMILY],
            default=None,
            help="submit: POST capacity of V3-V6 and the aliases (noop, workers running); "
            "deadline: N = 16..128 OCR jobs at once per target and W, where the 60 s deadline "
            "bites (--versions, --workers; default V2-V6 at W = 1, 2); "
            "long-jobs: only the long-jobs family (every alias, or --backends); "
            "network: pickup and capacity vs RTT across hosts (network namespaces; root); "
            "raw: noop messages through each backend's own client, no job rows (--backends, "
            "--workers, --burst-jobs = messages per cell; --previous: lifecycle columns from "
            "that run's pickup cells)",
        )
        add("--rtts", default="0,1,10", help="--family network: RTTs in ms")
        add("--submit-users", default="64,256", help="--family submit: concurrent users")
        add("--submit-workers", default="2", help="--family submit: runworker processes")
        add(
            "--submit-rates",
            default=None,
            help="submit cells: open-loop ladder, POSTs/s per user (default 1,2,4,8; --quick 1,2)",
        )
        add("--submit-step", type=float, default=None, help="seconds per ladder step (3; quick 2)")
        add(
            "--previous",
            default=None,
            help="an earlier run's folder (with cells.json): the report lists each verdict "
            "that changed since (stability)",
        )
        add(
            "--engine-mode",
            choices=ENGINE_MODES,
            default="lab",
            help="OCR engine of the OCR servers and workers: lab (default) or seed (the seed "
            "study's: the ocrmypdf command line, default --jobs, PDF/A, threads uncapped)",
        )
        add("--dry-run", action="store_true", help="print the matrix and exit")

    def handle(self, *args, **opts):
        if opts["family"] == LONG_JOBS:
            return self._long_jobs_only(opts)
        if opts["family"] == network.FAMILY:
            return self._network(opts)
        if opts["family"] == raw.FAMILY:
            return self._raw_only(opts)
        cells = with_engine(self._cells(opts), opts["engine_mode"])
        families = _family_params(opts)
        if opts["dry_run"] or opts["plan"]:
            lines = plan_lines(cells, families, ocr_job_s=OCR_JOB_S, cores=os.cpu_count() or 2)
            if _is_full_plan(opts):
                lines.append(f"then the long-jobs family: {LONG_JOBS_PLAN}")
            self.stdout.write("\n".join(lines))
            return
        if not cells:
            raise CommandError("the matrix is empty; check --versions, --backends, --workload")
        self._check_stray(opts)
        config = self._config(opts)
        options = BenchOptions(
            cells=cells,
            config=config,
            bare_runs=opts["bare_runs"],
            command=shlex.join(["manage.py", *sys.argv[1:]]),
            params=_jsonable(opts),
            families=families,
            chaos=_chaos_source(opts, cells),
            previous_run=_previous_run(opts),
            sweep=opts["family"] == "deadline",
            long_jobs=backend_aliases() if _is_full_plan(opts) else None,
        )
        estimate = estimate_total_s(cells, families, ocr_job_s=OCR_JOB_S, cores=os.cpu_count() or 2)
        self.stderr.write(
            f"planned: {len(cells)} cells, ~{estimate / 60:.1f} min (--plan lists them)"
        )
        for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored
            signal.signal(sig, _interrupt)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per warm-up request
        # an OutputWrapper writes to (and forwards everything else to) a TextIO
        outcome = run_bench(options, stream=cast(TextIO, self.stderr))
        self.stdout.write(
            f"report: {outcome.out_dir / 'report.md'}  "
            f"(BenchRun #{outcome.run.pk}, {outcome.run.status})"
        )
        failed = [r["cell_id"] for r in outcome.results if r["status"] == "error"]
        if outcome.run.status != "done" or failed:
            raise CommandError(
                f"run {outcome.run.status}; failed cells: {', '.join(failed) or 'none'}"
            )

    def _long_jobs_only(self, opts) -> None:
        """`--family long-jobs`: the long-jobs table alone, in results/<timestamp>/."""
        aliases = _long_jobs_aliases(opts)
        if opts["dry_run"] or opts["plan"]:
            self.stdout.write(f"long-jobs family on {', '.join(aliases)}: {LONG_JOBS_PLAN}")
            return
        self._check_stray(opts)
        config = self._config(opts)
        signal.signal(signal.SIGTERM, _interrupt)
        params = LongJobsParams()
        rows = run_long_jobs(out_dir=config.out_dir, aliases=aliases, params=params)
        command = shlex.join(["manage.py", *sys.argv[1:]])
        path = long_jobs_table.write(rows, config.out_dir, command=command, params=asdict(params))
        self.stdout.write(path.read_text())
        self.stdout.write(f"report: {path}")

    def _raw_only(self, opts) -> None:
        """`--family raw`: the raw table alone, in results/<timestamp>-raw/."""
        aliases = _long_jobs_aliases(opts)
        params = _raw_params(opts)
        if opts["dry_run"] or opts["plan"]:
            self.stdout.write("\n".join(raw.plan_lines(aliases, params)))
            return
        config = self._config(opts)
        out_dir = config.out_dir.with_name(config.out_dir.name + "-raw")
        signal.signal(signal.SIGTERM, _interrupt)
        rows = raw.run_raw_family(
            aliases=aliases,
            params=params,
            env=config.env,
            log_dir=out_dir / "logs",
            on_row=lambda row: self.stderr.write(f"{row['cell_id']}: {row['status']}"),
        )
        source = opts["previous"] or ""
        lifecycle = raw.lifecycle_by_cell(_previous_results(source)) if source else {}
        path = raw_table.write(
            rows,
            out_dir,
            command=shlex.join(["manage.py", *sys.argv[1:]]),
            params=asdict(params),
            lifecycle=lifecycle,
            lifecycle_source=source,
        )
        self.stdout.write(path.read_text())
        self.stdout.write(f"report: {path}")

    def _network(self, opts) -> None:
        available, why_not = hosts_available()
        if not available:
            raise CommandError(f"--family network needs the multi-host lab: {why_not}")
        aliases = parse_name_list(opts["backends"]) if opts["backends"] else None
        base = network.QUICK if opts["quick"] else network.NetworkParams()
        try:
            rtts = tuple(float(x) for x in opts["rtts"].split(",") if x.strip())
        except ValueError as exc:
            raise CommandError(f"--rtts: {exc}") from exc
        params = replace(base, rtts_ms=rtts)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        out = Path(opts["out"]).resolve() / f"{stamp}-network"
        result = network.run_network_family(
            out, aliases, params=params, on_row=lambda row: self.stderr.write(str(row))
        )
        self.stdout.write(result.markdown)
        self.stdout.write(f"wrote {', '.join(str(p) for p in result.paths.values())}")

    def _check_stray(self, opts) -> None:
        alive = stray.stray_workers()
        if alive and not opts["stop_stray"]:
            raise CommandError(stray.refusal(alive))
        if alive:
            self.stderr.write(f"stopping stack workers: {', '.join(alive)}")
            stray.stop_stray(alive)

    def _cells(self, opts):
        try:
            versions = parse_name_list(opts["versions"] or ",".join(ALL_VERSIONS))
            backends = (
                parse_name_list(opts["backends"])
                if opts["backends"] is not None
                else default_extra_backends(backend_aliases())
            )
            unknown = [v for v in versions if v not in ALL_VERSIONS] + [
                b for b in backends if b not in backend_aliases()
            ]
            if unknown:
                raise ValueError(
                    f"unknown versions/backends: {', '.join(unknown)} (versions: "
                    f"{', '.join(ALL_VERSIONS)}; backends: {', '.join(backend_aliases())})"
                )
            return self._matrix(opts, versions, backends)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

    def _matrix(self, opts, versions, backends):
        if opts["family"] == submit_cells.SUBMIT:
            params = submit_cells.family_params(
                versions,
                backends,
                users=parse_int_list(opts["submit_users"]),
                workers=parse_int_list(opts["submit_workers"]),
                repeat=opts["repeat"],
            )
            return build_matrix(params)
        if opts["family"] == "deadline":
            targets = versions if opts["versions"] else list(deadline.TARGETS)
            workers = parse_int_list(opts["workers"]) if opts["workers"] else list(deadline.WORKERS)
            sizes = tuple(parse_int_list(opts["users"])) if opts["users"] else deadline.SIZES
            return deadline.deadline_cells(
                targets + backends_if_given(opts, backends), workers, sizes
            )
        if opts["quick"]:
            submit = build_matrix(submit_cells.quick_params("v3")) if "v3" in versions else []
            return quick_plan(backends) + submit
        if not any(opts[name] is not None for name in MATRIX_OPTIONS):
            return full_plan(backends)
        params = MatrixParams(
            versions=versions,
            backends=backends,
            workers=parse_int_list(opts["workers"] or "1,2,4"),
            users=parse_int_list(opts["users"] or "16"),
            noop_users=parse_int_list(opts["noop_users"] or "16,64"),
            jobs_per_user=opts["jobs_per_user"] or 16,
            workloads=parse_name_list(opts["workload"] or "ocr,noop"),
            deadline_s=opts["deadline"],
            repeat=opts["repeat"],
        )
        queue = [n for n in versions if n in QUEUE_VERSIONS] + backends
        families = parse_name_list(opts["families"] or "")
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown families: {', '.join(unknown)} (use {', '.join(FAMILIES)})")
        return build_matrix(params) + [
            cell
            for family in families
            for cell in family_cells(
                family, queue, params.workers, repeats=max(1, opts["family_repeats"])
            )
        ]

    def _config(self, opts) -> RunConfig:
        env = dict(os.environ)
        prefix = opts["queue_prefix"] or f"{settings.QUEUE_PREFIX}-bench"
        if prefix != settings.QUEUE_PREFIX:
            settings.QUEUE_PREFIX = prefix  # this process purges the bench's own queues
            reset_backends()
        env["OCRLAB_QUEUE_PREFIX"] = prefix
        settings.OCR_ENGINE_MODE = opts["engine_mode"]  # --bare-runs time the same engine
        out_dir = Path(opts["out"]).resolve() / timezone.now().strftime("%Y%m%d-%H%M%S")
        return RunConfig(
            out_dir=out_dir,
            env=env,
            drain_timeout_s=opts["drain_timeout"],
            poll_interval_s=opts["poll_interval"],
            wait_mode=opts["wait_mode"],
            pdf_name=opts["document"],
            api_workers=opts["api_workers"],
            burst_jobs=_burst_jobs(opts),
            submit=_submit_options(opts),
        )


def with_engine(cells: list[CellSpec], mode: str) -> list[CellSpec]:
    """The cells with their OCR engine mode (each cell's processes get it: cell_env)."""
    return [replace(cell, engine=mode) for cell in cells]


def _is_full_plan(opts: dict) -> bool:
    """The default run (make bench): no matrix option, not --quick, no --family."""
    custom = any(opts[name] is not None for name in MATRIX_OPTIONS)
    return not (custom or opts["quick"] or opts["family"])


def _long_jobs_aliases(opts: dict) -> list[str]:
    aliases = parse_name_list(opts["backends"]) if opts["backends"] else backend_aliases()
    unknown = [a for a in aliases if a not in backend_aliases()]
    if unknown:
        raise CommandError(
            f"unknown backends: {', '.join(unknown)} (use {', '.join(backend_aliases())})"
        )
    return aliases


def _raw_params(opts: dict) -> raw.RawParams:
    base = raw.RawParams()
    workers = tuple(parse_int_list(opts["workers"])) if opts["workers"] else base.workers
    messages = opts["burst_jobs"] if opts["burst_jobs"] else base.messages
    return replace(base, workers=workers, messages=messages)


def _previous_results(folder: str) -> list[dict]:
    path = Path(folder).resolve() / "cells.json"
    if not path.is_file():
        raise CommandError(f"--previous {folder}: no cells.json there")
    return json.loads(path.read_text()).get("results", [])


def _family_params(opts: dict) -> FamilyParams:
    size = opts["family_size"] or ("quick" if opts["quick"] else "full")
    return {"tiny": TINY, "quick": QUICK}.get(size, FULL)


def _chaos_source(opts: dict, cells) -> ChaosSource | None:
    if opts["chaos_file"]:
        return ChaosSource(path=Path(opts["chaos_file"]))
    if opts["chaos"]:
        return ChaosSource(backends=sorted({c.backend for c in cells if c.kind == "queue"}))
    return None


def backends_if_given(opts: dict, backends: list[str]) -> list[str]:
    """Aliases named with --backends (the default extra aliases only for full runs)."""
    return list(backends) if opts["backends"] else []


def _previous_run(opts: dict) -> str | None:
    if not opts["previous"]:
        return None
    folder = Path(opts["previous"]).resolve()
    if not (folder / "cells.json").is_file():
        raise CommandError(f"--previous {folder}: no cells.json there")
    return str(folder)


def _burst_jobs(opts: dict) -> int:
    if opts["burst_jobs"] is not None:
        return max(0, opts["burst_jobs"])
    return 100 if opts["quick"] else 500


def _submit_options(opts: dict) -> submit_cells.SubmitOptions:
    quick = opts["quick"]
    rates = opts["submit_rates"]
    default = submit_cells.SubmitOptions()
    return submit_cells.SubmitOptions(
        rates=tuple(float(r) for r in rates.split(",") if r.strip())
        if rates is not None
        else (submit_cells.QUICK_RATES if quick else default.rates),
        step_s=opts["submit_step"] or (submit_cells.QUICK_STEP_S if quick else default.step_s),
    )


def _jsonable(opts: dict) -> dict:
    return {
        k: v
        for k, v in opts.items()
        if isinstance(v, str | int | float | bool | type(None))
        and k
        not in {"settings", "pythonpath", "traceback", "no_color", "force_color", "skip_checks"}
    }
