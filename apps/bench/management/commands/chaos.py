"""`python manage.py chaos [--backend db,redis] [--faults sigkill,poison] [--jobs 4]`

Restarts the local services it uses: run it on your own machine's services only (it
refuses non-loopback addresses). scripts/chaos_services.sh starts a private set.
"""

import os
import platform
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.utils import timezone

from apps.bench.chaos.faults import FAULTS
from apps.bench.chaos.local import NotLocal, require_local, service_urls, services_of
from apps.bench.chaos.scenario import Options, run_all
from apps.bench.chaos.summary import render_text, verdict, write_results
from apps.bench.hosts.faults import NETWORK_FAULTS, NetOptions
from apps.bench.hosts.netchaos import run_network_faults
from apps.bench.hosts.netns import hosts_available
from apps.jobs.versions import version_backends

# The backends of the queue versions (V3-V6): one per design.
DEFAULT_BACKENDS = tuple(dict.fromkeys(version_backends().values()))
NETWORK_LAB = (
    "a lab of network namespaces with services of its own (broker host: PostgreSQL and the "
    "brokers; an API host; workers on w1 and w2); logs under hosts/logs"
)


def _csv(text: str, known, what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CommandError(f"unknown {what} {unknown}; choose from {', '.join(known)}")
    return names


class Command(BaseCommand):
    help = "Inject faults (kill, stop, restarts, poison) per backend; table of lost/doubled jobs."

    def add_arguments(self, parser):
        parser.add_argument(
            "--backend", default=",".join(DEFAULT_BACKENDS), help="comma-separated backend aliases"
        )
        parser.add_argument(
            "--faults",
            default=",".join(FAULTS),
            help=f"comma-separated, from {', '.join([*FAULTS, *NETWORK_FAULTS])} (the network "
            "faults run in a lab of network namespaces with services of its own; needs root)",
        )
        parser.add_argument(
            "--flaky-seconds", type=float, default=60.0, help="flaky-link: how long it flaps"
        )
        parser.add_argument(
            "--flap-seconds", type=float, default=2.0, help="flaky-link: down, then up, this long"
        )
        parser.add_argument("--jobs", type=int, default=4, help="jobs kept in flight")
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--job-seconds", type=float, default=2.0, help="sleep:S workload")
        parser.add_argument("--lease", type=float, default=4.0, help="JOB_LEASE_S of workers")
        parser.add_argument(
            "--deadline",
            type=float,
            default=60.0,
            help="seconds after a fault before unfinished jobs count as stuck",
        )
        parser.add_argument(
            "--down-seconds", type=float, default=3.0, help="how long a stopped service stays down"
        )
        parser.add_argument(
            "--tail-seconds",
            type=float,
            default=2.0,
            help="keep submitting this long after a fault",
        )
        parser.add_argument(
            "--pause-margin",
            type=float,
            default=3.0,
            help="SIGSTOP lasts the lease plus this many seconds",
        )
        parser.add_argument(
            "--relay-stale",
            type=float,
            default=None,
            help="RELAY_QUEUED_STALE_S of the workers (default: the setting's own, 2 x the lease)",
        )
        parser.add_argument("--out", help="output directory (default results/<timestamp>)")

    def handle(self, *args, **o):
        backends = _csv(o["backend"], list(settings.JOB_BACKENDS), "backend")
        faults = _csv(o["faults"], [*FAULTS, *NETWORK_FAULTS], "fault")
        net_faults = [f for f in faults if f in NETWORK_FAULTS]
        faults = [f for f in faults if f in FAULTS]
        if o["jobs"] < 1 or o["workers"] < 2:
            raise CommandError("--jobs must be >= 1 and --workers >= 2 (one may be stopped)")
        available, why_not = hosts_available() if net_faults else (True, "")
        if not available:
            raise CommandError(f"network faults need the multi-host lab: {why_not}")
        try:
            if faults:
                require_local(services_of(backends))
        except NotLocal as exc:
            raise CommandError(str(exc)) from exc
        opts = Options(
            jobs=o["jobs"],
            workers=o["workers"],
            job_s=o["job_seconds"],
            lease_s=o["lease"],
            deadline_s=o["deadline"],
            down_s=o["down_seconds"],
            tail_s=o["tail_seconds"],
            pause_margin_s=o["pause_margin"],
            relay_queued_stale_s=o["relay_stale"],
        )
        _size_pool(threads=3 * len(backends) + 2)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        out = settings.BASE_DIR / "results" / stamp if not o["out"] else _path(o["out"])
        prefix = f"chaos{os.getpid()}"
        settings.QUEUE_PREFIX, settings.JOB_MAX_ATTEMPTS = prefix, 3  # the workers' values
        self.stdout.write(f"chaos: {backends} x {faults + net_faults}; logs in {out / 'logs'}")
        cells = (
            run_all(
                backends=backends,
                faults=faults,
                opts=opts,
                out_dir=out,
                prefix=prefix,
                on_cell=self._progress,
            )
            if faults
            else []
        )
        if net_faults:
            net = NetOptions(flaky_s=o["flaky_seconds"], flap_s=o["flap_seconds"])
            cells += run_network_faults(
                backends=backends,
                faults=net_faults,
                opts=opts,
                out_dir=out / "hosts",
                net=net,
                on_cell=self._progress,
            )
        meta = self._meta(opts, backends)
        if net_faults:
            meta["network faults"] = NETWORK_LAB
        if not faults:  # only network faults: the local services played no part
            meta.pop("services", None)
        md, js = write_results(cells, out, meta=meta)
        self.stdout.write("\n" + render_text(cells))
        self.stdout.write(f"wrote {md} and {js}")

    def _progress(self, cell) -> None:
        self.stdout.write(f"  {cell.backend:<8} {cell.fault:<17} {verdict(cell)}", ending="\n")
        self.stdout.flush()

    def _meta(self, opts: Options, backends: list[str]) -> dict:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=settings.BASE_DIR,
        ).stdout.strip()
        return {
            "when": timezone.now().isoformat(timespec="seconds"),
            "commit": commit,
            "machine": f"{platform.node()} {os.cpu_count()} cores",
            "options": vars(opts),
            "services": {k: _redact(v) for k, v in service_urls(backends).items()},
        }


def _size_pool(*, threads: int) -> None:
    """Every backend runs at once: per backend a submitter and a waiting/injecting thread
    hold a connection each, more than the per-process pool (DB_POOL_MAX_SIZE) allows."""
    pool = connections["default"].settings_dict.get("OPTIONS", {}).get("pool")
    if isinstance(pool, dict):
        pool["max_size"] = max(pool.get("max_size", 0), threads)


def _path(text: str) -> Path:
    return Path(text).resolve()


def _redact(url: str) -> str:
    return url.split("@", 1)[-1] if "@" in url else url
