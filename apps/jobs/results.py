"""What a finished workload hands back: pure data, no Django import, so the workload
process (tasks/child_main.py) builds it without loading services or the registry."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class JobResult:
    text: str = ""
    pages: int | None = None
    pdf: str = ""
    timings: dict = field(default_factory=dict)
