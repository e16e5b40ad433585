from django.apps import AppConfig


class WorkerConfig(AppConfig):
    """The worker as a Django app: only for its `runworker` command (no models)."""

    name = "tasks"
    label = "worker"
    verbose_name = "Worker"
