"""The repository stands alone: it cites no file outside it, and its docs' links lead somewhere.

- No tracked file names the notes that lived beside the repository while it
  was built (`../shared`, `PROTOCOL.md`, `DESIGN.md`): what the code relies
  on is written in docs/ instead.
- Every relative link in README.md and docs/*.md points to a file of the
  repository, and a link to a heading of a Markdown file (`page.md#heading`,
  `#heading`) to a heading that page has, as GitHub renders it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()
OUTSIDE_CITATIONS = ("../shared", "PROTOCOL.md", "DESIGN.md")

# [text](target) and [text](target "title"); images too. Reference definitions: [id]: target
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
FENCE = re.compile(r"^\s*(```|~~~).*?^\s*\1\s*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def tracked_files() -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout, so there are no tracked files to check ({exc})")
    return [name for name in listed.decode().split("\0") if name]


def test_no_tracked_file_cites_notes_outside_the_repository() -> None:
    citing = {}
    for name in tracked_files():
        path = ROOT / name
        if name == THIS_FILE or not path.is_file():
            continue
        data = path.read_bytes()
        found = [text for text in OUTSIDE_CITATIONS if text.encode() in data]
        if found:
            citing[name] = found
    assert citing == {}, (
        "these files cite notes that are not in the repository; write what is relied on "
        f"in docs/ and point there: {citing}"
    )


def prose(markdown: str) -> str:
    """The text outside code blocks and code spans, where links are links."""
    return INLINE_CODE.sub("", FENCE.sub("", markdown))


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a page: lower case, punctuation dropped,
    spaces as hyphens; a repeated heading gets -1, -2..."""
    anchors: set[str] = set()
    for title in HEADING.findall(FENCE.sub("", markdown)):
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link keeps its text
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        anchor, count = slug, 0
        while anchor in anchors:
            count += 1
            anchor = f"{slug}-{count}"
        anchors.add(anchor)
    return anchors


def documentation() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def relative_links(page: Path) -> list[str]:
    text = prose(page.read_text(encoding="utf-8"))
    links = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    return [link for link in links if not urlsplit(link).scheme and not link.startswith("//")]


def test_the_docs_exist() -> None:
    names = {page.relative_to(ROOT).as_posix() for page in documentation()}
    assert {
        "README.md",
        "docs/operating.md",
        "docs/development.md",
        "docs/label-studio.md",
    } <= names


@pytest.mark.parametrize(
    "page", documentation(), ids=lambda page: page.relative_to(ROOT).as_posix()
)
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for link in relative_links(page):
        target, _, fragment = link.partition("#")
        path = (page.parent / unquote(target)).resolve() if target else page
        if not path.exists() or ROOT not in (path, *path.parents):
            broken.append(f"{link}: no such file in the repository")
            continue
        if fragment and path.suffix == ".md":
            if unquote(fragment).lower() not in heading_anchors(path.read_text(encoding="utf-8")):
                broken.append(f"{link}: {path.relative_to(ROOT)} has no heading #{fragment}")
    assert broken == [], f"{page.relative_to(ROOT)} has broken links: {broken}"
