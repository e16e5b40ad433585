"""A light submit load generator: asyncio + raw HTTP/1.1 keep-alive, one connection per user.

python -m apps.bench.run.loadgen --host http://127.0.0.1:8000 --path /v3/ocr/jobs \
    --body '{"pdfName": "sample.pdf", "workload": "noop"}' --users 64 --requests 10 \
    --rates 1,2,4,8 --step-s 3 --out submit.json

Two phases, each user on its own keep-alive connection:
1. closed loop: every user POSTs `--requests` times back to back (capacity, errors);
2. open-loop rate ladder: every user POSTs at `rate` per second for `--step-s` seconds, for
   each rate in `--rates`; it stops after the first step whose p99 exceeds `--p99-ms`, that
   had an error, or that fell short of the offered rate.
No Django here (it runs beside the API as its own process, so its CPU is the `loadgen`
component); it only imports `ocrproject.env` for the API's auth headers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ocrproject.env import api_auth_headers

CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 30.0
SHORT_RATE_SHARE = 0.9  # a ladder step "holds" when it delivered >= 90 % of the offered rate
STATUS_NO_ANSWER = 0


@dataclass
class Sample:
    """The answers of one phase or step: status codes and latencies (seconds)."""

    statuses: list[int] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs the same body again and again."""

    def __init__(self, host: str, port: int, request: bytes):
        self.host, self.port, self.request = host, port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self) -> int:
        """One POST; its status code (0: no answer, the connection is reopened next time)."""
        try:
            return await asyncio.wait_for(self._post(), REQUEST_TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            self.close()
            return STATUS_NO_ANSWER

    async def _post(self) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT_S
            )
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, length, close = _parse_head(head)
        await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, content length, server closes) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    if "content-length" not in headers:
        raise ValueError("response without Content-Length")
    return status, int(headers["content-length"]), headers.get("connection") == "close"


def build_request(host: str, path: str, body: dict) -> tuple[str, int, bytes]:
    """(host, port, the request bytes) for POSTing `body` as JSON, with the auth headers."""
    parts = urlsplit(host)
    data = json.dumps(body).encode()
    headers = {
        "Host": parts.netloc,
        "Content-Type": "application/json",
        "Content-Length": str(len(data)),
        **api_auth_headers(),
    }
    assert parts.hostname, f"no host name in {host!r}"
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return parts.hostname, parts.port or 80, head.encode() + b"\r\n" + data


async def _timed(conn: Connection, sample: Sample) -> None:
    started = time.perf_counter()
    status = await conn.post()
    sample.latencies_s.append(time.perf_counter() - started)
    sample.statuses.append(status)


async def closed_loop(conns: list[Connection], requests: int) -> Sample:
    """Every connection POSTs `requests` times back to back."""
    sample = Sample()

    async def user(conn: Connection) -> None:
        for _ in range(requests):
            await _timed(conn, sample)

    started = time.perf_counter()
    await asyncio.gather(*(user(c) for c in conns))
    sample.wall_s = time.perf_counter() - started
    return sample


async def open_loop(conns: list[Connection], rate: float, step_s: float) -> Sample:
    """Every connection POSTs at `rate`/s for `step_s` (late sends go at once, never doubled)."""
    sample, period = Sample(), 1.0 / rate
    count = max(1, round(rate * step_s))
    t0 = time.perf_counter()

    async def user(index: int, conn: Connection) -> None:
        offset = period * index / len(conns)  # spread the users over the period
        for k in range(count):
            delay = t0 + offset + k * period - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await _timed(conn, sample)

    await asyncio.gather(*(user(i, c) for i, c in enumerate(conns)))
    sample.wall_s = max(time.perf_counter() - t0, count * period)  # the step's nominal length
    return sample


def summary(sample: Sample) -> dict:
    """Requests, rate, latency percentiles (ms) and status counts of a phase."""
    ordered = sorted(sample.latencies_s)
    counts: dict[str, int] = {}
    for status in sample.statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    errors = sum(n for code, n in counts.items() if not 200 <= int(code) < 300)
    return {
        "requests": len(sample.statuses),
        "wall_s": sample.wall_s,
        "rps": len(sample.statuses) / sample.wall_s if sample.wall_s > 0 else None,
        "p50_ms": _pct_ms(ordered, 50),
        "p99_ms": _pct_ms(ordered, 99),
        "p999_ms": _pct_ms(ordered, 99.9),
        "status_counts": counts,
        "errors": errors,
        "errors_5xx": sum(n for code, n in counts.items() if int(code) >= 500),
        "no_answer": counts.get(str(STATUS_NO_ANSWER), 0),
    }


def _pct_ms(ordered: list[float], q: float) -> float | None:
    """Linear-interpolation percentile, as in apps.bench.measure.metrics (kept here: no Django)."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return (ordered[low] + (rank - low) * (ordered[high] - ordered[low])) * 1000


def step_holds(step: dict, *, offered_rps: float, p99_ms: float) -> bool:
    """A ladder step holds: no error, p99 within the limit, >= 90 % of the offered rate."""
    return (
        step["errors"] == 0
        and step["p99_ms"] is not None
        and step["p99_ms"] <= p99_ms
        and (step["rps"] or 0) >= SHORT_RATE_SHARE * offered_rps
    )


async def run(args: argparse.Namespace) -> dict:
    """Both phases; the result dict written to --out."""
    host, port, request = build_request(args.host, args.path, json.loads(args.body))
    conns = [Connection(host, port, request) for _ in range(args.users)]
    result: dict = {"users": args.users, "path": args.path, "p99_limit_ms": args.p99_ms}
    if args.requests > 0:
        result["closed"] = summary(await closed_loop(conns, args.requests))
    ladder, sustained = [], None
    for rate in args.rates:
        offered = rate * args.users
        step = {"rate_per_user": rate, "offered_rps": offered}
        step.update(summary(await open_loop(conns, rate, args.step_s)))
        step["holds"] = step_holds(step, offered_rps=offered, p99_ms=args.p99_ms)
        ladder.append(step)
        if not step["holds"]:
            break
        sustained = offered
    result.update(ladder=ladder, sustained_rps=sustained)
    for conn in conns:
        conn.close()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--host", required=True)
    add("--path", required=True)
    add("--body", required=True, help="JSON body of every POST")
    add("--users", type=int, default=64)
    add("--requests", type=int, default=10, help="closed loop: POSTs per user (0: skip)")
    add("--rates", default="1,2,4,8", help="ladder: POSTs per second per user ('' to skip)")
    add("--step-s", type=float, default=3.0, help="ladder: seconds per step")
    add("--p99-ms", type=float, default=50.0, help="ladder: p99 limit of a holding step")
    add("--out", required=True)
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
