"""The README's two commands are the product's front door: keep them honest."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b.strip() for b in blocks if "pip install" in b]


def test_readme_has_two_pinned_commands():
    commands = readme_commands()
    assert len(commands) == 2
    assert all("torch==2.13.0" in c for c in commands)
    assert commands[0].endswith("paiexport run recipes/rigl90.yaml --force")  # the flagship recipe
    assert commands[1].endswith("pytest -q")


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci.splitlines()


def test_readme_main_recipe_exists():
    recipe = re.search(r"paiexport run (recipes/\S+\.yaml)", readme_commands()[0]).group(1)
    assert (ROOT / recipe).is_file()
