"""The grader on this machine's Python: the sandbox runs the grader's own interpreter, and a
sandbox that cannot start stops the grader instead of failing every student.

A pyenv or conda Python installed in root's home (mode 0700) lies out of reach of the user id a
root grader gives its sandboxes. Before, the dynamic loader then fell back to the system's
``libpython`` where one of the same minor version existed (Debian's 3.11.2 for a pyenv 3.11.7:
grading "worked" on another Python) and failed where none did (3.13: every exercise "error").
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

import pytest
from test_grading import EXERCISES, LIMITS, with_checks

from handbook import cli
from handbook.exercises import grading, sandbox

#: What the supervisor of a Python whose libpython is out of reach prints, word for word.
LOADER_ERROR = (
    "python3.13: error while loading shared libraries: libpython3.13.so.1.0: cannot open "
    "shared object file: No such file or directory"
)


def failing_supervisor(self, fd: int) -> list[str]:
    """A supervisor that dies at start-up, as one whose shared library cannot be loaded."""
    return [sys.executable, "-c", f"import sys; sys.stderr.write({LOADER_ERROR!r}); sys.exit(127)"]


def honest(folder: Path, name: str = "alice.ipynb") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(with_checks("def double(x):\n    return 2 * x\n"), encoding="utf-8")
    return path


def test_the_sandbox_runs_the_graders_own_python() -> None:
    """The probe compares the worker's sys.version and NumPy with the grader's: the same."""
    line = sandbox.probe()
    assert line.startswith("sandbox ready (")
    assert f"Python {sys.version.split()[0]}," in line


def test_a_folder_the_sandbox_user_cannot_enter_is_masked_keeping_the_python() -> None:
    # pytest's own tmp_path lies under a 0700 folder: that would be the closed folder found
    with tempfile.TemporaryDirectory(dir="/var/tmp") as scratch:
        Path(scratch).chmod(0o755)
        check_masking(Path(scratch))


def check_masking(tmp_path: Path) -> None:
    home = tmp_path / "root-home"
    python = home / ".pyenv" / "versions" / "3.13.0"
    (python / "lib").mkdir(parents=True)
    home.chmod(0o700)
    (tmp_path / "open").mkdir()
    uid = sandbox.FIRST_SANDBOX_UID
    assert sandbox._closed_folders([python, python / "lib", tmp_path / "open"], uid) == {
        home: [python]
    }
    home.chmod(0o755)
    assert sandbox._closed_folders([python], uid) == {}
    # the shell lines: hold the folder aside, mask it, bind the Python back read-only
    lines = sandbox._mask_lines(home, [python], "/mnt", "mount -t tmpfs tmpfs")
    assert lines[0] == f"mount --rbind {home} /mnt"
    assert lines[1] == f"mount -t tmpfs tmpfs {home}"
    assert f"mount --rbind /mnt/.pyenv/versions/3.13.0 {python}" in lines[2]
    assert lines[3] == f"mount -o remount,bind,ro {python} {python}"
    assert lines[-1] == "umount -l /mnt"


def test_the_interpreter_paths_hold_the_real_python_and_its_library() -> None:
    paths = sandbox.interpreter_paths()
    real = Path(os.path.realpath(sys.executable)).parent
    assert any(real == path or real.is_relative_to(path) for path in paths)
    stdlib = Path(os.__file__).resolve().parent
    assert any(stdlib.is_relative_to(path) for path in paths)


def test_a_sandbox_that_cannot_start_stops_the_grader_with_its_stderr(
    monkeypatch, tmp_path, capsys
) -> None:
    monkeypatch.setattr(sandbox.Sandbox, "_supervisor_command", failing_supervisor)
    honest(tmp_path / "class")
    out = tmp_path / "grades"

    status = cli.main(["grade", str(tmp_path / "class"), "--out", str(out), "--chapter", "0"])

    assert status == 3
    said = capsys.readouterr().err
    assert said.startswith("handbook grade: the grading sandbox did not start (")
    assert "exit status 127" in said
    assert LOADER_ERROR in said  # the supervisor's own stderr
    assert "nothing was graded" in said and "--probe" in said  # and what to do
    assert not (out / "grades.csv").exists()
    assert list((out / "results").glob("*.json")) == []


def test_a_supervisor_that_dies_mid_class_stops_it_and_records_no_error(
    monkeypatch, tmp_path
) -> None:
    """The probe passed, then every submission's supervisor dies at start: nobody gets an
    'error' for it; the class stops and says how far it got."""
    monkeypatch.setattr(sandbox, "probe", lambda *args, **kwargs: "sandbox ready (test)")
    monkeypatch.setattr(sandbox.Sandbox, "_supervisor_command", failing_supervisor)
    first, second = honest(tmp_path / "class"), honest(tmp_path / "class", "bob.ipynb")

    with pytest.raises(sandbox.SandboxUnavailable) as stopped:
        grading.grade_class(
            [first, second],
            out_dir=tmp_path / "grades",
            exercises=EXERCISES,
            limits=LIMITS,
            stream=io.StringIO(),
        )
    message = str(stopped.value)
    assert message.startswith("stopped after 0 of 2 submission(s)")
    assert LOADER_ERROR in message
    assert list((tmp_path / "grades" / "results").glob("*.json")) == []
    assert not (tmp_path / "grades" / "grades.csv").exists()


def test_the_probe_command_says_the_sandbox_is_ready(capsys) -> None:
    sandbox.main(["--probe"])
    assert capsys.readouterr().out.startswith("sandbox ready (")
