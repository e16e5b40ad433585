"""README's generated Results block says what its run's data says."""

from pathlib import Path

from apps.bench.decide.readme import committed_run, results_block, rewrite

ROOT = Path(__file__).resolve().parents[2]


def test_readme_block_matches_its_run():
    text = (ROOT / "README.md").read_text()
    run = committed_run(text)
    assert run, "README.md has no <!-- bench:results RUN --> block"
    assert results_block(ROOT, run) in text, "stale: run `manage.py bench_readme " + run + "`"


def test_rewrite_replaces_only_the_block():
    text = "# x\n\n## Results\n\nbefore\n"
    block = "<!-- bench:results r -->\nA\n<!-- bench:results end -->"
    once = rewrite(text, block)
    assert block in once and "before" in once
    again = rewrite(once, block.replace("A", "B"))
    assert "\nB\n" in again and "\nA\n" not in again and again.count("bench:results end") == 1
