"""The Python versions the book promises are the ones it tests: README, pyproject.toml's
classifiers and floor, the Makefile's matrix and the GitHub workflow name the same ones."""

from __future__ import annotations

import re
import sys

import yaml

from handbook import config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = config.project_root()


def promised() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    prefix = "Programming Language :: Python :: "
    versions = [
        entry.removeprefix(prefix)
        for entry in project["classifiers"]
        if re.fullmatch(r"3\.\d+", entry.removeprefix(prefix))
    ]
    assert project["requires-python"] == f">={versions[0]}", "the floor is the oldest tested"
    return versions


def test_the_workflow_the_makefile_and_the_readme_name_the_classifiers_versions() -> None:
    versions = promised()
    assert versions == ["3.10", "3.11", "3.12", "3.13"]
    workflow = yaml.safe_load((ROOT / ".github/workflows/test.yml").read_text(encoding="utf-8"))
    assert workflow["jobs"]["test"]["strategy"]["matrix"]["python-version"] == versions
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"VERSIONS ?= {' '.join(versions)}\n" in makefile
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"You need Python {', '.join(versions[:-1])} or {versions[-1]}" in readme
    assert f"The tests run on Python {', '.join(versions[:-1])} and {versions[-1]}" in readme


def test_this_python_is_one_the_book_promises() -> None:
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in promised()
