"""`manage.py bench_report RUN [--hosts FOLDER] [--previous FOLDER]`: write RUN's report.md
and index.html again from RUN/cells.json with today's code (the decision rule, the tables),
optionally attaching a hosts folder (network.json of `runbench --family network`, chaos.json
of `chaos --faults partition,partition-api,flaky-link`) and an earlier run for stability."""

import json
import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.bench.hosts import findings
from apps.bench.report.export import write_report


class Command(BaseCommand):
    help = "Write RUN/report.md and index.html again from RUN/cells.json (today's rule)."

    def add_arguments(self, parser):
        parser.add_argument("run", help="a run folder (with cells.json)")
        parser.add_argument(
            "--hosts",
            default=None,
            help="a folder with network.json and/or chaos.json of the network faults: "
            "the report's 'Workers on other hosts' section (copied into RUN/hosts)",
        )
        parser.add_argument(
            "--previous", default=None, help="an earlier run folder: the stability section"
        )

    def handle(self, *args, **opts):
        run = Path(opts["run"])
        data = _cells(run)
        context = data["context"]
        if opts["hosts"]:
            context["hosts"] = _attach(Path(opts["hosts"]), run / "hosts")
        if opts["previous"]:
            _cells(Path(opts["previous"]))  # fails clearly when it is not a run
            context["previous_run"] = str(Path(opts["previous"]).resolve())
        (run / "cells.json").write_text(json.dumps(data, indent=1, default=str))
        report = write_report(run, data["results"], data["summaries"], data["targets"], context)
        self.stdout.write(f"{report}: written again from cells.json")


def _cells(run: Path) -> dict:
    path = run / "cells.json"
    if not path.is_file():
        raise CommandError(f"{run}: no cells.json there")
    return json.loads(path.read_text())


def _attach(source: Path, into: Path) -> dict:
    """Copy the hosts folder's tables and plot into the run; its loaded rows."""
    hosts = findings.load(source) if source.is_dir() else {}
    if not hosts:
        raise CommandError(f"--hosts {source}: no network.json or chaos.json there")
    if source.resolve() != into.resolve():
        into.mkdir(parents=True, exist_ok=True)
        for name in ("network.json", "network.md", "network.png", "chaos.json", "chaos.md"):
            if (source / name).is_file():
                shutil.copy2(source / name, into / name)
    return hosts
