"""The local set-up's users: the bench token and the admin password land in .env; the
production settings pass `check --deploy`."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from apps.jobs.permissions import BENCH_PERMISSION, can_run_bench

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.django_db


@pytest.fixture
def dotenv(settings, tmp_path, monkeypatch):
    """A scratch .env; the variables the commands set are restored after the test."""
    settings.BASE_DIR = tmp_path
    for name in ("OCRLAB_API_TOKEN", "DJANGO_SUPERUSER_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / ".env"
    path.write_text("DJANGO_DEBUG=1\nOCRLAB_API_TOKEN=stale\n")
    return path


def test_ensure_api_token_makes_the_bench_user_and_writes_env(dotenv, capsys):
    call_command("ensure_api_token")
    user = get_user_model().objects.get(username="bench")
    key = Token.objects.get(user=user).key
    assert user.has_perm(BENCH_PERMISSION) and can_run_bench(user)
    assert not user.has_usable_password()
    assert dotenv.read_text().splitlines() == ["DJANGO_DEBUG=1", f"OCRLAB_API_TOKEN={key}"]
    call_command("ensure_api_token")  # idempotent: same token, one line
    assert dotenv.read_text().count("OCRLAB_API_TOKEN=") == 1 and key in dotenv.read_text()
    output = capsys.readouterr().out
    assert key not in output
    assert "in .env (OCRLAB_API_TOKEN)" in output


def test_dotenv_is_written_readable_by_its_owner_only(dotenv):
    dotenv.chmod(0o644)
    call_command("ensure_api_token")
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600


def test_ensure_api_token_without_env_shows_a_new_token_once(dotenv, capsys):
    call_command("ensure_api_token", "--no-env")
    key = Token.objects.get(user__username="bench").key
    assert key in capsys.readouterr().out
    call_command("ensure_api_token", "--no-env")
    assert key not in capsys.readouterr().out


def test_ensure_api_token_takes_the_key_from_the_environment(dotenv, monkeypatch):
    """compose hands one OCRLAB_API_TOKEN to every service: that key becomes the token."""
    call_command("ensure_api_token", "--no-env")
    monkeypatch.setenv("OCRLAB_API_TOKEN", "a" * 40)
    call_command("ensure_api_token", "--no-env")
    assert Token.objects.get(user__username="bench").key == "a" * 40


def test_drf_create_token_works(dotenv):
    get_user_model().objects.create_user("carol")
    call_command("drf_create_token", "carol")
    assert Token.objects.filter(user__username="carol").exists()


def test_ensure_superuser_generates_and_keeps_a_password(dotenv, monkeypatch, capsys):
    call_command("ensure_superuser")
    line = next(x for x in dotenv.read_text().splitlines() if x.startswith("DJANGO_SUPER"))
    password = line.split("=", 1)[1]
    output = capsys.readouterr().out
    assert len(password) >= 12 and password not in output
    assert "password generated into .env (DJANGO_SUPERUSER_PASSWORD)" in output
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "from-the-environment")
    call_command("ensure_superuser")
    admin.refresh_from_db()
    assert admin.check_password("from-the-environment")
    assert "from-the-environment" not in capsys.readouterr().out


def test_setup_writes_a_private_env_with_debug_off():
    script = (ROOT / "scripts" / "setup.sh").read_text()
    body = script[script.index("write_env() {") :]
    assert "DJANGO_DEBUG=0" in body and "DJANGO_DEBUG=1" not in body
    assert "umask 077" in body and "chmod 600" in body


PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "x" * 60 + "-not-a-real-production-key-0123456789",
    "DJANGO_ALLOWED_HOSTS": "ocr.example.org",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://ocr.example.org",
    # the production defaults, spelled out: the local .env (scripts/setup.sh) turns them off
    "DJANGO_SSL_REDIRECT": "1",
    "DJANGO_SECURE_COOKIES": "1",
    "DJANGO_HSTS_SECONDS": "31536000",
}


def test_check_deploy_is_clean_in_production_mode():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**os.environ, **PRODUCTION},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
