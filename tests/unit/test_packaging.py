"""pyproject.toml's explicit package list covers every package folder of the checkout.

The list is explicit because ``find`` cannot see through the ``rawstack_harness = "harness"``
package-dir mapping; a subpackage missing from it would be absent from the wheel while every
test of the editable checkout still passed.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALLED_AS = {"rawstack": "rawstack", "harness": "rawstack_harness"}


def listed_packages() -> set[str]:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    table = text.split("\n[tool.setuptools]\n", 1)[1].split("\n[", 1)[0]
    body = re.search(r"^packages = \[(.*?)\]", table, re.S | re.M)
    assert body is not None, "no packages = [...] in [tool.setuptools]"
    return set(re.findall(r'"([\w.]+)"', body.group(1)))


def package_folders() -> set[str]:
    found = set()
    for folder, name in INSTALLED_AS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join((name, *rel.parts)))
    return found


def test_every_package_folder_is_listed_and_nothing_else() -> None:
    assert listed_packages() == package_folders()


def test_the_harness_installs_under_its_own_name() -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'rawstack_harness = "harness"' in text
    assert 'netns = "rawstack_harness.plugin"' in text
    assert not any(p == "harness" or p.startswith("harness.") for p in listed_packages())
