"""`manage.py bench_readme RUN`: rewrite README's Results block from a committed run."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.bench.decide.readme import results_block, rewrite


class Command(BaseCommand):
    help = "Rewrite README's generated Results block from RUN/cells.json (a run folder)."

    def add_arguments(self, parser):
        parser.add_argument("run", help="the run folder, relative to the repository root")

    def handle(self, *args, **opts):
        root = Path(settings.BASE_DIR)
        run = opts["run"].rstrip("/")
        if not (root / run / "cells.json").is_file():
            raise CommandError(f"{run}: no cells.json there")
        readme = root / "README.md"
        readme.write_text(rewrite(readme.read_text(), results_block(root, run)))
        self.stdout.write(f"README.md: Results block from {run}")
