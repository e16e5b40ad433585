"""Per-token request rate (settings.API_THROTTLE_RATE); 429 with Retry-After beyond it."""

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import UserRateThrottle

from apps.jobs.clientip import client_ip
from apps.jobs.quotas import is_unlimited


class TokenRateThrottle(UserRateThrottle):
    """Counts requests per user (so per token), anonymous ones per client address, in the
    `shared` cache (a database table): every API process counts against one budget. The
    rate is read from settings on every request (DRF reads it once at import), so tests
    and deployments can change it. Holders of the unlimited or the bench permission are
    exempt (the bench drives hundreds of users through one token)."""

    def __init__(self):
        self.cache = caches["shared"]
        super().__init__()

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATE or None

    def get_ident(self, request) -> str:
        return client_ip(request)

    def allow_request(self, request, view) -> bool:
        if is_unlimited(request.user):
            return True
        return super().allow_request(request, view)
