"""The documentation site: a short README, every page in the nav, and a strict build that fails on
a broken link, a missing anchor or a page left out of the nav."""

import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def nav_pages(nav: list) -> list[str]:
    """Every page path in a mkdocs `nav`, sections flattened."""
    pages: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` of the project at `root` into `site`, with this venv's mkdocs."""
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.is_file() or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs-material is not installed (pip install -e '.[docs]')")
    command = [str(mkdocs), "build", "--strict", "--site-dir", str(site)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120, env=env)


def test_readme_is_at_most_250_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_every_docs_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(nav_pages(config["nav"])) == pages


def test_readme_links_every_page_and_each_link_resolves():
    links = re.findall(r"\]\((docs/[^)#]+)", (ROOT / "README.md").read_text())
    assert all((ROOT / link).is_file() for link in links), links
    pages = {p.relative_to(ROOT).as_posix() for p in DOCS.glob("*.md")} - {"docs/index.md"}
    assert pages <= set(links), pages - set(links)


def test_strict_build_passes_and_home_shows_the_readme_commands(tmp_path):
    result = mkdocs_build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    home = html.unescape(re.sub(r"<[^>]+>", "", (tmp_path / "site" / "index.html").read_text()))
    readme = (ROOT / "README.md").read_text()
    commands = [b.strip() for b in re.findall(r"```bash\n(.*?)```", readme, re.S)]
    assert len(commands) == 2 and all(c in home for c in commands)


FAULTS = {
    "broken link": ("tasks.md", "\n[gone](nowhere.md)\n", "nowhere.md"),
    "missing anchor": ("tasks.md", "\n[gone](recipes.md#no-such-heading)\n", "#no-such-heading"),
    "page not in the nav": ("orphan.md", "# Not in the nav\n", "orphan.md"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_broken_link_anchor_or_unlisted_page_fails_the_build(tmp_path, fault):
    page, text, needle = FAULTS[fault]
    project = tmp_path / "project"
    shutil.copytree(DOCS, project / "docs")
    for name in ("mkdocs.yml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    with (project / "docs" / page).open("a") as file:
        file.write(text)
    result = mkdocs_build(project, tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Aborted with 1 warnings in strict mode" in output, output
    assert "WARNING" in output and needle in output[output.index("WARNING") :], output
