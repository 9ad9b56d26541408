"""The README agrees with the code on what a reader would check first."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from .test_properties import member_of


def readme(repo_root: Path) -> str:
    return (repo_root / "README.md").read_text(encoding="utf-8")


def test_the_member_length_is_stated_once_and_right(repo_root: Path) -> None:
    stated = set(re.findall(r"(\d+)[- ]character member", readme(repo_root)))
    assert stated == {str(len(member_of("anyone")))}


def test_the_layout_names_every_module(repo_root: Path) -> None:
    text = readme(repo_root)
    layout = text[text.index("## Layout") :]
    package = repo_root / "src" / "realtime_visitors"
    for module in package.rglob("*.py"):
        if module.name != "__init__.py":
            assert f" {module.name} " in layout, f"README's layout misses {module.name}"


def test_the_declared_license_is_in_the_repository(repo_root: Path) -> None:
    declared = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["license"]
    text = (repo_root / "LICENSE").read_text()
    assert declared == "MIT"
    assert text.startswith("MIT License")
