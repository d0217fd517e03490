# SPDX-License-Identifier: MIT
"""The README and the pages under docs/: every Python block runs as written, links resolve.

Each page's fenced ```python blocks run in order, in one namespace, in a temporary working
folder (so ``runs/...`` and ``../shared/...`` resolve to nothing of the checkout's), offline.
A block preceded by an HTML comment ``<!-- no-test: why -->`` is skipped: use it sparingly,
for blocks that need a GPU, a long run, or an API not merged yet, and say why in the comment.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 250
PAGE_CPU_SECONDS = 30  # per page; the whole docs test stays near a minute

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_NO_TEST = re.compile(r"^\s*<!--\s*no-test\b")


@dataclass
class Block:
    """One fenced code block of a page."""

    page: str
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    skipped: bool  # preceded by <!-- no-test ... -->


def code_blocks(text: str, page: str = "<page>") -> list[Block]:
    """Every fenced block of a Markdown text, in order.

    A block is skipped when the last non-blank line before its opening fence is an HTML
    comment starting ``<!-- no-test``. An unterminated fence is an error (it would swallow
    the rest of the page).
    """
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, language = match.groups()
        start = i
        body = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{page}:{start + 1}: code fence {fence} is never closed")
        before = next((line for line in reversed(lines[:start]) if line.strip()), "")
        blocks.append(Block(page, start + 1, language.lower(), "\n".join(body) + "\n", bool(_NO_TEST.match(before))))
        i += 1
    return blocks


def python_blocks(path: Path) -> list[Block]:
    return [b for b in code_blocks(path.read_text(), path.relative_to(ROOT).as_posix()) if b.language == "python"]


# -- the extractor itself ---------------------------------------------------------------------
def test_code_blocks_finds_languages_and_skips_marked_blocks():
    text = (
        "intro\n\n```python\nx = 1\n```\n\n<!-- no-test: needs a GPU -->\n\n```python\nraise SystemExit\n```\n"
        "\n```bash\nls\n```\n\n    ```python\n    y = x + 1\n    ```\n"
    )
    blocks = code_blocks(text)
    assert [(b.language, b.skipped, b.line) for b in blocks] == [
        ("python", False, 3), ("python", True, 9), ("bash", False, 13), ("python", False, 17)]
    assert blocks[3].code == "y = x + 1\n"


def test_code_blocks_refuses_an_unterminated_fence():
    with pytest.raises(ValueError, match="never closed"):
        code_blocks("```python\nx = 1\n", "page.md")


# -- the pages --------------------------------------------------------------------------------
def test_readme_is_a_short_front_door():
    n_lines = len(README.read_text().splitlines())
    assert n_lines <= README_MAX_LINES, f"README.md has {n_lines} lines; move detail to docs/"


def test_every_page_is_in_the_mkdocs_nav():
    config = (ROOT / "mkdocs.yml").read_text()
    nav = set(re.findall(r":\s*([\w./-]+\.md)\s*$", config, flags=re.M))
    pages = {p.name for p in DOCS.glob("*.md")}
    assert pages == nav, f"pages missing from the nav: {sorted(pages - nav)}; nav entries without a page: {sorted(nav - pages)}"


_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def _anchors(path: Path) -> set[str]:
    """The header ids a Markdown renderer gives a page (lower case, punctuation dropped, spaces -> '-')."""
    ids = set()
    for title in re.findall(r"^#{1,6}\s+(.*)$", path.read_text(), flags=re.M):
        slug = re.sub(r"[^\w\s-]", "", title.strip().lower())
        ids.add(re.sub(r"\s+", "-", slug))
    return ids


def test_readme_links_resolve():
    """Relative links of the README (to docs pages and figures) point to files that exist."""
    broken = []
    for target, anchor in _LINK.findall(README.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path = (ROOT / target).resolve()
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor[1:] not in _anchors(path):
            broken.append(target + anchor)
    assert not broken, f"README.md links to missing files or anchors: {broken}"


def test_mkdocs_build_strict(tmp_path):
    """``mkdocs build --strict``: a broken link, anchor or image, or a page outside the nav, fails."""
    pytest.importorskip("mkdocs", reason="the docs build needs mkdocs: pip install -e '.[docs]'")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").is_file()


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch, request):
    """The page's Python blocks, run in order in one namespace, as a reader would paste them."""
    blocks = [b for b in python_blocks(page) if not b.skipped]
    if not blocks:
        pytest.skip(f"{page.name} has no runnable Python block")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENSEMBLE_NETS_OFFLINE", "1")  # never download full MNIST
    monkeypatch.setenv("MPLBACKEND", "Agg")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the blocks are tiny: on a shared CPU, more threads only spin against each other
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    namespace: dict = {"__name__": "__docs__"}
    started = time.process_time()  # CPU time: what the blocks cost, whatever else loads the machine
    for block in blocks:
        try:
            exec(compile(block.code, f"{block.page}:{block.line}", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"the Python block at {block.page}:{block.line} fails as written: "
                                 f"{type(err).__name__}: {err}") from err
    elapsed = time.process_time() - started
    assert elapsed < PAGE_CPU_SECONDS, f"{page.name}'s blocks take {elapsed:.0f} CPU s; shrink their budgets"


def test_no_test_blocks_say_why():
    """A skipped block names its reason, so that it can be enabled when the reason goes away."""
    for page in PAGES:
        for block in python_blocks(page):
            if block.skipped:
                lines = page.read_text().split("\n")[: block.line - 1]
                comment = next(line for line in reversed(lines) if line.strip())
                assert re.match(r"^\s*<!--\s*no-test:\s*\S", comment), f"{block.page}:{block.line}: say why, <!-- no-test: ... -->"


def test_tables_have_as_many_cells_as_their_header():
    """A '|' inside a cell (``||W||_2``) splits it in two unless escaped as ``\\|``: the table then breaks."""
    bad = []
    for page in PAGES:
        header_cells = None
        for number, line in enumerate(page.read_text().split("\n"), start=1):
            if not line.startswith("|"):
                header_cells = None
                continue
            cells = len(re.findall(r"(?<!\\)\|", line))
            if header_cells is None:
                header_cells = cells
            elif cells != header_cells:
                bad.append(f"{page.relative_to(ROOT).as_posix()}:{number}")
    assert not bad, f"table rows whose cell count differs from the header's (escape '|' as '\\|'): {bad}"
