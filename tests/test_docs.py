"""The docs a newcomer reads stay short, linked and current: the README fits its budget, every relative link in it
and in docs/ lands on a file (and heading) that exists, and docs/cli.md is what Typer generates from the CLI today."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CLI_DOC = ROOT / "docs" / "cli.md"
README_MAX_LINES = 250
REGENERATE = "typer fume_edge.cli utils docs --name fume-edge --output docs/cli.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
EXTERNAL = ("http://", "https://", "mailto:")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks: a `# comment` in a bash block is neither a heading nor a link."""
    lines, in_code = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code:
            lines.append(line)
    return lines


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(line.lstrip("#")) for line in prose_lines(path.read_text(encoding="utf-8")) if line.startswith("#")}


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if target.startswith(EXTERNAL):
                continue
            file_part, _, fragment = target.partition("#")
            linked = (page.parent / file_part).resolve() if file_part else page
            if not linked.exists():
                broken.append(f"{page.relative_to(root)}: {target} (no such file)")
            elif fragment and (linked.suffix != ".md" or fragment not in anchors(linked)):
                broken.append(f"{page.relative_to(root)}: {target} (no such heading in {linked.relative_to(root)})")
    return broken


def test_the_readme_stays_within_its_line_budget() -> None:
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= README_MAX_LINES, f"README.md has {count} lines, over {README_MAX_LINES}: move reference to docs/"


def test_every_relative_link_in_the_readme_and_docs_points_to_an_existing_file_and_heading() -> None:
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) > 2, "docs/ lost its pages"
    broken = [link for page in pages for link in broken_links(page)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_check_sees_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Real heading\n[a](page.md#real-heading) [b](gone.md) [c](#no-such) [d](https://x.org/y)\n"
        "```bash\n# not a heading [e](also-gone.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page, tmp_path) == [
        "page.md: gone.md (no such file)",
        "page.md: #no-such (no such heading in page.md)",
    ]


def test_docs_cli_md_is_what_typer_generates_from_the_cli_today(tmp_path: Path) -> None:
    generated = tmp_path / "cli.md"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "typer",
            "fume_edge.cli",
            "utils",
            "docs",
            "--name",
            "fume-edge",
            "--output",
            str(generated),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert CLI_DOC.exists(), f"docs/cli.md is missing: run `{REGENERATE}` in the repository root"
    assert generated.read_text(encoding="utf-8") == CLI_DOC.read_text(encoding="utf-8"), (
        f"docs/cli.md is out of date with the CLI: run `{REGENERATE}` in the repository root and commit it"
    )
