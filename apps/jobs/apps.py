from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from apps.jobs import versions


def check_version_backends(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Every queue version's backend alias (apps/jobs/versions.py) is in JOB_BACKENDS."""
    return [
        checks.Error(
            f"version {name} submits to backend {alias!r}, which is not in settings.JOB_BACKENDS",
            hint="add the alias to JOB_BACKENDS or change the version in apps/jobs/versions.py",
            id="jobs.E001",
        )
        for name, alias in versions.version_backends().items()
        if alias not in settings.JOB_BACKENDS
    ]


class JobsConfig(AppConfig):
    name = "apps.jobs"
    verbose_name = "OCR jobs"

    def ready(self) -> None:
        checks.register(check_version_backends)
