"""The documentation: a short README, links that resolve, and a strict MkDocs build of docs/."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README_MAX_LINES = 250

# [text](target) or [text](target "title"); images too. Autolinks <http://...> are skipped.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def markdown_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def links(path: Path) -> list[str]:
    """Link targets in a Markdown file, leaving out code blocks and inline code."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    text = INLINE_CODE.sub("", text)
    return LINK.findall(text)


def is_relative(target: str) -> bool:
    """A link to a file of this repository (not a URL, not an anchor on the same page)."""
    return not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) and not target.startswith(("#", "/"))


def slugify(heading: str) -> str:
    """The anchor Python-Markdown's toc extension (MkDocs' default) gives a heading."""
    value = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def anchors(path: Path) -> set[str]:
    """Anchors of the headings of a Markdown file."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)
    return {slugify(INLINE_CODE.sub(lambda m: m.group(0).strip("`"), h)) for h in headings}


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it to {README_MAX_LINES} and move detail to docs/")


def test_readme_links_into_docs() -> None:
    targets = {t.split("#")[0] for t in links(ROOT / "README.md") if is_relative(t)}
    assert "docs/install.md" in targets and "docs/api.md" in targets, sorted(targets)


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in filter(is_relative, links(path)):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve()
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved.relative_to(ROOT)}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, f"{path.relative_to(ROOT)}: " + "; ".join(broken)


def test_index_and_nav_list_every_page() -> None:
    pages = {p.name for p in DOCS.glob("*.md")}
    linked = {t.split("#")[0] for t in links(DOCS / "index.md") if is_relative(t)}
    assert pages - {"index.md"} <= linked, f"not linked from docs/index.md: {pages - linked - {'index.md'}}"

    def nav_pages(node: object) -> set[str]:
        if isinstance(node, str):
            return {node}
        if isinstance(node, list):
            return set().union(*(nav_pages(item) for item in node))
        if isinstance(node, dict):
            return set().union(*(nav_pages(value) for value in node.values()))
        return set()

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["strict"] is True
    assert pages <= nav_pages(config["nav"]), f"not in mkdocs.yml nav: {pages - nav_pages(config['nav'])}"


def test_slugify_matches_markdown_toc() -> None:
    assert slugify("Ray: distributed bulk encoding") == "ray-distributed-bulk-encoding"
    assert slugify("CPU speed (2026-12-01)") == "cpu-speed-2026-12-01"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs not installed")
def test_mkdocs_strict_build(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for page in DOCS.glob("*.md"):
        built = site / "index.html" if page.stem == "index" else site / page.stem / "index.html"
        assert built.is_file(), f"{page.name} was not built"
