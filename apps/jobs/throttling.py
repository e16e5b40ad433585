"""Per-token request rate (settings.API_THROTTLE_RATE); 429 with Retry-After beyond it."""

from django.conf import settings
from rest_framework.throttling import UserRateThrottle

from apps.jobs.permissions import can_run_bench


class TokenRateThrottle(UserRateThrottle):
    """Counts requests per user (so per token) or per client address when anonymous.

    The rate is read from settings on every request (DRF reads it once at import), so
    tests and the bench can change it. Staff and bench users are exempt: their permission
    is looked up only when they are over the rate, so ordinary requests cost no query.
    """

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATE or None

    def allow_request(self, request, view) -> bool:
        if super().allow_request(request, view):
            return True
        return can_run_bench(request.user)
