"""The bench matrix: which cells (target x workers x users x jobs x workload) to run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from apps.jobs import versions

SYNC_VERSIONS = versions.sync_versions()
QUEUE_VERSIONS = versions.queue_versions()
ALL_VERSIONS = SYNC_VERSIONS + QUEUE_VERSIONS  # the versions with their own endpoint


@dataclass(frozen=True)
class CellSpec:
    """One cell. `target` is a version (v0..v6) or `api:<alias>` for POST /api/jobs."""

    target: str
    kind: str  # "sync" (V0-V2: workers are OCR servers) or "queue" (workers are runworker's)
    version: str  # v0..v6, or "api"
    backend: str  # backend alias, or "http" for V0-V2
    workers: int
    users: int
    jobs_per_user: int
    workload: str
    deadline_s: float
    repeat: int = 1
    family: str = "load"  # "load" (locust, run/cell.py) or a family (run/families.py)
    repeats: int = 1  # runs inside one warm stack (families only); results carry repeat 1..N
    engine: str = "lab"  # OCR_ENGINE_MODE of its OCR servers and workers ("seed": the seed's)

    @property
    def key(self) -> tuple:
        """Identity of the cell across repeats."""
        return (
            self.target,
            self.workload,
            self.workers,
            self.users,
            self.jobs_per_user,
            self.deadline_s,
        )

    @property
    def cell_id(self) -> str:
        name = self.target.replace(":", "-")
        if self.family != "load":
            return f"{name}-{self.family}-w{self.workers}-r{self.repeat}"
        load = self.workload.replace(":", "")
        if self.engine != "lab":
            load = f"{load}-{self.engine}"
        return f"{name}-{load}-w{self.workers}-u{self.users}x{self.jobs_per_user}-r{self.repeat}"

    @property
    def jobs(self) -> int:
        return self.users * self.jobs_per_user

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MatrixParams:
    """A product matrix: targets x workloads x workers x users, repeated."""

    versions: list[str] = field(default_factory=lambda: list(ALL_VERSIONS))
    backends: list[str] = field(default_factory=list)
    workers: list[int] = field(default_factory=lambda: [1, 2, 4])
    users: list[int] = field(default_factory=lambda: [16])
    noop_users: list[int] = field(default_factory=lambda: [16, 64])
    jobs_per_user: int = 16
    workloads: list[str] = field(default_factory=lambda: ["ocr", "noop"])
    deadline_s: float = 60.0
    repeat: int = 1


def target_spec(name: str) -> tuple[str, str, str, str]:
    """(target, kind, version, backend) for a version name or a backend alias."""
    if name in SYNC_VERSIONS:
        return name, versions.SYNC, name, versions.SYNC_BACKEND
    if name in QUEUE_VERSIONS:
        return name, versions.QUEUE, name, versions.backend_for(name)
    return f"{versions.API_VERSION}:{name}", versions.QUEUE, versions.API_VERSION, name


def default_extra_backends(aliases: list[str]) -> list[str]:
    """Aliases no version endpoint covers (the framework variants), reached via /api/jobs."""
    covered = set(versions.version_backends().values())
    return [alias for alias in aliases if alias not in covered]


def build_matrix(params: MatrixParams) -> list[CellSpec]:
    """Every cell of the product, repeats outermost; V0-V2 only run the `ocr` workload."""
    names = list(params.versions) + list(params.backends)
    cells = []
    for repeat in range(1, params.repeat + 1):
        for name in names:
            target, kind, version, backend = target_spec(name)
            for workload in params.workloads:
                if kind == versions.SYNC and workload != "ocr":
                    continue
                users = params.noop_users if workload == "noop" else params.users
                cells += [
                    CellSpec(
                        target,
                        kind,
                        version,
                        backend,
                        w,
                        u,
                        params.jobs_per_user,
                        workload,
                        params.deadline_s,
                        repeat,
                    )
                    for w in params.workers
                    for u in users
                ]
    return cells


def quick_params(
    queue_names: list[str], deadline_s: float = 60.0, repeat: int = 1
) -> list[MatrixParams]:
    """A few minutes on 2 cores: noop on every queue target, OCR on V2 and V3."""
    noop = MatrixParams(
        versions=[n for n in queue_names if n in QUEUE_VERSIONS],
        backends=[n for n in queue_names if n not in QUEUE_VERSIONS],
        workers=[1, 2],
        users=[4],
        noop_users=[4],
        jobs_per_user=8,
        workloads=["noop"],
        deadline_s=deadline_s,
        repeat=repeat,
    )
    ocr = MatrixParams(
        versions=["v2", "v3"],
        backends=[],
        workers=[1, 2],
        users=[2],
        noop_users=[2],
        jobs_per_user=2,
        workloads=["ocr"],
        deadline_s=deadline_s,
        repeat=repeat,
    )
    return [noop, ocr]


def parse_int_list(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]; every value must be at least 1."""
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise ValueError(f"expected a comma list of positive integers, got {text!r}")
    return values


def parse_name_list(text: str) -> list[str]:
    """'v3, v4' -> ['v3', 'v4']; '' or 'none' -> []."""
    if text.strip().lower() in {"", "none"}:
        return []
    return [part.strip() for part in text.split(",") if part.strip()]
