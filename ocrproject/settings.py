"""Settings: every address comes from the environment, with defaults for a local machine."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from psycopg_pool import ConnectionPool

from ocrproject.env import env_bool, env_float, env_int, env_list, env_str, load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env")

# Tesseract's OpenMP threads: one per process, so N worker processes scale on N cores.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it (`make setup` writes a .env with one), "
            "or set DJANGO_DEBUG=1 for a throwaway local run."
        )
    SECRET_KEY = "insecure-local-development-key"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto (README "Configuration").
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
    if env_bool("DJANGO_BEHIND_PROXY", True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Health probes and the internal API -> OCR server hop stay plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$", r"^ocr/predict$"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from local static files
    "django_tasks_db",  # the `django-tasks` backend's task table and db_worker
    "procrastinate.contrib.django",  # the `procrastinate` backend's tables and app
    "apps.ocr",
    "apps.jobs",
    "apps.bench",
    "apps.ops",
    "tasks",  # the worker: its runworker command
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from the ASGI/WSGI app
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.jobs.middleware.DatabaseUnavailableMiddleware",
]

# The OCR servers run with DJANGO_ROOT_URLCONF=ocrproject.ocr_urls (apps/ops/launch.py):
# /ocr/predict lives there only.
ROOT_URLCONF = env_str("DJANGO_ROOT_URLCONF", "ocrproject.urls")
WSGI_APPLICATION = "ocrproject.wsgi.application"
ASGI_APPLICATION = "ocrproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ocrlab")
# Connections: a psycopg pool per process, bounded by DB_POOL_MAX_SIZE. Under ASGI every
# concurrent request runs in a thread of its own; persistent per-thread connections
# (CONN_MAX_AGE) piled up there until PostgreSQL refused clients. With the pool a request
# borrows a connection and gives it back when it ends (CONN_MAX_AGE must then be 0); a
# request that waits longer than DB_POOL_TIMEOUT_S for one answers 503 + Retry-After.
# The connection budget of every process is in README "Configuration".
DB_POOL = env_bool("DB_POOL", True)
DB_POOL_MIN_SIZE = env_int("DB_POOL_MIN_SIZE", 1)
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 4)
DB_POOL_TIMEOUT_S = env_float("DB_POOL_TIMEOUT_S", 10.0)
DB_POOL_MAX_IDLE_S = env_float("DB_POOL_MAX_IDLE_S", 60.0)
# A slot whose reconnect keeps failing (PostgreSQL down) is given up after this, instead of
# psycopg_pool's 300 s of ever-doubling retries: slots blocked in a long backoff after a
# restart kept every request waiting for DB_POOL_TIMEOUT_S (503 db_busy) for minutes. A
# request that finds the pool short grows it again at once, with a fresh backoff.
DB_POOL_RECONNECT_TIMEOUT_S = env_float("DB_POOL_RECONNECT_TIMEOUT_S", 5.0)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DB_POOL:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        # A connection is checked before it is lent: after a PostgreSQL restart the dead
        # ones are dropped and replaced instead of failing the request that got them.
        "check": ConnectionPool.check_connection,
        "min_size": DB_POOL_MIN_SIZE,
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": DB_POOL_TIMEOUT_S,
        "max_idle": DB_POOL_MAX_IDLE_S,
        "reconnect_timeout": DB_POOL_RECONNECT_TIMEOUT_S,
    }
if os.environ.get("OCRLAB_TEST_DB_NAME"):  # set by tests/pytest_env.py: one per test run
    DATABASES["default"]["TEST"] = {"NAME": os.environ["OCRLAB_TEST_DB_NAME"]}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

VAR_DIR = Path(env_str("OCRLAB_VAR_DIR", str(BASE_DIR / "var")))
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# WhiteNoise serves STATIC_ROOT (filled by `collectstatic`; with DEBUG on it also finds
# files in the apps). Unhashed names, so templates render before any collectstatic has run.
# Pre-compressing (gzip + brotli) takes minutes on 2 busy cores: the image turns it on with
# STATICFILES_BACKEND=whitenoise.storage.CompressedStaticFilesStorage.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env_str(
            "STATICFILES_BACKEND", "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "apps.ocr.parsers.BoundedJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    # Token for clients (`Authorization: Token ...`), session for the browsable API.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["apps.jobs.throttling.TokenRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "apps.jobs.pagination.JobPagination",
}
# Requests per token (DRF rate: N/s, N/min, N/hour); empty = no limit. Holders of the
# bench or the unlimited permission are exempt. Counted in the `shared` cache (a table in
# the database), so every API process counts against the same budget.
API_THROTTLE_RATE = env_str("API_THROTTLE_RATE", "600/min")
# Anonymous clients are told apart by address: X-Forwarded-For is believed only when the
# connection comes from one of these proxies (CIDRs), and then only its last untrusted hop.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "")
# `default`: per-process memory (short-lived look-ups). `shared`: one table for all
# processes (the throttle's counters), created by the jobs app's migrations.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "ocrlab_cache",
        "OPTIONS": {"MAX_ENTRIES": 10_000},  # (each write counts the rows)
    },
}
# Per-user quotas (apps/jobs/quotas.py); holders of the unlimited or the bench permission
# are exempt. 0 = no limit.
QUOTA_JOBS_IN_FLIGHT = env_int("QUOTA_JOBS_IN_FLIGHT", 20)  # PENDING + QUEUED + RUNNING
QUOTA_STORED_BYTES = env_int("QUOTA_STORED_BYTES", 500 * 1024 * 1024)  # uploads + PDFs
QUOTA_RETRY_AFTER_S = env_int("QUOTA_RETRY_AFTER_S", 10)
# A submit to a backend with no live worker (no heartbeat within WORKER_HEARTBEAT_TTL_S) is
# refused with 409 `no_live_worker` unless the body says `"queue_without_worker": true`.
JOB_REQUIRE_LIVE_WORKER = env_bool("JOB_REQUIRE_LIVE_WORKER", True)
WORKER_HEARTBEAT_S = env_float("WORKER_HEARTBEAT_S", 5.0)
WORKER_HEARTBEAT_TTL_S = env_float("WORKER_HEARTBEAT_TTL_S", 20.0)
API_PAGE_SIZE = env_int("API_PAGE_SIZE", 50)
API_PAGE_MAX = env_int("API_PAGE_MAX", 500)
SPECTACULAR_SETTINGS = {
    "TITLE": "OCR job-queue lab",
    "DESCRIPTION": "One OCR task through sync calls (V0-V2) and job queues (V3-V6).",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",  # local assets: the docs render offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- services -------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = env_str("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
KAFKA_BOOTSTRAP_SERVERS = env_str("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
# Tansu (the local Kafka-protocol broker) finishes a group join after ~half the session
# timeout, so keep it short locally; a real Kafka cluster is happy with the default.
KAFKA_SESSION_TIMEOUT_MS = env_int("KAFKA_SESSION_TIMEOUT_MS", 6000)
KAFKA_PARTITIONS = env_int("KAFKA_PARTITIONS", 8)
# Names of queues, streams and topics get this prefix, so tests and benches stay apart.
QUEUE_PREFIX = env_str("OCRLAB_QUEUE_PREFIX", "ocrlab")

# --- OCR ------------------------------------------------------------------------------
OCR_SERVER_URLS = env_list("OCR_SERVER_URLS", "http://127.0.0.1:8101,http://127.0.0.1:8102")
OCR_V2_SERVERS = env_int("OCR_V2_SERVERS", len(OCR_SERVER_URLS))
OCR_HTTP_TIMEOUT_S = env_float("OCR_HTTP_TIMEOUT_S", 120.0)
OCR_LANGUAGES = env_list("OCR_LANGUAGES", "eng")
# "lab": the lab's engine (OCRmyPDF's Python API, one thread per job). "seed": the seed
# study's way (the ocrmypdf command line with its defaults, Tesseract threads uncapped;
# apps/ocr/seed_cli.py), only to reproduce the seed's numbers (runbench --engine-mode seed).
OCR_ENGINE_MODE = env_str("OCR_ENGINE_MODE", "lab")
if OCR_ENGINE_MODE not in ("lab", "seed"):
    raise ImproperlyConfigured(f"OCR_ENGINE_MODE must be lab or seed, not {OCR_ENGINE_MODE!r}")
OCR_PAGE_TIMEOUT_S = env_float("OCR_PAGE_TIMEOUT_S", 60.0)
OCR_MAX_IMAGE_MPIXELS = env_float("OCR_MAX_IMAGE_MPIXELS", 50.0)
OCR_MAX_PAGES = env_int("OCR_MAX_PAGES", 50)
# Page areas as OCRmyPDF rasterizes them (a PDF page's box at 400 dpi, an image's own size),
# checked from headers before anything is decoded (apps/ocr/limits.py). A4 or Letter at
# 400 dpi is ~15 megapixels, A3 ~31; a 25 x 25 inch vector page is 100.
OCR_MAX_PAGE_MPIXELS = env_float("OCR_MAX_PAGE_MPIXELS", 50.0)
OCR_MAX_TOTAL_MPIXELS = env_float("OCR_MAX_TOTAL_MPIXELS", 1000.0)
UPLOAD_MAX_BYTES = env_int("OCR_UPLOAD_MAX_BYTES", 20 * 1024 * 1024)
# JSON bodies (every POST endpoint): a job submission is well under 1 kB.
API_JSON_MAX_BYTES = env_int("API_JSON_MAX_BYTES", 64 * 1024)
API_JSON_MAX_DEPTH = env_int("API_JSON_MAX_DEPTH", 32)
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
# Any request body above this is refused with 413 before it is read (ocrproject/bodylimit.py,
# in front of Django on the API and the OCR servers): the upload limit plus multipart room.
REQUEST_MAX_BYTES = env_int("REQUEST_MAX_BYTES", UPLOAD_MAX_BYTES + 1024 * 1024)

# --- jobs -----------------------------------------------------------------------------
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3)
JOB_TIME_LIMIT_S = env_float("JOB_TIME_LIMIT_S", 300.0)
JOB_LEASE_S = env_float("JOB_LEASE_S", 30.0)
# A running job's heartbeat extends its lease every third of JOB_LEASE_S. Off (0) only to
# measure what a lease without renewal does to jobs longer than it (the long-jobs bench).
JOB_LEASE_RENEWAL = env_bool("JOB_LEASE_RENEWAL", True)
# `python manage.py purge_jobs` deletes finished jobs (rows, uploads, PDFs) older than this;
# the relay runs it every PURGE_INTERVAL_S (0: never). An unfinished job older than
# JOB_MAX_AGE_S is failed (error_code `expired`) by the same pass.
JOB_RETENTION_DAYS = env_float("JOB_RETENTION_DAYS", 7.0)
JOB_MAX_AGE_S = env_float("JOB_MAX_AGE_S", 86400.0)
PURGE_INTERVAL_S = env_float("PURGE_INTERVAL_S", 3600.0)
# Retry backoff (apps/jobs/retry.py): attempt n waits ~BASE * 2**(n-1) s, at most MAX.
JOB_RETRY_BASE_S = env_float("JOB_RETRY_BASE_S", 1.0)
JOB_RETRY_MAX_S = env_float("JOB_RETRY_MAX_S", 60.0)
# Address-space limit of the process that runs one job (0: none). An allocation past it
# fails the job with error_code `memory` instead of taking the worker down.
JOB_MEMORY_LIMIT_MB = env_int("JOB_MEMORY_LIMIT_MB", 4096)
# The OCR servers (V0-V2) run each request in a child under the same kind of limits
# (apps/ocr/isolation.py): 422 `memory` past the memory cap, 504 `timeout` past the time
# limit, kept below the API's OCR_HTTP_TIMEOUT_S so the caller gets the answer.
OCR_SERVER_MEMORY_LIMIT_MB = env_int("OCR_SERVER_MEMORY_LIMIT_MB", JOB_MEMORY_LIMIT_MB)
OCR_SERVER_TIME_LIMIT_S = env_float("OCR_SERVER_TIME_LIMIT_S", OCR_HTTP_TIMEOUT_S * 0.9)
# Each job's temporary files (the workload's TMPDIR) go under this root, one directory
# per worker process and job, removed however the job ends (tasks/scratch.py).
JOB_TMP_ROOT = env_str("JOB_TMP_ROOT", os.path.join(tempfile.gettempdir(), "ocrlab-jobs"))
RELAY_INTERVAL_S = env_float("RELAY_INTERVAL_S", 2.0)
RELAY_PENDING_GRACE_S = env_float("RELAY_PENDING_GRACE_S", 5.0)
# A QUEUED job whose message has not been claimed this long is sent again (a message lost
# before any claim: a broker restarted without persistence). Derived from the lease, so a
# lost message waits about as long as a lost worker's job; a duplicate costs one skip.
RELAY_QUEUED_STALE_S = env_float("RELAY_QUEUED_STALE_S", 2 * JOB_LEASE_S)

# Backends by alias, resolved by the registry module named here (like DATABASES): apps/jobs
# reaches it by this dotted path only (apps/jobs/backends.py), never by an import.
JOB_BACKEND_REGISTRY = "tasks.backends.registry"
JOB_BACKENDS: dict[str, dict[str, Any]]  # (values mix str, dict and bool)
JOB_BACKENDS = {
    "db": {"BACKEND": "tasks.backends.db.DatabaseBackend"},
    "redis": {
        "BACKEND": "tasks.backends.redis_streams.RedisStreamsBackend",
        "OPTIONS": {"url": REDIS_URL},
    },
    "rabbit": {
        "BACKEND": "tasks.backends.celery.backend.CeleryBackend",
        "OPTIONS": {"url": AMQP_URL},
    },
    "celery-redis": {
        "BACKEND": "tasks.backends.celery.backend.CeleryBackend",
        "OPTIONS": {"url": REDIS_URL},
    },
    "dramatiq": {
        "BACKEND": "tasks.backends.dramatiq.backend.DramatiqBackend",
        "OPTIONS": {"url": AMQP_URL},
    },
    "dramatiq-redis": {
        "BACKEND": "tasks.backends.dramatiq.backend.DramatiqBackend",
        "OPTIONS": {"url": REDIS_URL},
    },
    "kafka": {
        "BACKEND": "tasks.backends.kafka.KafkaBackend",
        "OPTIONS": {"url": KAFKA_BOOTSTRAP_SERVERS},
    },
    # Libraries whose queue is a table in this database (no OPTIONS url: no broker).
    "django-tasks": {"BACKEND": "tasks.backends.django_tasks.backend.DjangoTasksBackend"},
    "procrastinate": {"BACKEND": "tasks.backends.procrastinate.backend.ProcrastinateBackend"},
    # In-process queue for the fast core tests (one process only: no runworker).
    "memory": {"BACKEND": "tasks.backends.memory.MemoryBackend", "IN_PROCESS": True},
}
# OCRLAB_BACKEND_OPTIONS (JSON: {"alias": {"option": value}}) is merged into those
# OPTIONS: how a bench or test hands its worker processes other timer settings.
for _alias, _extra in json.loads(os.environ.get("OCRLAB_BACKEND_OPTIONS") or "{}").items():
    JOB_BACKENDS[_alias] = {**JOB_BACKENDS[_alias]}
    JOB_BACKENDS[_alias]["OPTIONS"] = {**JOB_BACKENDS[_alias].get("OPTIONS", {}), **_extra}
# Django's Tasks framework: the `django-tasks` job backend enqueues on the task backend of
# the same name (django-tasks-db's table, served by its db_worker); its queue is
# `<QUEUE_PREFIX>.<alias>` like every framework queue. "default" stays Django's own.
TASKS = {
    "default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
    "django-tasks": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": [f"{QUEUE_PREFIX}.django-tasks"],
    },
}
# procrastinate's Django app: its tables come with `migrate`; the lab registers its one
# task in the worker entry (tasks/backends/procrastinate/worker.py), so no autodiscovery.
PROCRASTINATE_AUTODISCOVER_MODULE_NAME = ""
# Every broker backend reads OPTIONS["url"]; tests point it at a dead port to see the
# outbox relay at work. Which alias each of V3-V6 submits to: apps/jobs/versions.py.

# --- operations (apps/ops) -------------------------------------------------------------
# /healthz needs no login. /readyz and /metrics answer only clients in OPS_ALLOWED_NETWORKS
# (CIDRs, comma-separated; loopback by default; "0.0.0.0/0,::/0" opens them), from a
# snapshot refreshed at most every OPS_CACHE_S per process.
OPS_ALLOWED_NETWORKS = env_list("OPS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128")
OPS_CHECK_TIMEOUT_S = env_float("OPS_CHECK_TIMEOUT_S", 2.0)  # per dependency in /readyz
OPS_CACHE_S = env_float("OPS_CACHE_S", 5.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # OCRmyPDF logs ~10 INFO lines per job; WARNING keeps its Tesseract-timeout warnings,
    # which the engine reads to tell a timeout from a blank page.
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "ocrmypdf": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
        "pikepdf": {"level": "WARNING"},
        "procrastinate": {"level": "WARNING"},  # process_job logs one line per job
    },
}
