"""`python manage.py runworker --backend ALIAS --workers 2`: the worker's command (the
supervisor, or a framework's worker command, plus the relay thread)."""

import os
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from apps.jobs.relay import relay_loop
from apps.jobs.workloads import WORKLOAD_OVERRIDE_ENV, parse_workload
from tasks.backends.registry import UnknownBackend, backend_aliases, get_backend
from tasks.supervisor import run_workers


class Command(BaseCommand):
    help = "Run N worker processes (one job at a time each) for a job backend, plus its relay."

    def add_arguments(self, parser):
        parser.add_argument("--backend", required=True, help=f"one of {backend_aliases()}")
        parser.add_argument("--workers", type=int, default=1, help="worker processes")
        parser.add_argument("--workload", help="run every job as this workload (benchmarks)")
        parser.add_argument(
            "--no-relay",
            action="store_true",
            help="do not republish stale PENDING or lease-expired jobs",
        )

    def handle(self, *args, backend, workers, workload, no_relay, **options):
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        try:
            impl = get_backend(backend)
            if workload:
                parse_workload(workload)
        except (UnknownBackend, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if workload:
            os.environ[WORKLOAD_OVERRIDE_ENV] = workload
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if not no_relay:
            threading.Thread(target=relay_loop, args=([backend], stop), daemon=True).start()
        self.stdout.write(
            f"runworker: backend={backend} workers={workers} "
            f"workload={workload or 'per job'} (Ctrl-C stops after current jobs)"
        )
        run_workers(impl, workers, stop=stop)
        self.stdout.write("runworker: stopped")
