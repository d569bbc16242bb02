"""Text a user reads cites what a user has: files in the repository or vendor pages, never the team's design notes."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_TEXT = ("*.yaml", "*.in", "*.md", "*.html", "*.js", "*.tsv")


def test_shipped_text_never_cites_the_design_notes() -> None:
    files = [ROOT / "README.md", ROOT / "engines" / "README.md", ROOT / "jetson_setup.sh"]
    files += [*(ROOT / "docs").glob("*.md"), *(ROOT / "benchmarks").glob("*.md")]
    files += [*(ROOT / "benchmarks" / "results").glob("*.json")]  # recorded results quote their sources too
    files += [path for pattern in SHIPPED_TEXT for path in (ROOT / "fume_edge").rglob(pattern)]
    texts = {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in files}
    citing = [name for name, text in texts.items() if "DESIGN" in text or "../shared" in text]
    assert not citing, f"these cite DESIGN or ../shared, which users do not have: {citing}"
