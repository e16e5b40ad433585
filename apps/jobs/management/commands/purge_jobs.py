"""`python manage.py purge_jobs --older-than 7d --max-age 1d`: fail jobs stuck unfinished
past --max-age, then delete old finished jobs and their files. The relay runs the same
every PURGE_INTERVAL_S with the settings' ages (apps/jobs/retention.py)."""

import re
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.jobs import retention, services

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
        parser.add_argument(
            "--max-age",
            default=f"{settings.JOB_MAX_AGE_S:g}s",
            help="unfinished jobs older than this fail as `expired` (default: JOB_MAX_AGE_S)",
        )

    def handle(self, *args, older_than: str, max_age: str, **options):
        try:
            age, stuck_age = parse_age(older_than), parse_age(max_age)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        expired = retention.jobs_expire(max_age=stuck_age)
        result = services.jobs_purge(older_than=age)
        self.stdout.write(
            f"failed {expired} jobs unfinished after {max_age}; "
            f"purged {result.jobs} jobs older than {older_than} and {result.files} files"
        )
