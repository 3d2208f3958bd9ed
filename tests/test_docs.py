"""The user documents (issue 23, item 23): the README stays a short path, every link between the
documents resolves, every reference to the course ("SPEC E17") names a row of docs/course.md, and
no user document carries "MISS" marks or dated measurements."""

from __future__ import annotations

import re

import pytest

from helpers import REPO

USER_DOCS = [REPO / "README.md", REPO / "BENCHMARKS.md", REPO / "RELIABILITY.md", *sorted((REPO / "docs").glob("*.md"))]


# Pages another change adds; linked from the README already.
def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path) -> set[str]:
    return {slug(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")}


def links(path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)  # code blocks hold no links
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", text) if not target.startswith(("http", "mailto:"))]


def test_the_readme_is_a_short_path():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    # the two quick-start commands, exactly
    assert 'pip install "torch==2.13.0" -e . && dlrun train' in readme
    assert 'pip install "torch==2.13.0" -e ".[test]" && python -m pytest' in readme


@pytest.mark.parametrize("page", USER_DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_between_the_documents_resolves(page):
    broken = []
    for target in links(page):
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def course_rows() -> set[str]:
    """The IDs docs/course.md defines: bold first cells (**E17**), section letters (## E.), and I.n."""
    text = (REPO / "docs" / "course.md").read_text()
    rows = set(re.findall(r"^\| \*\*([A-J]\d+)\*\*", text, flags=re.MULTILINE))
    rows |= set(re.findall(r"^## ([A-J])\.", text, flags=re.MULTILINE))
    section_i = text[text.index("## I.") : text.index("## J.")]
    rows |= {f"I.{n}" for n in re.findall(r"^(\d+)\. ", section_i, flags=re.MULTILINE)}
    return rows


REFERENCE = re.compile(r"SPEC ((?:[A-J](?:\.?\d+)?(?:[–-][A-J]?\d+)?(?:, ?)?)+)")


def cited() -> dict[str, set[str]]:
    """Every ID a file of the repository cites as "SPEC <ID>", ranges (B12-B14) expanded."""
    found: dict[str, set[str]] = {}
    files = [
        p
        for folder in ("src", "conf", "scripts", "tests", "docs")
        for p in (REPO / folder).rglob("*")
        if p.suffix in (".py", ".yaml", ".md")
    ]
    for path in [*files, REPO / "README.md", REPO / "RELIABILITY.md", REPO / "BENCHMARKS.md"]:
        for group in REFERENCE.findall(path.read_text()):
            for item in re.split(r", ?", group.strip(", ")):
                found.setdefault(str(path.relative_to(REPO)), set()).update(expand(item))
    return found


def expand(item: str) -> set[str]:
    """B12-B14 -> B12, B13, B14; F2-F7 and D1–D4 alike; anything else is itself."""
    parts = re.split(r"[–-]", item)
    if len(parts) != 2:
        return {item}
    start, end = parts
    end = end if end[0].isalpha() else start[0] + end
    return {f"{start[0]}{n}" for n in range(int(start[1:]), int(end[1:]) + 1)}


def test_every_reference_to_the_course_names_a_row_of_docs_course_md():
    rows = course_rows()
    assert {"A3", "B4", "E17", "G", "I.4", "J"} <= rows  # the parser reads the page
    missing = {where: sorted(ids - rows) for where, ids in cited().items() if ids - rows}
    assert not missing, f"references to rows docs/course.md does not have: {missing}"


def test_the_reference_parser_expands_ranges():
    assert REFERENCE.findall("(SPEC B12-B14) and (SPEC E13, E14) and SPEC G.") == ["B12-B14", "E13, E14", "G"]
    assert expand("B12-B14") == {"B12", "B13", "B14"} and expand("D1–D4") == {"D1", "D2", "D3", "D4"}


@pytest.mark.parametrize("page", USER_DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_user_documents_carry_no_miss_marks_or_dated_measurements(page):
    text = page.read_text()
    assert "MISS" not in text
    assert not re.search(r"(Measured|measured|Re-measured) (on )?20\d\d-\d\d-\d\d", text)
