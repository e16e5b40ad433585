"""Health (open), readiness and metrics (clients in OPS_ALLOWED_NETWORKS only, loopback by
default; answered from a snapshot at most OPS_CACHE_S old) and the staff dashboard."""

import logging
from functools import wraps

from django.conf import settings
from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from apps.jobs.clientip import client_ip, in_networks
from apps.ops import checks, queries
from apps.ops.metrics import registry
from apps.ops.snapshot import Snapshot

log = logging.getLogger(__name__)
DASHBOARD_REFRESH_S = 5
FINISHED_WINDOW_S = 60


def client_allowed(request: HttpRequest) -> bool:
    """True when the client's address (apps/jobs/clientip.py) is in OPS_ALLOWED_NETWORKS."""
    return in_networks(client_ip(request), settings.OPS_ALLOWED_NETWORKS)


def restricted(view):
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not client_allowed(request):
            return HttpResponseForbidden("not allowed from this address\n")
        return view(request, *args, **kwargs)

    return wrapper


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving (touches no dependency)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
@restricted
def readyz(request: HttpRequest) -> JsonResponse:
    """Database and every configured broker reachable: 200, else 503; "ok" or "fail" per
    dependency (no addresses, no errors: those go to the log)."""
    ready, statuses = READINESS.get()
    body = {"status": "ready" if ready else "unavailable", "checks": statuses}
    return JsonResponse(body, status=200 if ready else 503)


@never_cache
@require_GET
@restricted
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, computed from the job rows."""
    return HttpResponse(METRICS.get(), content_type=CONTENT_TYPE_LATEST)


def _readiness() -> tuple[bool, dict[str, str]]:
    ready, statuses = checks.readiness()
    for name, status in statuses.items():
        if not status["ok"]:
            log.warning("readiness: %s failed: %s", name, status.get("error"))
    return ready, {name: "ok" if status["ok"] else "fail" for name, status in statuses.items()}


READINESS = Snapshot(_readiness)
METRICS = Snapshot(lambda: generate_latest(registry))


def dashboard_snapshot() -> dict:
    """What the dashboard shows, as plain data (also served as JSON)."""
    depth = queries.queue_depth()
    busy = queries.live_workers()
    return {
        "queue_depth": {alias: depth.get(alias, 0) for alias in settings.JOB_BACKENDS},
        "live_workers": busy,
        "idle_workers": queries.idle_workers(busy={row["worker"] for row in busy}),
        "finished_last_minute": queries.finished_since(seconds=FINISHED_WINDOW_S),
        "recent_failures": queries.recent_failures(),
    }


@never_cache
def dashboard(request: HttpRequest) -> TemplateResponse:
    context = {
        **admin.site.each_context(request),
        "title": "Operations dashboard",
        "refresh_s": DASHBOARD_REFRESH_S,
        "window_s": FINISHED_WINDOW_S,
        **dashboard_snapshot(),
    }
    return TemplateResponse(request, "ops/dashboard.html", context)


@never_cache
def dashboard_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dashboard_snapshot(), encoder=DjangoJSONEncoder)
