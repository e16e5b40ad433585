"""Who may do what: a job belongs to its submitter; bench workloads need a permission.

Being staff grants nothing here: staff only opens the admin's door, and what a staff user
may do there comes from its permissions, like anywhere else (README "Access control").
"""

from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache
from rest_framework.exceptions import PermissionDenied

# OcrJob.Meta.permissions; granted to the `bench` user by `manage.py ensure_api_token`.
BENCH_PERMISSION = "jobs.run_bench_workloads"
# The model's view permission (the one that shows every job in the admin) shows every job
# in the API too; without it a user sees its own jobs only.
VIEW_ALL_PERMISSION = "jobs.view_ocrjob"
PUBLIC_WORKLOADS = frozenset({"ocr"})
# The answer is kept this long per API process (the bench's submits would otherwise pay two
# permission queries each); a grant or revoke takes effect within it.
PERMISSION_CACHE_S = 30


def can_run_bench(user: User | AnonymousUser) -> bool:
    """Holders of the bench permission (noop, fail, sleep:S, cpu:S workloads; no rate
    limit); superusers hold every permission."""
    if not user.is_authenticated:
        return False
    key = f"ocrlab:bench-permission:{user.pk}"
    allowed = cache.get(key)
    if allowed is None:
        allowed = user.has_perm(BENCH_PERMISSION)
        cache.set(key, allowed, PERMISSION_CACHE_S)
    return allowed


def check_workload_allowed(*, user: User | AnonymousUser, workload: str) -> None:
    """403 for a synthetic workload unless the caller may run bench workloads."""
    if workload not in PUBLIC_WORKLOADS and not can_run_bench(user):
        raise PermissionDenied(
            f"workload {workload!r} is a bench workload: it needs the "
            f"{BENCH_PERMISSION!r} permission; other users may submit 'ocr' only"
        )


def can_view_all_jobs(user: User | AnonymousUser) -> bool:
    """Holders of the model's view permission see every job; others their own."""
    return user.is_authenticated and user.has_perm(VIEW_ALL_PERMISSION)
