"""Publishing: the workflows run what the README says, the repository's address is written once,
Binder and Colab start a chapter with handbook installed, and the lab's kernel is the notebooks'."""

import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPOSITORY = CONFIG["repository"]["url"]
KERNELSPEC = {"name": "handbook", "display_name": "Python (handbook)", "language": "python"}


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _commands(workflow: dict) -> list[str]:
    return [step["run"].strip() for step in _steps(workflow) if "run" in step]


def _actions(workflow: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in _steps(workflow) if "uses" in step]


def _readme_commands() -> dict[str, list[str]]:
    """The README's publishing table: workflow file -> the commands its "runs" column names."""
    table = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`.github/workflows/"):
            commands = re.findall(r"`([^`]+)`", cells[2])
            table[cells[0].strip("`")] = [c for c in commands if not c.startswith("_build")]
    return table


def test_every_workflow_is_in_the_readme_with_what_it_runs():
    listed = _readme_commands()
    assert set(listed) == {f".github/workflows/{path.name}" for path in WORKFLOWS.glob("*.yml")}
    for path, commands in listed.items():
        assert _commands(_workflow(Path(path).name)) == commands, path


def test_the_test_workflow_runs_make_test_on_pushes_and_pull_requests():
    workflow = _workflow("test.yml")
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML reads `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    assert _commands(workflow) == ["bash .ci/run"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_book_workflow_builds_the_full_book_and_deploys_it_with_github_pages():
    workflow = _workflow("book.yml")
    assert _commands(workflow)[0] == "make book"
    pages = ["actions/configure-pages", "actions/upload-pages-artifact", "actions/deploy-pages"]
    assert [action for action in _actions(workflow) if action in pages] == pages
    upload = next(s for s in _steps(workflow) if "upload-pages" in s.get("uses", ""))
    assert upload["with"]["path"] == "_build/html"
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}


def test_the_repository_address_is_written_once():
    owner_and_name = re.sub(r"^https://github\.com/", "", REPOSITORY).rstrip("/")
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    mentions = [
        name
        for name in tracked
        if (ROOT / name).is_file()
        and not name.startswith("notebooks/")
        and owner_and_name in (ROOT / name).read_text(errors="ignore")
    ]
    assert mentions == ["_config.yml"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebooks_name_the_handbook_kernel_and_install_it_on_colab(path):
    notebook = nbformat.read(path, as_version=4)
    assert dict(notebook.metadata["kernelspec"]) == KERNELSPEC
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert f'"handbook @ git+{REPOSITORY}"' in first.source


def _colab_guard(path: Path) -> str:
    first = next(cell for cell in nbformat.read(path, 4).cells if cell.cell_type == "code")
    return first.source.split("import handbook")[0]


def test_the_colab_cell_installs_only_on_colab(monkeypatch):
    guard = _colab_guard(NOTEBOOKS[0])
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda command, **options: calls.append(command))
    exec(guard, {})
    assert calls == []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(guard, {})
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", f"handbook @ git+{REPOSITORY}"]]


def test_binder_installs_handbook_and_the_kernel_the_notebooks_name():
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111, "binder/postBuild must be executable"
    text = post_build.read_text()
    assert "pip install --no-cache-dir -e ." in text
    kernel = (
        f'--sys-prefix --name {KERNELSPEC["name"]} --display-name "{KERNELSPEC["display_name"]}"'
    )
    assert kernel in text


def test_make_lab_installs_the_notebooks_kernel_inside_the_environment():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    kernel = (
        f'--sys-prefix --name {KERNELSPEC["name"]} --display-name "{KERNELSPEC["display_name"]}"'
    )
    assert f"ipykernel install {kernel}" in recipe
    assert "--user" not in recipe


def test_the_site_serves_mathjax_itself_and_fixes_repeated_scripts():
    extensions = CONFIG["sphinx"]["extra_extensions"]
    assert "sphinx-mathjax-offline" in extensions and "handbook.book_site" in extensions
