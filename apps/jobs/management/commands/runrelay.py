"""`python manage.py runrelay [--backend rabbit --backend kafka]`: the outbox relay alone.

`runworker` runs it as a thread; run this beside the frameworks' own worker CLIs (celery
worker, dramatiq), which have none, so PENDING jobs, expired leases and lost messages
still come back. Several relays at once are safe: every step is a guarded update.
"""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from apps.jobs.backends import backend_aliases
from apps.jobs.relay import relay_loop


class Command(BaseCommand):
    help = "Run the outbox relay (republish stale PENDING, lease-expired and lost jobs)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--backend",
            action="append",
            dest="backends",
            help=f"repeatable; default: all of {backend_aliases()}",
        )

    def handle(self, *args, backends, **options):
        known = backend_aliases()
        backends = backends or known
        unknown = sorted(set(backends) - set(known))
        if unknown:
            raise CommandError(f"unknown backend(s) {unknown}; choose from {known}")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"runrelay: {', '.join(backends)} (Ctrl-C stops)")
        relay_loop(backends, stop)
        self.stdout.write("runrelay: stopped")
