"""Backends by alias, from `settings.JOB_BACKENDS` (resolved like DATABASES). Changing
JOB_BACKENDS (override_settings in tests) forgets the instances built from the old one."""

import threading

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from tasks.backends.base import Backend

_cache: dict[str, Backend] = {}
_lock = threading.Lock()


class UnknownBackend(ValueError):
    pass


def backend_aliases() -> list[str]:
    """Aliases a worker command can serve (not the in-process `memory` test backend,
    marked "IN_PROCESS": True, which get_backend still resolves)."""
    return [a for a, conf in settings.JOB_BACKENDS.items() if not conf.get("IN_PROCESS")]


def get_backend(alias: str) -> Backend:
    """The backend instance for `alias`, created once per process."""
    with _lock:
        if alias not in _cache:
            _cache[alias] = _build(alias)
        return _cache[alias]


def _build(alias: str) -> Backend:
    try:
        conf = settings.JOB_BACKENDS[alias]
    except KeyError:
        known = ", ".join(backend_aliases())
        raise UnknownBackend(f"unknown backend {alias!r}; choose one of: {known}") from None
    cls = import_string(conf["BACKEND"])
    return cls(alias, conf.get("OPTIONS", {}))


def reset_backends() -> None:
    """Close and forget every backend of this process (after a fork, in tests)."""
    with _lock:
        for backend in _cache.values():
            backend.close()
        _cache.clear()


def _forget_on_change(*, setting: str, **kwargs) -> None:
    if setting == "JOB_BACKENDS":
        reset_backends()


setting_changed.connect(_forget_on_change, dispatch_uid="tasks.backends.registry")
