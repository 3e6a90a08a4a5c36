"""The README is the front door: its two commands first, CI running its test command verbatim, links that resolve."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def _first_block() -> list[str]:
    text = README.read_text()
    found = re.search(r"```\n(.*?)\n```", text, re.DOTALL)
    assert found, "the README has no code block"
    return found.group(1).split("\n")


def test_the_readme_opens_with_its_title_then_the_two_commands():
    text = README.read_text()
    assert text.startswith("# appt-tools\n\n```\n")
    install_and_demo, install_and_test = _first_block()
    assert install_and_demo == "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/appt-tools demo"
    assert "[dev]" not in install_and_demo  # the product alone, not the development extras
    assert install_and_test.endswith("&& .venv/bin/pytest -q") and "'.[dev]'" in install_and_test


def test_ci_runs_the_readmes_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().rstrip("\n").split("\n")
    assert ci[-1] == _first_block()[1]


def test_the_readme_stays_a_front_door():
    assert len(README.read_bytes()) < 10_000


def test_every_relative_link_in_the_readme_and_docs_resolves():
    for page in [README, *DOCS]:
        for target in re.findall(r"\]\(([^)#]+?)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
