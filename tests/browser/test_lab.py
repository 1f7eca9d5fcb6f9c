"""JupyterLab as a learner uses it: the student edition of chapter 0, run in Chromium, offline.

JupyterLab starts on a free loopback port with a token, from this environment (as `make lab`
does, the kernel *Python (handbook)* installed into a prefix of the test's own instead of the
environment's, so that the test changes nothing outside its temporary folder). The learner opens
``student/00_digits.ipynb``, the notebook's metadata picks the kernel, runs every cell, sees each
check say "not yet done", writes an answer, and sees the check pass. The concept diagrams of the
student edition render (chapter 0's, and chapter 1's, which a reviewer gets a screenshot of).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, free_port

CHAPTER = "00_digits"
#: The chapter a reviewer gets a JupyterLab screenshot of, at its first concept diagram.
SCREENSHOT_CHAPTER = "01_attention"
KERNEL_NAME, KERNEL_DISPLAY_NAME = "handbook", "Python (handbook)"
SOLVED_EXERCISE = "0.1"
#: MyST that must not show raw in a rendered markdown cell (jupyterlab-myst renders it).
RAW_MYST = ("{cite}", "{doc}", "{ref}", "{numref}", ":::{", "```{")
#: Lab settings: every cell in the page (not only those scrolled to), no news fetched.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

_CELLS_SCRIPT = """() => {
  const notebook = window.jupyterapp.shell.currentWidget.content;
  return notebook.widgets.map((cell) => ({
    type: cell.model.type,
    tags: cell.model.getMetadata('tags') || [],
    count: cell.model.type === 'code' ? cell.model.executionCount : null,
    errors: cell.model.type === 'code' ?
      cell.model.outputs.toJSON().filter((output) => output.output_type === 'error').length : 0,
    checks: Array.from(cell.node.querySelectorAll('.handbook-check')).map((node) => ({
      status: node.className, text: node.innerText,
      border: getComputedStyle(node).borderLeftColor})),
    markdown: cell.model.type === 'markdown' ?
      cell.node.querySelector('.myst')?.textContent ?? null : null,
    myst: cell.node.querySelector('.myst') !== null,  // jupyterlab-myst's rendering
  }));
}"""

_RUN_CELL_SCRIPT = """async ([index, source]) => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  panel.content.widgets[index].model.sharedModel.setSource(source);
  panel.content.activeCellIndex = index;
  await app.commands.execute('notebook:run-cell-and-select-next');
  await app.commands.execute('notebook:run-cell');
}"""


#: The images of the current notebook's markdown cells, once every one has loaded or failed.
_MARKDOWN_IMAGES_SCRIPT = """() => Array.from(
  window.jupyterapp.shell.currentWidget.content.node.querySelectorAll('.jp-MarkdownCell img')
).map((image) => ({src: image.src, alt: image.alt, complete: image.complete,
                   loaded: image.complete && image.naturalWidth > 0}))"""


def _diagrams_of(chapter: str) -> list[str]:
    """The concept diagrams (``figures/NAME.svg``) the chapter's markdown shows, in order."""
    notebook = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    return [
        name
        for cell in notebook.cells
        if cell.cell_type == "markdown"
        for name in re.findall(r"!\[[^\]]*\]\(figures/([^)\s]+\.svg)", cell.source)
    ]


def _wait_for_diagrams(page, expected: list[str], seconds: float = 60) -> list[dict]:
    """The markdown cells' images once ``expected`` are all among them and every one has
    finished loading (or ``seconds`` have passed: the caller's assertion then says what is
    missing)."""
    deadline = time.monotonic() + seconds
    while True:
        images = page.evaluate(_MARKDOWN_IMAGES_SCRIPT)
        names = {Path(image["src"].split("?")[0]).name for image in images}
        done = set(expected) <= names and all(image["complete"] for image in images)
        if done or time.monotonic() > deadline:
            return images
        time.sleep(0.5)


def _environment(folder: Path) -> dict[str, str]:
    """The server's environment: this checkout importable, smoke sizes, Jupyter's folders in the
    test's temporary folder (nothing written to the home folder)."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HANDBOOK_SMOKE": "1",
        "HANDBOOK_LEDGER_DIR": str(folder / "ledger"),
        "JUPYTER_PATH": str(folder / "prefix" / "share" / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(folder / "config"),
        "JUPYTER_DATA_DIR": str(folder / "data"),
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "IPYTHONDIR": str(folder / "ipython"),
    }


def _write_lab_settings(folder: Path) -> Path:
    settings = folder / "settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    return settings


def _wait_until_serving(url: str, server: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"JupyterLab did not answer {url} within {seconds} s")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base URL, token, folder): JupyterLab serving a folder that holds the student edition."""
    folder = tmp_path_factory.mktemp("lab")
    environment = _environment(folder)
    run = {"env": environment, "check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        [sys.executable, "-m", "handbook", "student", CHAPTER, SCREENSHOT_CHAPTER]
        + ["--out", str(folder / "student")],
        cwd=ROOT,
        **run,
    )
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--prefix", str(folder / "prefix")]
        + ["--name", KERNEL_NAME, "--display-name", KERNEL_DISPLAY_NAME],
        **run,
    )
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={_write_lab_settings(folder)}",
        f"--LabApp.workspaces_dir={folder / 'workspaces'}",
    ]  # fmt: skip
    if os.geteuid() == 0:  # CI runs as root; a learner's laptop does not
        command.append("--allow-root")
    log = (folder / "lab.log").open("w")
    server = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(f"{base}/api/status?token={token}", server)
        yield base, token, folder
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def notebook_page(browser, blocked, lab, screenshots):
    """The student notebook open in JupyterLab, every cell run once."""
    base, token, folder = lab
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", blocked.route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/lab/tree/student/{CHAPTER}.ipynb?token={token}")
    page.wait_for_function(
        "() => { const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " const kernel = panel && panel.sessionContext && panel.sessionContext.session"
        " && panel.sessionContext.session.kernel;"
        " return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle'; }",
        timeout=120_000,
    )
    kernel = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.kernelDisplayName"
    )
    started = time.monotonic()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    cells = page.evaluate(_CELLS_SCRIPT)
    page.locator(".handbook-check").first.scroll_into_view_if_needed()
    page.screenshot(path=screenshots / f"lab-{CHAPTER}-not-done.png")
    yield {
        "page": page,
        "kernel": kernel,
        "cells": cells,
        "errors": errors,
        "blocked": blocked.take(),
        "seconds": time.monotonic() - started,
        "folder": folder,
    }
    context.close()


def test_the_notebook_opens_with_the_handbook_kernel(notebook_page):
    assert notebook_page["kernel"] == KERNEL_DISPLAY_NAME
    assert not notebook_page["errors"] and not notebook_page["blocked"]


def test_run_all_runs_every_cell_without_an_error(notebook_page):
    code = [cell for cell in notebook_page["cells"] if cell["type"] == "code"]
    assert all(cell["count"] for cell in code), "a cell was not run"
    assert not [index for index, cell in enumerate(code) if cell["errors"]]


def test_every_check_cell_says_not_yet_done_in_red(notebook_page):
    checks = [check for cell in notebook_page["cells"] for check in cell["checks"]]
    assert len(checks) >= 3
    for check in checks:
        assert "handbook-check-not-done" in check["status"]
        assert "not yet done" in check["text"]
        assert check["border"] == "rgb(229, 83, 75)"  # checks._FAILED_COLOR


def test_markdown_renders_myst_not_raw_syntax(notebook_page):
    markdown = [cell for cell in notebook_page["cells"] if cell["type"] == "markdown"]
    rendered = [cell["markdown"] for cell in markdown]
    assert rendered and all(text is not None for text in rendered), "a markdown cell did not render"
    assert all(cell["myst"] for cell in markdown), "jupyterlab-myst did not render every cell"
    raw = {marker for text in rendered for marker in RAW_MYST if marker in text}
    assert not raw, f"shown raw in JupyterLab: {sorted(raw)}"


def test_a_solved_exercise_passes_with_a_tick(notebook_page, screenshots):
    page = notebook_page["page"]
    source = nbformat.read(ROOT / "notebooks" / f"{CHAPTER}.ipynb", as_version=4)
    tag = f"exercise-{SOLVED_EXERCISE}"
    solution = next(cell for cell in source.cells if tag in cell.metadata.get("tags", []))
    index = next(i for i, cell in enumerate(notebook_page["cells"]) if tag in cell["tags"])
    page.evaluate(_RUN_CELL_SCRIPT, [index, solution.source])
    check = page.locator(".jp-Cell").nth(index + 1).locator(".handbook-check-passed")
    check.wait_for(timeout=60_000)
    assert check.inner_text().startswith(f"✓ Exercise {SOLVED_EXERCISE}")
    check.scroll_into_view_if_needed()
    page.screenshot(path=screenshots / f"lab-{CHAPTER}-solved.png")


def test_the_student_editions_diagrams_render(notebook_page):
    expected = _diagrams_of(CHAPTER)
    assert expected, f"chapter {CHAPTER} shows no concept diagram (figures/NAME.svg)"
    images = _wait_for_diagrams(notebook_page["page"], expected)
    loaded = {Path(image["src"].split("?")[0]).name for image in images if image["loaded"]}
    assert set(expected) <= loaded, (
        f"not rendered in JupyterLab: {sorted(set(expected) - loaded)}; images seen: {images}"
    )
    assert all(image["alt"].strip() for image in images), "an image without alt text"


def test_chapter_1_in_jupyterlab_is_shot_at_its_first_diagram(browser, blocked, lab, screenshots):
    """A reviewer's screenshot of chapter 1's student edition, opened (not run) in JupyterLab."""
    base, token, _folder = lab
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", blocked.route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/lab/tree/student/{SCREENSHOT_CHAPTER}.ipynb?token={token}")
    page.wait_for_function(
        "() => { const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return panel && panel.content && panel.content.widgets"
        " && panel.content.node.querySelector('.jp-MarkdownCell .myst'); }",
        timeout=120_000,
    )
    expected = _diagrams_of(SCREENSHOT_CHAPTER)
    images = _wait_for_diagrams(page, expected)
    page.screenshot(path=screenshots / f"lab-{SCREENSHOT_CHAPTER}.png")
    # the workspace may have restored chapter 0's tab too: look in the current notebook only
    panel = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
    first = page.locator(f"[id='{panel}'] .jp-MarkdownCell img").first
    if expected and first.count():
        first.scroll_into_view_if_needed()
        page.screenshot(path=screenshots / f"lab-{SCREENSHOT_CHAPTER}-diagram.png")
    context.close()
    loaded = {Path(image["src"].split("?")[0]).name for image in images if image["loaded"]}
    assert expected, f"chapter {SCREENSHOT_CHAPTER} shows no concept diagram (figures/NAME.svg)"
    assert set(expected) <= loaded, f"not rendered: {sorted(set(expected) - loaded)}"
    assert not errors and not blocked.take()
    for name in (f"lab-{SCREENSHOT_CHAPTER}.png", f"lab-{SCREENSHOT_CHAPTER}-diagram.png"):
        assert (screenshots / name).stat().st_size > 10_000, name


def test_jupyterlab_offers_its_interface_in_chinese(lab):
    """`make lab` installs JupyterLab's Chinese language pack (issue 25): the lab lists zh_CN
    among its languages and serves the pack's translations of its own menus."""
    import json
    import urllib.request

    base, token, _folder = lab
    with urllib.request.urlopen(f"{base}/lab/api/translations/?token={token}", timeout=30) as reply:
        languages = json.load(reply)["data"]
    assert "zh_CN" in languages, sorted(languages)
    with urllib.request.urlopen(
        f"{base}/lab/api/translations/zh_CN?token={token}", timeout=30
    ) as reply:
        pack = json.load(reply)["data"]
    assert "jupyterlab" in pack and any(
        "\u4e00" <= character <= "\u9fff" for character in json.dumps(pack, ensure_ascii=False)
    )
