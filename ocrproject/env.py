"""Reading settings from the environment (and an optional `.env` file at the repo root)."""

import os
from pathlib import Path


def read_dotenv(path: Path) -> dict[str, str]:
    """The KEY=VALUE lines of a .env file (comments and blank lines skipped); {} if none."""
    if not path.is_file():
        return {}
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def load_dotenv(path: Path) -> None:
    """Set variables from a KEY=VALUE file without overriding the real environment."""
    for key, value in read_dotenv(path).items():
        os.environ.setdefault(key, value)


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


API_TOKEN_ENV = "OCRLAB_API_TOKEN"


def api_auth_headers() -> dict[str, str]:
    """Headers for the lab's own API clients (bench, locust, demo): DRF token auth from
    OCRLAB_API_TOKEN (written to .env by the set-up), or none when it is not set."""
    token = os.environ.get(API_TOKEN_ENV, "").strip()
    return {"Authorization": f"Token {token}"} if token else {}


DOTENV_MODE = 0o600  # it holds secrets: readable by its owner only


def dotenv_set(path: Path, key: str, value: str) -> None:
    """Create or replace the `KEY=value` line of a .env file (other lines kept); the file
    is (re)written readable by its owner only."""
    lines = path.read_text().splitlines() if path.is_file() else []
    kept = [line for line in lines if line.partition("=")[0].strip() != key]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, DOTENV_MODE)
    os.fchmod(descriptor, DOTENV_MODE)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(descriptor, "w") as stream:
        stream.write("\n".join([*kept, f"{key}={value}"]) + "\n")
    os.environ[key] = value
