"""Per-job scratch directories: the workload child's TMPDIR, removed whatever the end.

OCRmyPDF, Tesseract and Ghostscript write their temporary files under TMPDIR
(`ocr-*`, `ocrmypdf.io.*`). A child killed on a time limit, a lost lease or a cancel
never cleans them up itself, so each job runs with TMPDIR set to a directory of its own,
`JOB_TMP_ROOT/<worker pid>/<job id>-<n>`, which the worker removes after the child has
answered or been killed. A worker that is itself killed leaves its `<pid>` directory:
the next worker to start on the host removes the directories of pids no longer alive.
"""

import contextlib
import itertools
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

log = logging.getLogger("tasks.scratch")
_serial = itertools.count(1)


def worker_root() -> Path:
    """This process's directory under JOB_TMP_ROOT."""
    return Path(settings.JOB_TMP_ROOT) / str(os.getpid())


@contextlib.contextmanager
def job_dir(job_id: object) -> Iterator[Path]:
    """A fresh, empty directory for one run of a job; removed with all it holds on exit."""
    path = worker_root() / f"{job_id}-{next(_serial)}"
    path.mkdir(parents=True, exist_ok=False)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_mine() -> None:
    """Remove this process's directory (a worker that exits without its finally blocks)."""
    shutil.rmtree(worker_root(), ignore_errors=True)


def sweep_dead() -> int:
    """Remove the directories of worker pids that no longer run; how many went."""
    root = Path(settings.JOB_TMP_ROOT)
    removed = 0
    for path in root.iterdir() if root.is_dir() else ():
        if path.name.isdigit() and not _alive(int(path.name)):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed %d scratch directories of dead workers under %s", removed, root)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
