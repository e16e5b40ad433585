"""Job files on disk, confined to MEDIA_ROOT: a filesystem guard shared by services,
selectors and the workload process (which never loads services or the registry)."""

from pathlib import Path

from django.conf import settings


def media_path(name: str) -> Path | None:
    """`name` resolved under MEDIA_ROOT, or None if it escapes it (`../`, absolute, links)."""
    if not name:
        return None
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / name).resolve()
    return path if path.is_relative_to(root) and path != root else None
