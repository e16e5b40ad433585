"""Create the lab's database if it is missing (and, on a fresh local PostgreSQL that
refuses password-less TCP logins, give the postgres role a local password)."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ocrproject.env import dotenv_set, load_dotenv  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/ocrlab"
LOCAL_PASSWORD = "postgres"


def admin_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def connect(url: str) -> psycopg.Connection:
    try:
        return psycopg.connect(admin_url(url), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if "password" not in str(exc) or urlsplit(url).password or os.getuid() != 0:
            raise SystemExit(f"cannot log in to PostgreSQL: {exc}") from exc
    url = with_local_password(url)
    return psycopg.connect(admin_url(url), autocommit=True, connect_timeout=5)


def with_local_password(url: str) -> str:
    """Fresh Debian PostgreSQL: peer/scram auth. Set a password over the local socket."""
    sql = f"ALTER USER postgres PASSWORD '{LOCAL_PASSWORD}'"
    subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-qc", sql], check=True)
    parts = urlsplit(url)
    netloc = f"postgres:{LOCAL_PASSWORD}@{parts.hostname}:{parts.port or 5432}"
    url = urlunsplit(parts._replace(netloc=netloc))
    dotenv_set(ROOT / ".env", "DATABASE_URL", url)  # readable by its owner only
    print("==> PostgreSQL needs a password here; wrote DATABASE_URL to .env", file=sys.stderr)
    return url


def main() -> None:
    load_dotenv(ROOT / ".env")
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    name = urlsplit(url).path.lstrip("/")
    with connect(url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"==> created database {name}", file=sys.stderr)


if __name__ == "__main__":
    main()
