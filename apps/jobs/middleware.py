"""HTTP answers for a database that is busy or away: 503 with Retry-After, never a 500.

A pool timeout (every pooled connection lent out for DB_POOL_TIMEOUT_S) answers `db_busy`;
a connection that failed or was lost (PostgreSQL restarting) answers `db_unavailable`.
Both are passing states: the client may send the request again after Retry-After.
"""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from django.views import defaults
from psycopg import InterfaceError as PsycopgInterfaceError
from psycopg import OperationalError as PsycopgOperationalError
from psycopg_pool import PoolTimeout

RETRY_AFTER_S = 1
UNAVAILABLE = (
    OperationalError,
    InterfaceError,
    PsycopgOperationalError,
    PsycopgInterfaceError,
    PoolTimeout,
)


def is_pool_timeout(exc: BaseException) -> bool:
    """True when `exc` is Django's wrapper of psycopg_pool's PoolTimeout (or the timeout)."""
    if isinstance(exc, PoolTimeout):
        return True
    return isinstance(exc, OperationalError) and isinstance(exc.__cause__, PoolTimeout)


def database_unavailable_response(exc: BaseException) -> JsonResponse | None:
    """The 503 for a database error that says "try again", else None."""
    if not isinstance(exc, UNAVAILABLE):
        return None
    if is_pool_timeout(exc):
        body = {"detail": "the database is busy; retry shortly", "code": "db_busy"}
    else:
        body = {"detail": "the database is unavailable; retry shortly", "code": "db_unavailable"}
    response = JsonResponse(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """Maps a view's database outage to 503 + Retry-After (handler500 covers the rest).
    With DEBUG on, Django answers an unknown URL with a page listing every URL pattern
    (handler404 is skipped then): that answer becomes the plain 404 too."""

    def process_exception(self, request, exception):
        return database_unavailable_response(exception)

    def process_response(self, request, response):
        if response.status_code == 404 and getattr(request, "resolver_match", None) is None:
            return not_found(request)
        return response


def server_error(request: HttpRequest):
    """handler500: an outage raised outside a view (a middleware, a session save) is a 503
    too; anything else is Django's plain 500 page."""
    exc = sys.exc_info()[1]
    response = database_unavailable_response(exc) if exc is not None else None
    return response or defaults.server_error(request)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler404 (also with DEBUG on): a plain JSON 404, never the list of URL patterns."""
    return JsonResponse({"detail": "Not found."}, status=404)
