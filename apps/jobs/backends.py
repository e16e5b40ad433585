"""The jobs app's one door to the job backends (publishing and the relay).

apps/jobs never imports `tasks` (the worker imports apps/jobs, one way): the backend
registry is named in settings.JOB_BACKEND_REGISTRY and resolved by dotted path, like
DATABASES' engines. What services ask of a backend is the `Publisher` below; the full
contract is tasks/backends/base.py.
"""

from collections.abc import Callable
from typing import Protocol
from uuid import UUID

from django.conf import settings
from django.utils.module_loading import import_string


class Publisher(Protocol):
    alias: str
    row_is_message: bool  # the job row is the message: nothing to resend when overdue

    def hand_over(self, job_id: UUID, *, mark_queued: Callable[[], None]) -> None: ...


def _registry(name: str) -> Callable:
    return import_string(f"{settings.JOB_BACKEND_REGISTRY}.{name}")


def backend_get(alias: str) -> Publisher:
    """The backend instance for `alias` (created once per process by the registry)."""
    backend: Publisher = _registry("get_backend")(alias)
    return backend


def backend_aliases() -> list[str]:
    """Aliases a worker can serve (settings.JOB_BACKENDS minus in-process test ones)."""
    aliases: list[str] = _registry("backend_aliases")()
    return aliases
