"""Create the API user the lab's own clients use (bench, locust, demo) and its token.

    python manage.py ensure_api_token              # user `bench`, token into .env
    python manage.py ensure_api_token --user alice --no-bench --no-env

The user gets the bench permission (noop, fail, sleep:S and cpu:S workloads; no rate
limit) unless --no-bench. The token is written as OCRLAB_API_TOKEN to .env, which the
settings, the bench, locust and `demo` read (ocrproject.env.api_auth_headers()).
When OCRLAB_API_TOKEN is already set (the environment, or .env from an earlier set-up),
that key becomes the user's token, so a compose stack can hand one key to every service.
The output says where the token is, never the token itself (it would end up in logs),
except with --no-env when a token is newly made: it is printed once, as nothing else
holds it.
"""

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from apps.jobs.permissions import BENCH_PERMISSION
from ocrproject.env import API_TOKEN_ENV, dotenv_set


def bench_permission() -> Permission:
    app_label, codename = BENCH_PERMISSION.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def ensure_api_user(*, username: str, bench: bool, key: str = "") -> Token:
    """The user (no password: it logs in with its token only) and its token."""
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    if bench:
        user.user_permissions.add(bench_permission())
    wanted = key if key and not Token.objects.filter(key=key).exclude(user=user).exists() else ""
    token = Token.objects.filter(user=user).first()
    if token is not None and wanted and token.key != wanted:
        token.delete()
        token = None
    return token or Token.objects.create(user=user, **({"key": wanted} if wanted else {}))


class Command(BaseCommand):
    help = "Create the API user `bench` with the bench permission and its token (into .env)."

    def add_arguments(self, parser):
        parser.add_argument("--user", default="bench")
        parser.add_argument("--no-bench", action="store_true", help="no bench permission")
        parser.add_argument("--no-env", action="store_true", help="do not write .env")

    def handle(self, *args, user: str, no_bench: bool, no_env: bool, **options):
        key = os.environ.get(API_TOKEN_ENV, "").strip()
        existing = set(Token.objects.filter(user__username=user).values_list("key", flat=True))
        token = ensure_api_user(username=user, bench=not no_bench, key=key)
        if not no_env:
            dotenv_set(settings.BASE_DIR / ".env", API_TOKEN_ENV, token.key)
            where = f"in .env ({API_TOKEN_ENV})"
        elif token.key == key:
            where = f"from the environment ({API_TOKEN_ENV})"
        elif token.key in existing:
            where = "unchanged (not shown; see the admin's Tokens)"
        else:
            where = f"new (shown once, stored nowhere): {token.key}"
        self.stdout.write(f"API user {user!r}: token {where}")
