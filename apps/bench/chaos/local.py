"""Chaos runs on local services only: check that every server the chosen backends need
(and the database) is on loopback before anything is stopped.

Stopping and starting a server is the server's own business (tasks/backends/services.py:
each is found by the port of its URL, so a private set started by
scripts/chaos_services.sh keeps a chaos run away from the lab's shared services).
"""

from __future__ import annotations

import ipaddress

from tasks.backends.registry import get_backend
from tasks.backends.services import Postgres, Service

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class NotLocal(RuntimeError):
    """An address chaos would disturb is not on this machine's loopback."""


def is_loopback(host: str) -> bool:
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def services_of(backends: list[str]) -> list[Service]:
    """The database, then each distinct server the backends need."""
    found: dict[Service, None] = {Postgres(): None}
    for alias in backends:
        found.update(dict.fromkeys(get_backend(alias).services()))
    return list(found)


def require_local(services: list[Service]) -> None:
    """Raise NotLocal unless every server in `services` is on loopback."""
    for service in services:
        for part in service.url.split(","):
            address = Service(part).address
            host = address[0] if address else part.strip()
            if not is_loopback(host):
                raise NotLocal(
                    f"{service.kind} at {service.url}: {host} is not a loopback address; "
                    "chaos restarts the services it uses, so it runs on local ones only"
                )


def service_urls(backends: list[str]) -> dict[str, str]:
    """{server kind (numbered when several): URL}, for the run's record."""
    urls: dict[str, str] = {}
    for service in services_of(backends):
        same = sum(1 for key in urls if key.split("-")[0] == service.kind)
        urls[f"{service.kind}-{same + 1}" if same else service.kind] = service.url
    return urls
