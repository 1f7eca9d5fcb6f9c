"""A class on JupyterHub, driven in Chromium: ``make classroom-test``.

The hub starts as ``make classroom`` starts it (``python -m handbook.classroom start``: real
password logins, each student's server as a Unix user of its own), for a roster of two students
and an instructor, in a folder of its own under /tmp, with Unix users of a random prefix. Alice
and Bob log in with the passwords the classroom generated; each opens chapter 0 of the student
edition in JupyterLab (the kernel *Python (handbook)*, markdown rendered by jupyterlab-myst);
Alice writes exercise 0.2's solution in the editor and saves it, Bob does not. Alice is refused
Bob's server and the admin page, and, as her Unix user, Bob's files. The instructor collects,
grades and returns: the CSV says passed for Alice's 0.2 and not done for Bob's, and the feedback
lands in Alice's folder, owned by her. At the end the hub stops and the users and their homes
are removed.

Needs root (it creates users), JupyterHub, configurable-http-proxy, Chromium and playwright;
without one of them each test skips saying which (under ``CI=true`` it fails: tests/ci_skips.py).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "browser_conftest", ROOT / "tests" / "browser" / "conftest.py"
)
browser_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser_helpers)

STUDENTS = ("alice", "bob")
INSTRUCTOR = "teach"
CHAPTER = "00_digits"
SOLVED = "0.2"
KERNEL_DISPLAY_NAME = "Python (handbook)"
NOTEBOOK_READY = (
    "() => { const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
    " const kernel = panel && panel.sessionContext && panel.sessionContext.session"
    " && panel.sessionContext.session.kernel;"
    " return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle'; }"
)
_SET_AND_SAVE = """async ([index, source]) => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  panel.content.widgets[index].model.sharedModel.setSource(source);
  await app.commands.execute('docmanager:save');
}"""
_TAGS = """() => window.jupyterapp.shell.currentWidget.content.widgets.map(
  (cell) => cell.model.getMetadata('tags') || [])"""


def why_unavailable() -> str | None:
    """What this machine lacks for the test (None: nothing)."""
    from handbook import classroom

    if missing := classroom.missing_requirements(classroom.default_state()):
        return "; ".join(missing) + " (make classroom-test installs JupyterHub and the proxy)"
    return browser_helpers._why_unavailable()


def _wait_for_hub(url: str, hub: subprocess.Popen, log: Path, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            raise RuntimeError(f"the hub exited ({hub.returncode}): {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the hub did not answer {url} in {seconds} s: {log.read_text()[-3000:]}")


def classroom_command(state: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "handbook.classroom", "--state", str(state), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (the system's, as tests/browser drives it)."""
    if reason := why_unavailable():
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    arguments = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses root otherwise
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=browser_helpers.find_chromium(), headless=True, args=arguments
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def blocked():
    """Every request outside 127.0.0.1 aborted: the class works offline."""
    return browser_helpers.BlockedRequests()


@contextlib.contextmanager
def searchable_checkout():
    """Let other users search (``o+x``: enter, not list) the folders above the checkout while the
    test runs, and restore their modes after. The students' servers run this checkout's Python
    packages as Unix users of their own; a clone in a home of mode 0700 (root's, where a CI
    machine may clone) is out of their reach. An instructor is told by ``start`` to put the
    checkout where every user may read it; a throwaway test machine is changed for the test's
    length only."""
    changed = []
    for folder in reversed(ROOT.resolve().parents):
        mode = stat.S_IMODE(folder.stat().st_mode)
        if not mode & stat.S_IXOTH:
            os.chmod(folder, mode | stat.S_IXOTH)
            changed.append((folder, mode))
    if changed:
        print("made searchable for the test:", ", ".join(str(folder) for folder, _ in changed))
    try:
        yield
    finally:
        for folder, mode in reversed(changed):
            os.chmod(folder, mode)


@pytest.fixture(scope="module")
def hub():
    """The running class: its URL, folder, Unix prefix and passwords."""
    if reason := why_unavailable():
        pytest.skip(reason)
    with searchable_checkout():
        yield from _running_hub()


def _running_hub():
    state = Path(tempfile.mkdtemp(prefix="handbook-classroom-"))
    os.chmod(state, 0o755)  # the students' servers read the edition and the kernel from it
    roster = state / "roster.csv"
    roster.write_text("submission,Student\n" + "".join(f"{n},{n.title()}\n" for n in STUDENTS))
    prefix = f"hbt{secrets.token_hex(2)}-"
    port, hub_port, api_port = (browser_helpers.free_port() for _ in range(3))
    log = state / "hub.log"
    command = [sys.executable, "-m", "handbook.classroom", "--state", str(state), "start"]
    command += ["--roster", str(roster), "--instructor", INSTRUCTOR, "--prefix", prefix]
    command += ["--port", str(port), "--hub-port", str(hub_port)]
    command += ["--proxy-api-port", str(api_port), "--chapters", CHAPTER]
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_hub(f"{base}/hub/api", process, log)
        from handbook import classroom

        yield {
            "base": base,
            "state": state,
            "prefix": prefix,
            "passwords": classroom.read_passwords(state),
            "log": log,
        }
    finally:
        process.terminate()  # the hub stops the students' servers as it exits
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        kept = ROOT / "_build" / "classroom-test-hub.log"  # for a reader of a failure
        kept.parent.mkdir(exist_ok=True)
        shutil.copyfile(log, kept)
        removed = classroom_command(state, "remove")
        shutil.rmtree(state, ignore_errors=True)
        assert removed.returncode == 0, removed.stderr
        left = [entry.pw_name for entry in pwd.getpwall() if entry.pw_name.startswith(prefix)]
        assert not left, f"Unix users left behind: {left}"


def home_of(hub, name: str) -> Path:
    return Path(pwd.getpwnam(hub["prefix"] + name).pw_dir)


def log_in(browser, blocked, hub, name: str, password: str):
    """A browser context of its own, logged in as ``name``; returns (context, page)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", blocked.route)
    page = context.new_page()
    page.goto(f"{hub['base']}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("[type=submit]")
    page.wait_for_load_state()
    return context, page


@pytest.fixture(scope="module")
def students(browser, blocked, hub):
    """Alice and Bob logged in, each with chapter 0 open in JupyterLab (kernel idle)."""
    opened = {}
    for name in STUDENTS:  # both log in first: their servers start side by side
        context, page = log_in(browser, blocked, hub, name, hub["passwords"][name])
        opened[name] = {"context": context, "page": page}
    for name, student in opened.items():
        student["page"].goto(f"{hub['base']}/user/{name}/lab/tree/course/{CHAPTER}.ipynb")
        student["page"].wait_for_function(NOTEBOOK_READY, timeout=240_000)
    yield opened
    for student in opened.values():
        student["context"].close()


def test_the_passwords_are_the_instructors_alone_and_a_wrong_one_is_refused(browser, blocked, hub):
    handout = hub["state"] / "passwords.csv"
    assert handout.stat().st_mode & 0o777 == 0o600
    assert (hub["state"] / "hub" / "passwords.json").stat().st_mode & 0o777 == 0o600
    assert set(hub["passwords"]) == {*STUDENTS, INSTRUCTOR}
    context, page = log_in(browser, blocked, hub, "alice", hub["passwords"]["bob"])
    assert "/hub/login" in page.url
    assert "Invalid username or password" in page.content()
    context.close()


def test_each_student_opens_chapter_0_as_their_own_unix_user(students, hub):
    for name, student in students.items():
        page = student["page"]
        kernel = page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.kernelDisplayName"
        )
        assert kernel == KERNEL_DISPLAY_NAME, name
        assert page.locator(".jp-MarkdownCell .myst").count() > 0, "jupyterlab-myst did not render"
        notebook = home_of(hub, name) / "course" / f"{CHAPTER}.ipynb"
        owner = pwd.getpwuid(notebook.stat().st_uid).pw_name
        assert owner == hub["prefix"] + name
        assert home_of(hub, name).stat().st_mode & 0o777 == 0o700


def test_alice_solves_exercise_0_2_in_the_editor_and_saves_it(students, hub):
    page = students["alice"]["page"]
    source = nbformat.read(ROOT / "notebooks" / f"{CHAPTER}.ipynb", as_version=4)
    tag = f"exercise-{SOLVED}"
    solution = next(cell for cell in source.cells if tag in cell.metadata.get("tags", []))
    index = next(i for i, tags in enumerate(page.evaluate(_TAGS)) if tag in tags)
    page.evaluate(_SET_AND_SAVE, [index, solution.source])
    deadline = time.monotonic() + 60
    while cell_source(hub, "alice", tag) != solution.source and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cell_source(hub, "alice", tag) == solution.source
    assert "NotImplementedError" in cell_source(hub, "bob", tag)


def cell_source(hub, name: str, tag: str) -> str:
    """The source of the cell tagged ``tag`` in the student's saved chapter-0 notebook."""
    notebook = nbformat.read(home_of(hub, name) / "course" / f"{CHAPTER}.ipynb", as_version=4)
    return next(cell.source for cell in notebook.cells if tag in cell.metadata.get("tags", []))


def test_a_student_is_refused_anothers_server_and_the_admin_page(browser, blocked, students, hub):
    page = students["alice"]["page"]
    for path in ("/user/bob/lab/tree/course", f"/user/bob/api/contents/course/{CHAPTER}.ipynb"):
        answer = page.goto(hub["base"] + path)
        assert answer.status in (403, 404), (path, answer.status, page.url)
        assert "def accuracy" not in page.content()
    assert page.goto(f"{hub['base']}/hub/admin").status == 403
    context, teacher = log_in(browser, blocked, hub, INSTRUCTOR, hub["passwords"][INSTRUCTOR])
    assert teacher.goto(f"{hub['base']}/hub/admin").status == 200  # the page exists
    context.close()


def test_a_students_unix_user_can_neither_read_nor_write_anothers_files(hub):
    alice = pwd.getpwnam(hub["prefix"] + "alice")
    theirs = home_of(hub, "bob") / "course" / f"{CHAPTER}.ipynb"
    as_alice = {"user": alice.pw_uid, "group": alice.pw_gid, "extra_groups": []}
    as_alice |= {"capture_output": True, "text": True, "cwd": alice.pw_dir}
    read = subprocess.run(["cat", str(theirs)], **as_alice)
    write = subprocess.run(["touch", str(theirs.parent / "planted")], **as_alice)
    assert read.returncode != 0 and "Permission denied" in read.stderr
    assert write.returncode != 0 and "Permission denied" in write.stderr
    assert subprocess.run(["cat", str(theirs)], capture_output=True).returncode == 0  # root can


def test_the_instructor_collects_grades_and_returns_the_feedback(students, hub):
    state = hub["state"]
    submissions, grades = state / "submissions", state / "grades"
    collected = classroom_command(state, "collect", "--submissions", str(submissions))
    assert collected.returncode == 0, collected.stderr
    assert sorted(path.name for path in submissions.iterdir()) == sorted(STUDENTS)
    assert submissions.stat().st_mode & 0o777 == 0o700
    graded = classroom_command(
        state, "grade", "--chapter", "0", "--submissions", str(submissions), "--out", str(grades)
    )
    assert graded.returncode == 0, graded.stdout + graded.stderr
    assert grades.stat().st_mode & 0o777 == 0o700
    with (grades / "grades.csv").open(newline="") as handle:
        rows = {row["submission"].split("/")[0]: row for row in csv.DictReader(handle)}
    assert rows["alice"][SOLVED] == "passed", rows["alice"]
    assert rows["bob"][SOLVED] == "not done", rows["bob"]
    with (grades / "points.csv").open(newline="") as handle:
        points = {row["student"]: row for row in csv.DictReader(handle)}
    assert (points["alice"][SOLVED], points["bob"][SOLVED]) == ("1", "0")
    feedback = {name: grades / "feedback" / name / f"{CHAPTER}.md" for name in STUDENTS}
    verdict = rf"- Exercise {re.escape(SOLVED)} \([^)]*\): "
    assert re.search(verdict + "passed", feedback["alice"].read_text())
    assert re.search(verdict + "not done", feedback["bob"].read_text())
    returned = classroom_command(state, "return", "--grades", str(grades))
    assert returned.returncode == 0, returned.stderr
    for name in STUDENTS:
        theirs = home_of(hub, name) / "course" / "feedback" / f"{CHAPTER}.md"
        assert pwd.getpwuid(theirs.stat().st_uid).pw_name == hub["prefix"] + name
        assert theirs.read_text() == feedback[name].read_text()
