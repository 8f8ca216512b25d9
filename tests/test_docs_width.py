"""Code in the docs fits a page: no line of a code block or example over 88 characters.

Furo shows about 88 characters of code at common widths; a longer line scrolls
sideways, and a reader misses its end (where the flags of a command often are).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 88
PAGES = sorted(
    [
        *(ROOT / "docs").rglob("*.rst"),
        *(ROOT / "docs" / "examples").glob("*.py"),
        ROOT / "README.md",
    ]
)


def _code_lines(path: Path) -> list[tuple[int, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".py":
        return list(enumerate(lines, 1))
    found, fenced = [], False
    for number, line in enumerate(lines, 1):
        if path.suffix == ".md":
            if line.startswith("```"):
                fenced = not fenced
            elif fenced:
                found.append((number, line))
        elif line.lstrip().startswith((">>>", "...")) or line.startswith("    "):
            found.append((number, line))
    return found


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_lines_fit(path: Path) -> None:
    long = [f"line {n}: {len(text)}" for n, text in _code_lines(path) if len(text) > WIDTH]
    assert not long, f"{path.name}: code lines over {WIDTH} characters: {long}"
