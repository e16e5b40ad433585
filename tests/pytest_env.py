"""Loaded with `-p` (pyproject addopts) before Django reads its settings: test runs get a
database and queue names of their own, short leases and a quick relay."""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("OCRLAB_QUEUE_PREFIX", f"test{os.getpid()}")
os.environ.setdefault("OCRLAB_TEST_DB_NAME", f"test_ocrlab_{os.getpid()}")
os.environ.setdefault("JOB_LEASE_S", "3")
os.environ.setdefault("RELAY_INTERVAL_S", "0.5")
os.environ.setdefault("RELAY_PENDING_GRACE_S", "1")
os.environ.setdefault("RELAY_QUEUED_STALE_S", "10")
os.environ.setdefault("JOB_MAX_ATTEMPTS", "2")
os.environ.setdefault("JOB_RETRY_BASE_S", "0.2")
os.environ.setdefault("JOB_RETRY_MAX_S", "1")
os.environ.setdefault("JOB_REQUIRE_LIVE_WORKER", "0")  # tests that need it turn it on
