"""Who may do what: a job belongs to its submitter; bench workloads need a permission."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from rest_framework.exceptions import PermissionDenied

# OcrJob.Meta.permissions; granted to the `bench` user by `manage.py ensure_api_token`.
BENCH_PERMISSION = "jobs.run_bench_workloads"
PUBLIC_WORKLOADS = frozenset({"ocr"})


def can_run_bench(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Staff, or holders of the bench permission (noop, fail, sleep:S, cpu:S workloads)."""
    return bool(user.is_authenticated and (user.is_staff or user.has_perm(BENCH_PERMISSION)))


def check_workload_allowed(*, user: AbstractBaseUser | AnonymousUser, workload: str) -> None:
    """403 for a synthetic workload unless the caller may run bench workloads."""
    if workload not in PUBLIC_WORKLOADS and not can_run_bench(user):
        raise PermissionDenied(
            f"workload {workload!r} is a bench workload: it needs staff or the "
            f"{BENCH_PERMISSION!r} permission; other users may submit 'ocr' only"
        )
