"""Every reason the grader can give for a cell that stopped, and every refusal of a class folder,
in process (the sandboxed runs that produce them are in tests/test_grading.py and
tests/test_hostile_wire.py; some, such as a full scratch folder or a notebook's time limit, are
too slow or too machine-dependent to provoke there)."""

from __future__ import annotations

import subprocess

import pytest

from handbook.exercises import grading, sandbox

LIMITS = sandbox.Limits(
    memory_bytes=256 * 2**20, cpu_seconds=2, file_bytes=8 * 2**20, scratch_bytes=64 * 2**20
)


@pytest.mark.parametrize(
    ("gone", "ending", "deadlines", "reason"),
    [
        ("memory", {}, (1, 2), "memory limit 256 MiB exceeded in cell 3"),
        ("gone", {"signal": "SIGXCPU"}, (1, 2), "CPU time limit 2 s exceeded in cell 3"),
        ("gone", {"signal": "SIGXFSZ"}, (1, 2), "file size limit 8 MiB exceeded in cell 3"),
        ("timeout", {}, (1, 2), "time limit 300 s exceeded in cell 3"),
        ("timeout", {}, (2, 2), "notebook time limit 1800 s exceeded in cell 3"),
        (
            "the answer is 5.0 MiB, over the limit of 4.0 MiB",
            {"code": 0},
            (1, 2),
            "the answer is 5.0 MiB, over the limit of 4.0 MiB in cell 3",
        ),
        (
            "the other process closed the connection",
            {"supervisor": "not running"},
            (1, 2),
            "the sandbox stopped in cell 3 (not running)",
        ),
        (
            "the other process closed the connection",
            {"signal": "SIGSEGV"},
            (1, 2),
            "the cell's process was killed by SIGSEGV in cell 3",
        ),
        (
            "the other process closed the connection",
            {"code": 70},
            (1, 2),
            "the cell's process exited with status 70 in cell 3 (the other process closed",
        ),
    ],
)
def test_a_stopped_cell_gets_the_reason_that_stopped_it(gone, ending, deadlines, reason):
    cell_deadline, notebook_deadline = deadlines
    text = grading._limit_reason(gone, ending, LIMITS, 3, cell_deadline, notebook_deadline)
    assert text.startswith(reason), text


@pytest.mark.parametrize(
    ("raised", "reason"),
    [
        ({"type": "BlockingIOError", "message": ""}, "process limit (64 processes) reached"),
        ({"type": "OSError", "message": "[Errno 27] File too large"}, "file size limit 8 MiB"),
        ({"type": "OSError", "message": "[Errno 28] No space left"}, "scratch space limit 64 MiB"),
        ({"type": "SystemExit", "message": "3"}, "cell 4 called sys.exit() (exit(3))"),
        ({"type": "KeyError", "message": ""}, "cell 4 raised KeyError"),
    ],
)
def test_a_cell_that_raised_is_told_which_limit_it_met(raised, reason):
    assert reason in grading._cell_raised(4, raised, LIMITS)


def test_a_class_folder_is_refused_with_what_was_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no submission at"):
        grading.collect_submissions([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="expected at least one submission, found none"):
        grading.collect_submissions([tmp_path / "empty"])
    alice = tmp_path / "alice.ipynb"
    alice.write_text("{}")
    assert grading.collect_submissions([alice]) == [alice]
    with pytest.raises(ValueError, match="expected each submission once"):
        grading.submission_labels([alice, alice])
    with pytest.raises(ValueError, match="could not tell the chapter"):
        grading.infer_chapter([alice])


def test_sizes_are_named_in_the_largest_whole_unit():
    assert [sandbox.size_text(n) for n in (2 * 2**30, 256 * 2**20, 512 * 2**10)] == [
        "2 GiB",
        "256 MiB",
        "512 KiB",
    ]
    assert sandbox.size_text(1536 * 2**10 + 1) == "1.5 MiB"


def test_where_there_are_no_namespaces_the_grader_says_why(monkeypatch):
    probe = sandbox.isolation.__wrapped__  # the cached probe, run again under each condition
    monkeypatch.setattr(sandbox.sys, "platform", "darwin")
    assert probe().missing == "no namespace sandbox on darwin (Linux only)"
    monkeypatch.setattr(sandbox.sys, "platform", "linux")
    monkeypatch.setattr(sandbox.shutil, "which", lambda tool: None)
    assert probe().missing == "unshare and setpriv not found (util-linux)"
    monkeypatch.setattr(sandbox.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    refused = subprocess.CompletedProcess(
        [], 1, "", "unshare: unshare failed: Operation not permitted\n"
    )
    monkeypatch.setattr(sandbox.subprocess, "run", lambda *args, **kwargs: refused)
    isolation = probe()
    assert not isolation.namespaced
    assert isolation.missing == (
        "unprivileged namespaces are not available (unshare: unshare failed: Operation not "
        "permitted)"
    )
