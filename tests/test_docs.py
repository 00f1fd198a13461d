"""The README a new user reads from a clone: it starts with the two commands, and every file it points to exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_starts_with_the_run_and_test_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```")]
    assert [ln.split()[:2] for ln in block] == [["make", "run"], ["make", "test"]]


def test_every_path_the_docs_name_is_in_the_repository() -> None:
    """Links and `backticked` repository paths in README.md and docs/ resolve inside the clone (no ../shared)."""
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        assert "../" not in re.sub(r"```.*?```", "", text, flags=re.S), f"{doc.name} points outside the repository"
        links = re.findall(r"\]\(([^)#]+)\)", text)
        paths = re.findall(r"`((?:experiments|docs|lwcompress|tests)/[\w./-]+\.(?:md|py|sh|png|yaml|json))`", text)
        for target in {*links, *paths}:
            if target.startswith("http"):
                continue
            assert (doc.parent / target).exists() or (ROOT / target).exists(), f"{doc.name}: {target} not found"
