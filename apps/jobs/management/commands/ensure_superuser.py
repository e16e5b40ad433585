"""Create (or update) the admin user DJANGO_SUPERUSER_USERNAME (default `admin`).

The password comes from DJANGO_SUPERUSER_PASSWORD; when it is unset, one is generated and
stored in .env as DJANGO_SUPERUSER_PASSWORD (so later runs keep it). The output says where
the password is, never the password itself (it would end up in logs), except with
--no-env: a generated password is then printed once, as nothing else holds it.
"""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from ocrproject.env import dotenv_set

PASSWORD_ENV = "DJANGO_SUPERUSER_PASSWORD"


class Command(BaseCommand):
    help = "Create the superuser DJANGO_SUPERUSER_USERNAME with DJANGO_SUPERUSER_PASSWORD."

    def add_arguments(self, parser):
        parser.add_argument("--no-env", action="store_true", help="do not write .env")

    def handle(self, *args, no_env: bool, **options):
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        password = os.environ.get(PASSWORD_ENV, "")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
            if not no_env:
                dotenv_set(settings.BASE_DIR / ".env", PASSWORD_ENV, password)
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"email": email}
        )
        user.set_password(password)
        user.is_staff = user.is_superuser = True
        user.save()
        action = "created" if created else "updated"
        self.stdout.write(f"superuser {username!r} {action}; {_where(generated, no_env, password)}")


def _where(generated: bool, no_env: bool, password: str) -> str:
    if not generated:
        return f"password from the environment ({PASSWORD_ENV})"
    if no_env:
        return f"generated password (shown once, stored nowhere): {password}"
    return f"password generated into .env ({PASSWORD_ENV})"
