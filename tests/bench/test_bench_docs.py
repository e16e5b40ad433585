"""docs/bench.md maps every module of apps/bench, and no folder of it holds more than 12."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "apps" / "bench"
MAX_MODULES = 12


def modules() -> list[Path]:
    return [
        p for p in BENCH.rglob("*.py") if p.name != "__init__.py" and "migrations" not in p.parts
    ]


def test_docs_name_every_module():
    text = (ROOT / "docs" / "bench.md").read_text()
    missing = []
    for path in modules():
        rel = path.relative_to(BENCH).as_posix()
        if f"`{rel}`" not in text and not _named_in_group(rel, text):
            missing.append(rel)
    assert missing == [], "add them to docs/bench.md's module table"


def _named_in_group(rel: str, text: str) -> bool:
    """`models.py`, `admin.py`, `apps.py` share one row."""
    return f"`{Path(rel).name}`" in text and "/" not in rel


def test_no_folder_over_twelve_modules():
    folders: dict[Path, int] = {}
    for path in modules():
        folders[path.parent] = folders.get(path.parent, 0) + 1
    crowded = {str(f.relative_to(BENCH)): n for f, n in folders.items() if n > MAX_MODULES}
    assert crowded == {}
