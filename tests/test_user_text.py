"""Text a user reads cites what a user has: files in the repository or vendor pages, never the team's design notes."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_TEXT = ("*.yaml", "*.in", "*.md", "*.html", "*.js", "*.tsv")


def test_shipped_text_never_cites_the_design_notes() -> None:
    files = [ROOT / "README.md", ROOT / "engines" / "README.md", ROOT / "jetson_setup.sh"]
    files += (ROOT / "docs").glob("*.md")
    files += [path for pattern in SHIPPED_TEXT for path in (ROOT / "fume_edge").rglob(pattern)]
    citing = [str(path.relative_to(ROOT)) for path in files if "DESIGN" in path.read_text(encoding="utf-8")]
    assert not citing, f"these cite DESIGN, which users do not have: {citing}"
