"""README's map ("How it is built", the `| place | holds |` table) stays true to the tree.

Every path the map names exists, every package of apps/ and tasks/ is named in it, and the
README points at no file outside the repository. Pure reads of the files, no services.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAP_HEADER = "| place | holds |"
PACKAGE_ROOTS = ("apps", "tasks")
CODE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH = re.compile(r"[\w.-]+(/[\w.-]+)*(/|\.py)")  # a file or folder path, nothing else


def map_rows(text: str) -> list[list[str]]:
    """The map table's rows, each as its cells, the header and the rule left out."""
    lines = text.splitlines()
    first = lines.index(MAP_HEADER) + 2
    rows = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def named_paths(cell: str) -> list[str]:
    """The backticked paths of a cell (ending in / or .py), in order."""
    return [code for code in CODE.findall(cell) if PATH.fullmatch(code)]


def resolve(row: list[str]) -> tuple[list[Path], list[str]]:
    """The paths a row names, resolved, and those that exist nowhere they could mean. A path
    is read from the repository root, from the row's places, or from a folder named before
    it in the row."""
    bases, found, missing = [ROOT], [], []
    for path in named_paths(row[0]) + named_paths(" ".join(row[1:])):
        hit = next((base / path for base in bases if (base / path).exists()), None)
        if hit is None:
            missing.append(path)
            continue
        found.append(hit.resolve())
        if path.endswith("/") and hit not in bases:
            bases.append(hit)
    return found, missing


def unresolved(row: list[str]) -> list[str]:
    return resolve(row)[1]


def test_the_map_is_found_and_names_paths():
    rows = map_rows(README.read_text())
    assert len(rows) >= 8
    assert all(named_paths(row[0]) for row in rows), "each row's place is a path"


def test_every_path_the_map_names_exists():
    missing = {row[0]: unresolved(row) for row in map_rows(README.read_text())}
    assert {place: paths for place, paths in missing.items() if paths} == {}


def test_every_package_of_apps_and_tasks_is_named_in_the_map():
    named = [path for row in map_rows(README.read_text()) for path in resolve(row)[0]]
    packages = [
        path.resolve()
        for root in PACKAGE_ROOTS
        for path in sorted((ROOT / root).iterdir())
        if (path / "__init__.py").is_file()
    ]
    unnamed = [
        package.relative_to(ROOT).as_posix()
        for package in packages
        if not any(name == package or package in name.parents for name in named)
    ]
    assert packages and unnamed == []


def test_readme_names_no_file_outside_the_repository():
    text = README.read_text()
    assert "../" not in text
    assert "DESIGN.md" not in text
    targets = [link.split("#")[0] for link in LINK.findall(text)]
    local = [target for target in targets if target and "://" not in target]
    assert local, "README links to its docs"
    assert [target for target in local if not (ROOT / target).exists()] == []


def test_the_checks_see_what_they_should():
    rows = map_rows(
        "x\n| place | holds |\n|---|---|\n"
        "| `tasks/` | `backends/` (`db.py`, `celery/` (`app.py`)), `tasks/nothing.py`, "
        "`a -b`, `python -m tasks.worker` |\nafter\n"
    )
    assert rows == [
        [
            "`tasks/`",
            "`backends/` (`db.py`, `celery/` (`app.py`)), `tasks/nothing.py`, `a -b`, "
            "`python -m tasks.worker`",
        ]
    ]
    assert named_paths(rows[0][1]) == [
        "backends/",
        "db.py",
        "celery/",
        "app.py",
        "tasks/nothing.py",
    ]
    assert unresolved(rows[0]) == ["tasks/nothing.py"]
