"""The Docker stack cannot run here (no engine), so check it statically."""

from pathlib import Path

import pytest
import yaml
from django.conf import settings

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
    assert set(settings.JOB_BACKENDS) <= served


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
