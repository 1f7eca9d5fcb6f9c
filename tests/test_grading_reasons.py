"""Every reason the grader can give for a cell that stopped, and every refusal of a class folder,
in process: the sandbox decodes how a cell ended into an outcome (``sandbox.Outcome``) and the
grader shows its explanation (the sandboxed runs that produce them are in
tests/test_sandbox.py, tests/test_grading.py and tests/test_hostile_wire.py)."""

from __future__ import annotations

import subprocess

import pytest

from handbook.exercises import discovery, grading, sandbox

LIMITS = sandbox.Limits(
    memory_bytes=256 * 2**20, cpu_seconds=2, file_bytes=8 * 2**20, scratch_bytes=64 * 2**20
)


@pytest.mark.parametrize(
    ("gone", "ending", "notebook_time", "limit", "reason"),
    [
        ("memory", {}, False, "memory", "memory limit 256 MiB exceeded in cell 3"),
        ("gone", {"signal": "SIGXCPU"}, False, "cpu", "CPU time limit 2 s exceeded in cell 3"),
        (
            "gone",
            {"signal": "SIGXFSZ"},
            False,
            "file_size",
            "file size limit 8 MiB exceeded in cell 3 (printing or writing too much)",
        ),
        ("timeout", {}, False, "cell_time", "time limit 300 s exceeded in cell 3"),
        ("timeout", {}, True, "notebook_time", "notebook time limit 1800 s exceeded in cell 3"),
        (
            "the answer is 5.0 MiB, over the limit of 4.0 MiB",
            {"code": 0},
            False,
            "answer",
            "the answer is 5.0 MiB, over the limit of 4.0 MiB in cell 3",
        ),
        (
            "the worker sent a reply out of turn (to request 7 while request 2 was waiting)",
            {"code": 0},
            False,
            None,
            "the worker sent a reply out of turn (to request 7 while request 2 was waiting) in "
            "cell 3",
        ),
        (
            "the other process closed the connection",
            {"supervisor": "not running"},
            False,
            None,
            "the sandbox stopped in cell 3 (not running)",
        ),
        (
            "the other process closed the connection",
            {"signal": "SIGSEGV"},
            False,
            None,
            "the cell's process was killed by SIGSEGV in cell 3",
        ),
        (
            "the other process closed the connection",
            {"code": 70},
            False,
            None,
            "the cell's process exited with status 70 in cell 3 (the other process closed the "
            "connection)",
        ),
    ],
)
def test_a_stopped_cell_gets_the_reason_that_stopped_it(gone, ending, notebook_time, limit, reason):
    outcome = sandbox.stopped_outcome(3, gone, ending, LIMITS, notebook_time=notebook_time)
    assert outcome.limit == limit
    assert outcome.explain() == reason


@pytest.mark.parametrize(
    ("raised", "limit", "reason"),
    [
        (
            {"type": "BlockingIOError", "message": ""},
            "processes",
            "process limit (64 processes) reached in cell 4",
        ),
        (
            {"type": "OSError", "message": "[Errno 24] Too many open files"},
            "descriptors",
            "open file limit (256 at once) reached in cell 4",
        ),
        (
            {"type": "OSError", "message": "[Errno 27] File too large"},
            "file_size",
            "file size limit 8 MiB exceeded in cell 4 (printing or writing too much)",
        ),
        (
            {"type": "OSError", "message": "[Errno 28] No space left"},
            "scratch",
            "scratch space limit 64 MiB exceeded in cell 4",
        ),
        ({"type": "SystemExit", "message": "3"}, None, "cell 4 called sys.exit() (exit(3))"),
        ({"type": "SystemExit", "message": ""}, None, "cell 4 called sys.exit() (exit())"),
        ({"type": "KeyError", "message": ""}, None, "cell 4 raised KeyError"),
        ({"type": "KeyError", "message": "'x'"}, None, "cell 4 raised KeyError: 'x'"),
    ],
)
def test_a_cell_that_raised_is_told_which_limit_it_met(raised, limit, reason):
    outcome = sandbox.raised_outcome(4, raised, LIMITS)
    assert outcome.limit == limit
    assert outcome.explain() == reason


def test_an_outcome_names_only_the_endings_it_knows():
    assert set(sandbox.LIMIT_NAMES).isdisjoint(sandbox.OTHER_ENDINGS)
    with pytest.raises(ValueError, match="expected an ending among"):
        sandbox.Outcome(1, LIMITS, "gremlins")


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
        discovery.infer_chapter([alice])


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
