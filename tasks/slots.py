"""`python -m tasks.slots --count N --name NAME --stop-timeout S -- CMD...`: one process of
CMD per job slot, for a framework whose worker runs one job at a time (django-tasks-db's
`db_worker`; procrastinate with concurrency 1).

Each copy runs under a CommandWorkers of its own (tasks/supervisor.py): restarted when it
dies (a SIGKILLed slot comes back while the others keep their jobs), SIGTERMed once on
stop (warm shutdown: the current job finishes), its group SIGKILLed after S seconds.
This process only supervises; it is stopped with its parent (die_with_parent), and each
copy with this process, so nothing outlives runworker.
"""

import argparse
import logging
import signal
import sys
import threading

from tasks.supervisor import CommandWorkers, die_with_parent

log = logging.getLogger("tasks.slots")
JOIN_MARGIN_S = 5.0  # beyond a copy's stop timeout, before this process gives up on it


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tasks.slots")
    parser.add_argument("--count", type=int, required=True, help="job slots (processes)")
    parser.add_argument("--name", default="slot", help="for logs")
    parser.add_argument("--stop-timeout", type=float, default=60.0, help="seconds per copy")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if args.count < 1 or not args.command:
        parser.error("need --count >= 1 and a command after --")
    return args


def run_slots(command: list[str], *, count: int, name: str, stop_timeout_s: float) -> None:
    """Keep `count` copies of `command` running until SIGTERM or SIGINT, then stop them."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    die_with_parent()
    threads = [
        threading.Thread(
            target=CommandWorkers(f"{name}[{index}]", command, {}, stop_timeout_s).run,
            args=(stop,),
            name=f"slot-{index}",
        )
        for index in range(count)
    ]
    for thread in threads:
        thread.start()
    while not stop.wait(0.5):
        pass
    for thread in threads:
        thread.join(stop_timeout_s + JOIN_MARGIN_S)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse(argv)
    run_slots(args.command, count=args.count, name=args.name, stop_timeout_s=args.stop_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
