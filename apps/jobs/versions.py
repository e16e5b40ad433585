"""The versions V0-V6 of the one OCR flow (and `api`), defined once.

Everything else derives from `VERSIONS`: the `OcrJob.version` choices, the URL patterns
(and the queue-version converter), the bench's cells, the demo
command and the locust scenario and user classes. Pure Python, no Django import, so the
bench and locust can import it too.

A version is one of three kinds:
- `sync` (V0-V2): the API calls an OCR server over HTTP; POST /vN/ocr/sync.
- `queue` (V3-V6): the API stores the job and hands it to one backend alias (an entry of
  settings.JOB_BACKENDS); POST /vN/ocr/jobs, GET /vN/ocr/jobs/<id>.
- `api`: any backend, chosen by alias in each request; POST /api/jobs, GET /api/jobs/<id>.
"""

from __future__ import annotations

from dataclasses import dataclass

SYNC, QUEUE, API = "sync", "queue", "api"
KINDS = (SYNC, QUEUE, API)
SYNC_BACKEND = "http"  # the `backend` of the job rows V0-V2 record
# The URL shape of each kind: the version's name is its first path segment.
ROUTES = {SYNC: "{name}/ocr/sync", QUEUE: "{name}/ocr/jobs", API: "{name}/jobs"}


class UnknownVersion(ValueError):
    pass


@dataclass(frozen=True)
class VersionDef:
    name: str  # "v3": OcrJob.version, the URL's first segment, --ocr-version
    kind: str  # SYNC, QUEUE or API
    label: str  # the OcrJob.version choice label
    backend: str = ""  # queue versions: the backend alias they submit to
    short: str = ""  # sync versions: their row name in the bench's tables
    one_server: bool = False  # sync versions that call only the first OCR server

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"version {self.name}: kind must be one of {KINDS}")
        if (self.kind == QUEUE) != bool(self.backend):
            raise ValueError(f"version {self.name}: a backend alias iff it is a queue version")

    @property
    def route(self) -> str:
        """The path of its submit endpoint, without the leading slash (Django's form)."""
        return route(self.kind, self.name)


VERSIONS = (
    VersionDef("v0", SYNC, "v0: blocking HTTP call", short="V0 sync HTTP", one_server=True),
    VersionDef("v1", SYNC, "v1: non-blocking HTTP call", short="V1 async HTTP", one_server=True),
    VersionDef("v2", SYNC, "v2: N OCR servers", short="V2 HTTP balancer"),
    VersionDef("v3", QUEUE, "v3: Postgres table queue", backend="db"),
    VersionDef("v4", QUEUE, "v4: Redis Streams", backend="redis"),
    VersionDef("v5", QUEUE, "v5: Celery on RabbitMQ", backend="rabbit"),
    VersionDef("v6", QUEUE, "v6: Kafka", backend="kafka"),
    VersionDef("api", API, "api: any backend by alias"),
)
BY_NAME = {v.name: v for v in VERSIONS}
API_VERSION = next(v.name for v in VERSIONS if v.kind == API)


def route(kind: str, name: str) -> str:
    """The submit route of a version of `kind` named `name` ("<qv:version>" in urls.py)."""
    return ROUTES[kind].format(name=name)


def get(name: str) -> VersionDef:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownVersion(
            f"unknown version {name!r}; choose one of: {', '.join(names())}"
        ) from None


def names() -> tuple[str, ...]:
    """Every version, `api` last."""
    return tuple(v.name for v in VERSIONS)


def of_kind(kind: str) -> tuple[str, ...]:
    return tuple(v.name for v in VERSIONS if v.kind == kind)


def sync_versions() -> tuple[str, ...]:
    """v0, v1, v2."""
    return of_kind(SYNC)


def queue_versions() -> tuple[str, ...]:
    """v3 .. v6."""
    return of_kind(QUEUE)


def is_sync(name: str) -> bool:
    return get(name).kind == SYNC


def backend_for(name: str) -> str:
    """The backend alias a queue version submits to; UnknownVersion for any other name."""
    version = BY_NAME.get(name)
    if version is None or version.kind != QUEUE:
        raise UnknownVersion(f"no queue backend for version {name!r}")
    return version.backend


def version_backends() -> dict[str, str]:
    """{queue version: backend alias}."""
    return {v.name: v.backend for v in VERSIONS if v.kind == QUEUE}


def choices() -> list[tuple[str, str]]:
    """(value, label) pairs for OcrJob.version."""
    return [(v.name, v.label) for v in VERSIONS]


def submit_path(name: str) -> str:
    """Where a client POSTs: /v0/ocr/sync, /v3/ocr/jobs, /api/jobs."""
    return "/" + get(name).route


def status_path(name: str, job_id: str) -> str:
    """Where a client reads a submitted job: /v3/ocr/jobs/<id>, /api/jobs/<id>."""
    version = get(name)
    if version.kind == SYNC:
        raise UnknownVersion(f"{name} answers the call itself; it has no job status URL")
    return f"/{version.route}/{job_id}"
