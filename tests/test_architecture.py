"""The shape of the code, read from its imports (its rooms): one dependency
direction, no import cycles, imports at the top of the module, nothing imports the worker.
Pure static checks: the source is parsed, never imported."""

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("apps", "tasks", "ocrproject", "locust", "scripts")
# The worker: what runs jobs. Only the worker's own command and its framework entry
# points may import it; the API, services, the bench and the publishing side never do.
WORKER = (
    "tasks.child",
    "tasks.child_main",
    "tasks.consume",
    "tasks.limits",
    "tasks.process",
    "tasks.slots",
    "tasks.supervisor",
    "tasks.worker",
    "tasks.workloads",
)
WORKER_ENTRIES = {
    "tasks.management.commands.runworker": {"tasks.supervisor"},
}
# The workload process: it never touches the database, so it must not load the services
# (state changes) or the backend registry, directly or through anything it imports.
CHILD = "tasks.child_main"
CHILD_NEVER_LOADS = ("apps.jobs.services", "tasks.backends.registry", "apps.jobs.backends")
OCRPROJECT_FILES = {  # settings, urls, wsgi/asgi and what they are made of: nothing else
    "__init__.py",
    "settings.py",
    "env.py",
    "urls.py",
    "ocr_urls.py",
    "wsgi.py",
    "asgi.py",
    "bodylimit.py",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported project module (or the top name of a library)
    line: int
    in_function: bool


def project_files() -> Iterator[Path]:
    yield ROOT / "manage.py"
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "locust":  # locust/ is on sys.path when locust runs
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(path): path for path in project_files()}


def resolve(name: str) -> str:
    """The longest project module that `name` starts with, else `name` itself."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return name


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [resolve(alias.name) for alias in node.names]
    base = node.module or ""
    return [resolve(f"{base}.{alias.name}") for alias in node.names]


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if _is_type_checking(child):
            continue
        inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield child, inner
        yield from _walk(child, inner)


def imports_of(module: str) -> list[Import]:
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    return [
        Import(module, target, node.lineno, in_function)
        for node, in_function in _walk(tree, False)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for target in _targets(node)
    ]


IMPORTS = [imp for module in MODULES for imp in imports_of(module)]


def test_imports_sit_at_the_top_of_the_module():
    inside = [f"{i.module}:{i.line} imports {i.target}" for i in IMPORTS if i.in_function]
    assert inside == [], "an import inside a function hides a cycle; move it to the top"


def test_no_import_cycles():
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for imp in IMPORTS:
        if imp.target in MODULES and imp.target != imp.module:
            graph[imp.module].add(imp.target)
    assert _cycles(graph) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _is_worker(target: str) -> bool:
    return any(target == w or target.startswith(f"{w}.") for w in WORKER)


def _is_framework_entry(module: str) -> bool:
    """A framework's task/actor/worker module: it is the worker, run by the framework."""
    parts = module.split(".")
    return parts[:2] == ["tasks", "backends"] and len(parts) == 4 and parts[3] in FRAMEWORK_ENTRY


FRAMEWORK_ENTRY = {"task", "actor", "worker", "__main__"}


def test_nothing_imports_the_worker():
    offenders = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if _is_worker(i.target)
        and not _is_worker(i.module)
        and not _is_framework_entry(i.module)
        and i.target not in WORKER_ENTRIES.get(i.module, set())
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "room, forbidden",
    [
        ("apps.ocr", ("apps.jobs", "apps.bench", "apps.ops", "tasks")),
        ("apps.jobs", ("apps.bench", "apps.ops", "tasks")),
        ("tasks", ("apps.bench", "apps.ops.views", "locust")),
        ("apps.ops", ("apps.bench", "apps.jobs.views")),
        ("apps.ops.launch", ("tasks", "django")),
        ("apps.ops.stack", ("tasks", "django")),
        ("apps.bench", ("tasks.backends.db", "tasks.backends.kafka")),
    ],
)
def test_one_dependency_direction(room, forbidden):
    offenders = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if (i.module == room or i.module.startswith(f"{room}."))
        and any(i.target == f or i.target.startswith(f"{f}.") for f in forbidden)
    ]
    assert offenders == []


def test_apps_ops_reaches_backends_only_through_their_contract():
    """Readiness asks the registry and the services, never a backend module."""
    allowed = ("tasks.backends.registry", "tasks.backends.services")
    offenders = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if i.module.startswith("apps.ops")
        and i.target.startswith("tasks")
        and i.target not in allowed
    ]
    assert offenders == []


def _closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen or current not in MODULES:
            continue
        seen.add(current)
        todo += [i.target for i in IMPORTS if i.module == current]
    return seen


# Process modules anything may import (the supervisor, the bench, the Makefile's stack):
# the standard library only, and these pure project modules.
STDLIB_ONLY = {
    "apps.ops.launch": set(),
    "apps.ops.stack": {"apps.ops.launch", "apps.jobs.versions", "ocrproject.env"},
}


@pytest.mark.parametrize("module", sorted(STDLIB_ONLY))
def test_the_process_modules_load_the_standard_library_only(module):
    loaded = _closure(module)
    assert loaded - {module} == STDLIB_ONLY[module]
    outside = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if i.module in loaded
        and i.target not in MODULES
        and i.target.split(".")[0] not in sys.stdlib_module_names
    ]
    assert outside == []


def test_the_workload_process_loads_neither_services_nor_the_registry():
    loaded = _closure(CHILD)
    assert [m for m in CHILD_NEVER_LOADS if m in loaded] == []


def test_ocrproject_holds_settings_urls_and_the_servers_entry_points_only():
    present = {path.name for path in (ROOT / "ocrproject").glob("*.py")}
    assert present <= OCRPROJECT_FILES, present - OCRPROJECT_FILES


# --- a backend lives behind its contract: no alias, class name or scheme elsewhere ---

# Where backends may be named: their own package, their settings entries, the versions.
NAMING_ALLOWED = ("tasks/backends/", "ocrproject/settings.py", "apps/jobs/versions.py")
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp", "kafka")


def _job_backends() -> dict[str, str]:
    """settings.JOB_BACKENDS read from the source: {alias: dotted class path}, minus the
    in-process test backend ("IN_PROCESS": its alias `memory` is also an error code)."""
    tree = ast.parse((ROOT / "ocrproject" / "settings.py").read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "JOB_BACKENDS"
            and isinstance(node.value, ast.Dict)
        ):
            return {
                ast.literal_eval(key): ast.literal_eval(_entry(value, "BACKEND"))
                for key, value in zip(node.value.keys, node.value.values, strict=True)
                if key is not None and isinstance(value, ast.Dict) and not _in_process(value)
            }
    raise AssertionError("JOB_BACKENDS not found in ocrproject/settings.py")


def _entry(node: ast.Dict, name: str) -> ast.expr:
    return next(
        v for k, v in zip(node.keys, node.values, strict=True) if ast.literal_eval(k) == name
    )


def _in_process(node: ast.Dict) -> bool:
    return any(k is not None and ast.literal_eval(k) == "IN_PROCESS" for k in node.keys)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def backend_names_in(source: str, *, aliases: set[str], classes: set[str]) -> list[str]:
    """String constants (not docstrings) that name a backend alias or class, or hold a
    broker URL scheme."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        text = node.value
        if id(node) in skip:
            continue
        if (
            text in aliases
            or any(name in text for name in classes)
            or any(f"{scheme}://" in text for scheme in BROKER_SCHEMES)
        ):
            found.append(f"{node.lineno}: {text!r}")
    return found


def test_backend_names_live_behind_the_contract():
    backends = _job_backends()
    aliases = set(backends)
    classes = {path.rsplit(".", 1)[1] for path in backends.values()}
    offenders = []
    for path in project_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(NAMING_ALLOWED):
            continue
        hits = backend_names_in(path.read_text(), aliases=aliases, classes=classes)
        offenders += [f"{relative}:{hit}" for hit in hits]
    assert offenders == [], "ask the backend (tasks/backends/base.py), do not name it"


def test_the_backend_name_check_sees_what_it_should():
    source = (
        'def f():\n    """Uses db."""\n    return ["db", "redis://x", "KafkaBackend x", "dbx"]\n'
    )
    hits = backend_names_in(source, aliases={"db"}, classes={"KafkaBackend"})
    assert [hit.split(": ", 1)[1] for hit in hits] == ["'db'", "'redis://x'", "'KafkaBackend x'"]
