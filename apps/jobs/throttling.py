"""Per-token request rate (settings.API_THROTTLE_RATE); 429 with Retry-After beyond it."""

from django.conf import settings
from rest_framework.throttling import UserRateThrottle

from apps.jobs.permissions import can_run_bench


class TokenRateThrottle(UserRateThrottle):
    """Counts requests per user (so per token), in the default cache (local memory: each
    API process counts its own). The rate is read from settings on every request (DRF
    reads it once at import), so tests and deployments can change it. Staff and bench
    users are exempt (the bench drives hundreds of users through one token)."""

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATE or None

    def allow_request(self, request, view) -> bool:
        if can_run_bench(request.user):
            return True
        return super().allow_request(request, view)
