"""Delay on the links between worker hosts and the broker host.

Where the kernel has `sch_netem`, `tc qdisc ... netem delay` on both ends of each worker
link. Where it has not, a delay proxy: one asyncio process on the broker host, listening on
each service's delayed twin port and forwarding to the service; it holds every chunk for the
one-way delay in each direction, in order (RTT = 2 x delay + the proxy's own cost, which is
instrument CPU). Standard library only.

python -m apps.bench.hosts.delay --delay-ms 5 198.18.3.3:16379=198.18.3.3:6379 ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Sequence

NETEM, PROXY = "netem", "proxy"
CHUNK_BYTES = 65536


def netem_available(dev: str, netns: str | None = None) -> bool:
    """True when `tc ... netem` works on `dev` (tried, then removed)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    add = [*prefix, "tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "0ms"]
    if subprocess.run(add, capture_output=True, check=False).returncode != 0:
        return False
    subprocess.run([*prefix, "tc", "qdisc", "del", "dev", dev, "root"], capture_output=True)
    return True


def netem_set(dev: str, delay_ms: float, netns: str | None = None) -> None:
    """One-way delay on what `dev` sends (0 removes the qdisc)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    if delay_ms <= 0:
        subprocess.run([*prefix, "tc", "qdisc", "del", "dev", dev, "root"], capture_output=True)
        return
    cmd = [*prefix, "tc", "qdisc", "replace", "dev", dev, "root", "netem"]
    subprocess.run([*cmd, "delay", f"{delay_ms:g}ms"], check=True, capture_output=True)


# --- the proxy ---


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float):
    """Copy reader -> writer, each chunk released delay_s after it arrived, in order."""
    held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def release() -> None:
        while True:
            due, data = await held.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    releaser = asyncio.create_task(release())
    try:
        while data := await reader.read(CHUNK_BYTES):
            held.put_nowait((time.monotonic() + delay_s, data))
    except OSError:
        pass
    held.put_nowait((time.monotonic() + delay_s, b""))
    with contextlib.suppress(OSError):
        await releaser


async def _serve_one(client_r, client_w, target: tuple[str, int], delay_s: float) -> None:
    try:
        server_r, server_w = await asyncio.open_connection(*target)
    except OSError:
        client_w.close()
        return
    try:
        await asyncio.gather(_pump(client_r, server_w, delay_s), _pump(server_r, client_w, delay_s))
    finally:
        for w in (client_w, server_w):
            w.close()


def parse_route(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """'LISTEN_ADDR:PORT=TARGET_ADDR:PORT' -> ((addr, port), (addr, port))."""
    listen, _, target = text.partition("=")

    def address(part: str) -> tuple[str, int]:
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise argparse.ArgumentTypeError(f"expected ADDR:PORT=ADDR:PORT, got {text!r}")
        return host, int(port)

    return address(listen), address(target)


async def serve(routes: Sequence[tuple[tuple[str, int], tuple[str, int]]], delay_s: float):
    """Listen on every route until SIGTERM/SIGINT."""
    servers = []
    for listen, target in routes:

        async def handle(r, w, target=target) -> None:
            await _serve_one(r, w, target, delay_s)

        servers.append(await asyncio.start_server(handle, *listen, reuse_address=True))
    print(f"delay proxy: {len(servers)} routes, one-way {delay_s * 1000:g} ms", flush=True)
    stop, loop = asyncio.Event(), asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.set_exception_handler(_quiet_cancel)
    await stop.wait()
    for server in servers:
        server.close()


def _quiet_cancel(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Connections cancelled as the proxy stops are not errors worth a traceback."""
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay")
    parser.add_argument("routes", nargs="+", type=parse_route, help="LISTEN:PORT=TARGET:PORT")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.routes, args.delay_ms / 1000.0))


if __name__ == "__main__":
    main()
