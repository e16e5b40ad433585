"""`python -m tasks.backends.dramatiq ARGS`: Dramatiq's CLI, stopped with its parent.

What runworker runs (DramatiqBackend.worker_command): the same as `python -m dramatiq
ARGS` (see worker.py for the command line), plus die_with_parent, so no worker outlives
runworker even when it is SIGKILLed. This parent process only supervises Dramatiq's
worker processes: it neither sets Django up nor imports the worker entry, which each
worker process imports through the broker argument (worker:setup_worker).
"""

import sys

from dramatiq.cli import main as dramatiq_main

from tasks.supervisor import die_with_parent


def main() -> int:
    die_with_parent()
    return dramatiq_main()


if __name__ == "__main__":
    sys.exit(main())
