"""Health, readiness, metrics (no login; OPS_ALLOWED_NETWORKS may restrict the last two)
and the staff dashboard."""

import ipaddress
from functools import wraps

from django.conf import settings
from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from apps.ops import checks, queries
from apps.ops.metrics import registry

DASHBOARD_REFRESH_S = 5
FINISHED_WINDOW_S = 60


def client_allowed(request: HttpRequest) -> bool:
    """True when OPS_ALLOWED_NETWORKS is empty or holds the client's address."""
    networks = settings.OPS_ALLOWED_NETWORKS
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


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
    """Database and every configured broker reachable: 200, else 503; status per dependency."""
    ready, statuses = checks.readiness()
    body = {"status": "ready" if ready else "unavailable", "checks": statuses}
    return JsonResponse(body, status=200 if ready else 503)


@never_cache
@require_GET
@restricted
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, computed from the job rows."""
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def dashboard_snapshot() -> dict:
    """What the dashboard shows, as plain data (also served as JSON)."""
    depth = queries.queue_depth()
    return {
        "queue_depth": {alias: depth.get(alias, 0) for alias in settings.JOB_BACKENDS},
        "live_workers": queries.live_workers(),
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
