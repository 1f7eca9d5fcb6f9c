"""handbook.classroom's pieces that need no root and no hub: names, passwords, the students'
Python, what the instructor's commands read and write (the hub itself is driven in Chromium by
tests/classroom, ``make classroom-test``)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from handbook import classroom
from handbook.classroom import _as_user


@pytest.mark.parametrize("name", ["alice", "b0b", "x", "anne-marie", "j_doe"])
def test_a_login_becomes_a_prefixed_unix_name(name):
    assert classroom.unix_name(name) == f"jupyter-{name}"


@pytest.mark.parametrize("name", ["", "Alice", "1bob", "root;rm", "a" * 24, "../x", "bob smith"])
def test_a_name_no_unix_user_can_have_is_refused_saying_why(name):
    with pytest.raises(ValueError, match="cannot be a login name"):
        classroom.check_name(name)


def test_the_roster_is_handbook_grades_roster(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("submission,Student,SIS Login ID\nalice,Alice A,aa\nbob,Bob B,bb\n")
    assert classroom.roster_names(roster) == ["alice", "bob"]
    roster.write_text("submission\nAlice Smith\n")
    with pytest.raises(ValueError, match="cannot be a login name"):
        classroom.roster_names(roster)
    example = classroom.config.project_root() / "deploy" / "classroom" / "roster.example.csv"
    assert classroom.roster_names(example)


def test_a_password_checks_against_its_hash_only():
    stored = classroom.hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert classroom.check_password("correct horse", stored)
    assert not classroom.check_password("correct hors", stored)
    assert not classroom.check_password("correct horse", None)
    assert not classroom.check_password("", "garbage")
    assert classroom.hash_password("x") != classroom.hash_password("x")  # salted


def test_passwords_are_generated_once_into_files_only_their_owner_reads(tmp_path):
    (tmp_path / "hub").mkdir()
    first = classroom.ensure_passwords(["alice", "bob"], tmp_path)
    assert set(first) == {"alice", "bob"} and len(set(first.values())) == 2
    again = classroom.ensure_passwords(["alice", "bob", "carol"], tmp_path)
    assert set(again) == {"carol"}  # alice and bob keep theirs
    handout = classroom.read_passwords(tmp_path)
    assert handout == {**first, **again}
    hashes = json.loads((tmp_path / "hub" / "passwords.json").read_text())
    assert all(classroom.check_password(handout[name], hashes[name]) for name in handout)
    for path in (tmp_path / "passwords.csv", tmp_path / "hub" / "passwords.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_making_a_folder_readable_never_changes_what_a_link_points_to(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("x")
    outside.chmod(0o700)
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "file").write_text("y")
    (folder / "link").symlink_to(outside)
    classroom.readable_by_all(folder)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "sub" / "file").stat().st_mode) == 0o644
    assert stat.S_IMODE((folder / "sub").stat().st_mode) == 0o755


def test_world_runnable_needs_every_folder_above_searchable(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    program = private / "program"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert not classroom.world_runnable(program)
    private.chmod(0o755)
    os.chmod(tmp_path, os.stat(tmp_path).st_mode | 0o005)
    assert classroom.world_runnable(program) == all(
        folder.stat().st_mode & 0o001 for folder in tmp_path.parents
    )


def test_the_students_python_sees_this_environments_packages(tmp_path):
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [Path(sys._base_executable), Path(f"/usr/bin/python{version}")]
    candidates.append(Path(f"/usr/local/bin/python{version}"))
    if not any(map(classroom.world_runnable, candidates)):  # pyenv's only, in root's home
        with pytest.raises(RuntimeError, match="that other users may run"):
            classroom.student_python(tmp_path)
        return
    python = classroom.student_python(tmp_path)
    assert classroom.world_runnable(python)
    done = subprocess.run(
        [str(python), "-c", "import sys, jupyterlab, handbook; print(sys.prefix)"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "python")
    assert (tmp_path / "python" / "share").resolve() == (Path(sys.prefix) / "share").resolve()


def test_hand_out_keeps_the_students_work_and_adds_what_is_missing(tmp_path):
    edition, course = tmp_path / "edition", tmp_path / "course"
    (edition / "figures").mkdir(parents=True)
    (edition / "00_digits.ipynb").write_text("fresh")
    (edition / "figures" / "a.svg").write_text("<svg/>")
    course.mkdir()
    (course / "00_digits.ipynb").write_text("my answers")
    assert _as_user.hand_out(edition, course) == ["figures/a.svg"]
    assert (course / "00_digits.ipynb").read_text() == "my answers"
    assert (course / "figures" / "a.svg").read_text() == "<svg/>"


def test_read_takes_the_notebooks_up_to_a_size(tmp_path):
    (tmp_path / "00_digits.ipynb").write_text("{}")
    (tmp_path / "01_big.ipynb").write_text("x" * 100)
    (tmp_path / "notes.txt").write_text("not a notebook")
    (tmp_path / "folder.ipynb").mkdir()
    answer = _as_user.read(tmp_path, 50)
    assert answer == {"notebooks": {"00_digits.ipynb": "{}"}, "too_large": ["01_big.ipynb"]}
    assert _as_user.read(tmp_path / "missing", 50) == {"notebooks": {}, "too_large": []}


def test_write_stays_inside_its_folder(tmp_path):
    assert _as_user.write(tmp_path / "feedback", {"00_digits.md": "ok"}) == ["00_digits.md"]
    assert (tmp_path / "feedback" / "00_digits.md").read_text() == "ok"
    with pytest.raises(ValueError, match="refusing to write outside"):
        _as_user.write(tmp_path / "feedback", {"../../escape.md": "no"})
    assert not (tmp_path / "escape.md").exists()


def test_grade_takes_each_students_notebook_of_the_chapter(tmp_path, capsys):
    for name in ("alice", "bob"):
        (tmp_path / name).mkdir()
    (tmp_path / "alice" / "00_digits.ipynb").write_text("{}")
    (tmp_path / "alice" / "01_attention.ipynb").write_text("{}")
    files = classroom.chapter_files(tmp_path, 0, ["alice", "bob", "carol"])
    assert files == [tmp_path / "alice" / "00_digits.ipynb"]
    assert "bob: no chapter-0 notebook" in capsys.readouterr().err
    command = classroom.grade_command(files, tmp_path / "g", chapter=0, roster=None, jobs=2)
    assert command[1:4] == ["-m", "handbook", "grade"] and "--roster" not in command
    assert command[command.index("--chapter") + 1] == "0"


def test_feedback_is_found_per_student_or_alone_for_a_class_of_one(tmp_path):
    (tmp_path / "feedback" / "alice").mkdir(parents=True)
    (tmp_path / "feedback" / "alice" / "00_digits.md").write_text("alice's")
    assert classroom.feedback_of(tmp_path, "alice", ["alice", "bob"]) == {"00_digits.md": "alice's"}
    assert classroom.feedback_of(tmp_path, "bob", ["alice", "bob"]) == {}
    (tmp_path / "feedback" / "00_digits.md").write_text("the only one's")
    assert classroom.feedback_of(tmp_path, "carol", ["carol"]) == {"00_digits.md": "the only one's"}


def test_settings_round_trip_and_a_missing_class_says_how_to_start_one(tmp_path):
    settings = classroom.Settings(state=str(tmp_path), students=["alice"], instructor="ada")
    settings.save()
    assert classroom.Settings.load(tmp_path) == settings
    assert settings.names == ["alice", "ada"]
    with pytest.raises(FileNotFoundError, match="make classroom ROSTER="):
        classroom.Settings.load(tmp_path / "nowhere")


def test_the_command_line_says_what_is_missing_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(classroom.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(classroom, "proxy_command", lambda state: None)
    assert classroom.main(["--state", str(tmp_path), "check"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "root" in error and "apt-get install nodejs npm" in error
    assert classroom.main(["--state", str(tmp_path / "none"), "collect"]) == 1
    assert "no classroom in" in capsys.readouterr().err
