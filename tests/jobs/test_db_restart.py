"""A PostgreSQL restart is a blip: the real API (uvicorn, 2 processes) on a PRIVATE
PostgreSQL that this test starts, stops, starts again and removes (never the shared one).
Long-polls, submits and status reads run throughout: no 500 at any point, 503 while the
database is away, and within RECOVERY_S of its return every request answers 200/202 again."""

import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from apps.ops import launch

pytestmark = pytest.mark.timeout(120)
PG_BIN = (
    Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])
    if Path("/usr/lib/postgresql").exists()
    else None
)
DOWN_S = 12.0  # long enough for psycopg_pool's default backoff to outlast it
RECOVERY_S = 15.0
STEADY_S = 3.0
LONG_POLLS, SUBMITTERS, READERS = 8, 20, 4


class PrivatePostgres:
    """A throw-away cluster in `root` on `port`, run as the postgres user when root."""

    def __init__(self, root: Path, port: int):
        self.data, self.port = root / "data", port
        self.log = root / "postgres.log"

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if _is_root() else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if _is_root():  # the postgres user must own the data directory
            shutil.chown(self.data.parent, user="postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                  "-o", options, "start")  # fmt: skip

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/ocrlab"


def _is_root() -> bool:
    return subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0"


@pytest.fixture
def private_pg():
    if PG_BIN is None:
        pytest.fail("PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin)")
    root = Path(tempfile.mkdtemp(prefix="ocrlab-private-pg-"))  # reachable by postgres
    pg = PrivatePostgres(root, launch.free_port())
    pg.init()
    pg.start()
    try:
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-c",
             "CREATE DATABASE ocrlab"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        yield pg
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(pg.data),
             "-m", "immediate", "stop"],
            capture_output=True, timeout=30,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        launch.manage_command(*args), cwd=launch.ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


MAKE_USER = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
user = User.objects.create_user("chaos")
user.user_permissions.add(Permission.objects.get(codename="unlimited"))
print(Token.objects.create(user=user).key)
"""


class Load:
    """Bounded client loops in threads; every answer's status (or error) is recorded."""

    def __init__(self, base: str, token: str):
        self.base, self.headers = base, {"Authorization": f"Token {token}"}
        self.stop = threading.Event()
        self.log: list[tuple[float, str, int | str]] = []
        self.lock = threading.Lock()

    def record(self, kind: str, code: int | str) -> None:
        with self.lock:
            self.log.append((time.monotonic(), kind, code))

    def call(self, client: httpx.Client, kind: str, method: str, url: str, **kw) -> None:
        try:
            code: int | str = client.request(method, url, **kw).status_code
        except httpx.HTTPError as exc:
            code = type(exc).__name__
        self.record(kind, code)
        if code != 200 and code != 202:
            self.stop.wait(0.2)

    def loop(self, kind: str, method: str, url: str, **kw) -> None:
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=30) as client:
            while not self.stop.is_set():
                self.call(client, kind, method, url, **kw)
                self.stop.wait(0.05)

    def run(self, job_id: str) -> list[threading.Thread]:
        body = {"pdfName": "sample.pdf", "backend": "db"}
        jobs = [
            *[("long-poll", "GET", f"/api/jobs/{job_id}?wait=3", {})] * LONG_POLLS,
            *[("submit", "POST", "/api/jobs", {"json": body})] * SUBMITTERS,
            *[("status", "GET", f"/api/jobs/{job_id}", {})] * READERS,
        ]
        threads = [
            threading.Thread(target=self.loop, args=(kind, method, url), kwargs=kw, daemon=True)
            for kind, method, url, kw in jobs
        ]
        for thread in threads:
            thread.start()
        return threads


def test_a_postgresql_restart_is_a_blip(private_pg, tmp_path):
    env = {
        "DATABASE_URL": private_pg.url,
        "JOB_REQUIRE_LIVE_WORKER": "0",
        "DB_POOL_TIMEOUT_S": "5",
        "DJANGO_DEBUG": "1",
    }
    started = time.monotonic()
    full_env = {**launch.os.environ, **env}
    token = _manage(full_env, "shell", "-c", MAKE_USER).splitlines()[-1]
    port = launch.free_port()
    base = f"http://127.0.0.1:{port}"
    with launch.ServerGroup(tmp_path, env=env) as group:
        group.start("api", launch.api_command(port=port), ready_url=f"{base}/healthz")
        headers = {"Authorization": f"Token {token}"}
        first = httpx.post(f"{base}/api/jobs", json={"pdfName": "sample.pdf", "backend": "db"},
                           headers=headers, timeout=30)  # fmt: skip
        assert first.status_code == 202, first.text
        load = Load(base, token)
        threads = load.run(first.json()["id"])
        try:
            time.sleep(2)
            private_pg.stop()
            time.sleep(DOWN_S)
            private_pg.start()
            back = time.monotonic()
            print(f"set-up {back - started - 2 - DOWN_S:.1f}s")
            time.sleep(RECOVERY_S + STEADY_S)
        finally:
            load.stop.set()
            for thread in threads:
                thread.join(35)
    codes = Counter(code for _, _, code in load.log)
    after = [code for at, _, code in load.log if at > back]
    print(f"answers: {dict(codes)}; after the return: {dict(Counter(after))}")
    assert 500 not in codes and not any(isinstance(c, str) for c in codes), codes
    assert set(codes) <= {200, 202, 503}, codes
    steady = [(kind, code) for at, kind, code in load.log if at > back + RECOVERY_S]
    assert steady and all(code in (200, 202) for _, code in steady), Counter(steady)
    kinds = {kind for kind, _ in steady}
    assert kinds == {"long-poll", "submit", "status"}, kinds
