"""HTTP answers for a database that is busy rather than broken."""

from django.db import OperationalError
from django.http import JsonResponse
from django.utils.deprecation import MiddlewareMixin
from psycopg_pool import PoolTimeout

RETRY_AFTER_S = 1


def is_pool_timeout(exc: BaseException) -> bool:
    """True when `exc` is Django's wrapper of psycopg_pool's PoolTimeout (or the timeout)."""
    if isinstance(exc, PoolTimeout):
        return True
    return isinstance(exc, OperationalError) and isinstance(exc.__cause__, PoolTimeout)


class PoolTimeoutMiddleware(MiddlewareMixin):
    """A request that waited DB_POOL_TIMEOUT_S for a pooled connection answers 503 with
    Retry-After (the server is overloaded, the request may be sent again), never 500."""

    def process_exception(self, request, exception):
        if not is_pool_timeout(exception):
            return None
        response = JsonResponse(
            {"detail": "the database is busy; retry shortly", "code": "db_busy"}, status=503
        )
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
