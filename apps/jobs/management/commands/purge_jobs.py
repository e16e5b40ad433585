"""`python manage.py purge_jobs --older-than 7d`: delete old finished jobs and their files."""

import re
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.jobs import services

UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """'7d', '12h', '30m', '90s', '2w' (a bare number is days)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text or "")
    if not match:
        raise ValueError(f"not an age: {text!r} (use e.g. 7d, 12h, 30m)")
    number, unit = float(match[1]), match[2] or "d"
    return timedelta(seconds=number * UNIT_S[unit])


class Command(BaseCommand):
    help = "Delete finished jobs older than --older-than, with their uploads and PDFs."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            default=f"{settings.JOB_RETENTION_DAYS:g}d",
            help="age like 7d, 12h, 30m (default: JOB_RETENTION_DAYS days)",
        )

    def handle(self, *args, older_than: str, **options):
        try:
            age = parse_age(older_than)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        result = services.jobs_purge(older_than=age)
        self.stdout.write(
            f"purged {result.jobs} jobs older than {older_than} and {result.files} files"
        )
