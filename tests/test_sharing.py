"""Chapters sharing the machine (handbook.sharing): a timed cell runs alone, whatever else runs is
stopped and continued, a chapter that cannot be stopped is waited for, a chapter that dies
releases the others, and a stopped kernel's clock leaves its pause out. Real kernels, through
handbook.book.execute, as `make book` runs them."""

import io
import json
import os
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from handbook import book, runner, sharing

pytestmark = pytest.mark.skipif(
    not sharing.supported() or (os.cpu_count() or 1) < 2,
    reason="the book shares the machine only with SIGSTOP, fork and two cores",
)

#: A cell that keeps one core busy, from the moment it creates file ``started`` until file
#: ``done`` exists (at most 60 s), and prints when it ran and every sample of its progress.
BUSY = """import pathlib, time
pathlib.Path({started!r}).touch()
start, samples = time.time(), []
while not pathlib.Path({done!r}).exists() and time.time() - start < 60:
    samples.append(time.time())
    sum(range(20000))
print(json.dumps({{"start": start, "end": time.time(), "samples": samples}}))"""
#: A cell that waits until file ``path`` exists (at most 60 s).
WAIT_FOR = """import pathlib, time
deadline = time.time() + 60
while not pathlib.Path({path!r}).exists() and time.time() < deadline:
    time.sleep(0.02)"""
#: A cell that prints when it ran, sleeping ``seconds``, then creates file ``then`` (if given).
SLEEP = """import pathlib
start = time.time()
time.sleep({seconds})
if {then!r}:
    pathlib.Path({then!r}).touch()
print(json.dumps({{"start": start, "end": time.time()}}))"""


def _cell(source, *, timed=False):
    cell = new_code_cell(source)
    if timed:
        cell.metadata["tags"] = [sharing.TIMED_TAG]
    return cell


def _notebook(path, *cells):
    cells = [new_code_cell("import json, time"), *cells]
    nbformat.write(new_notebook(cells=cells), path)
    return path


def _run(tmp_path, notebooks, **variables):
    printed = io.StringIO()
    environment = runner.notebook_environment(smoke=True, strict_exercises=True)
    runs = book.execute(
        notebooks,
        tmp_path / "out",
        environment={**environment, **variables},
        shared={notebook.stem for notebook in notebooks},
        stream=printed,
    )
    return runs, printed.getvalue()


def _printed(run, index):
    """What cell ``index`` of an executed copy printed, read as JSON."""
    cell = nbformat.read(run.output, as_version=4).cells[index]
    return json.loads(cell.outputs[0]["text"])


def _held(run):
    return nbformat.read(run.output, as_version=4).metadata.get(sharing.METADATA_KEY)


def test_a_timed_cell_stops_the_other_chapter_until_it_ends(tmp_path):
    started, done = str(tmp_path / "started"), str(tmp_path / "done")
    busy = _notebook(tmp_path / "busy.ipynb", _cell(BUSY.format(started=started, done=done)))
    timer = _notebook(
        tmp_path / "timer.ipynb",
        _cell(WAIT_FOR.format(path=started)),  # the busy cell is running
        _cell(SLEEP.format(seconds=1.5, then=""), timed=True),
        _cell(SLEEP.format(seconds=0.3, then=done)),
    )
    (busy_run, timer_run), printed = _run(tmp_path, [busy, timer])
    assert busy_run.ok and timer_run.ok, (busy_run.error, timer_run.error)
    other, timed = _printed(busy_run, 1), _printed(timer_run, 2)
    samples = other["samples"]
    # the busy cell made no progress while the timed cell ran, and some before and after it
    assert not [t for t in samples if timed["start"] + 0.1 < t < timed["end"] - 0.1]
    assert samples[0] < timed["start"] < timed["end"] < samples[-1]
    stopped = max(t for t in samples if t <= timed["start"] + 0.1)
    continued = min(t for t in samples if t >= timed["end"] - 0.1)
    held = _held(busy_run)
    assert held["paused_s"] == pytest.approx(continued - stopped, abs=0.5)
    assert held["paused_s"] > 1.0 and _held(timer_run)["paused_s"] == 0.0
    assert "busy.ipynb ... ok in" in printed and "s of it held back for timed cells" in printed


def test_untimed_cells_start_only_when_no_timed_cell_runs(tmp_path):
    ready, timing = str(tmp_path / "ready"), str(tmp_path / "timing")
    timer = _notebook(
        tmp_path / "timer.ipynb",
        _cell(WAIT_FOR.format(path=ready)),
        _cell(
            f"import pathlib\npathlib.Path({timing!r}).touch()\n"
            + SLEEP.format(seconds=1.5, then=""),
            timed=True,
        ),
    )
    later = _notebook(
        tmp_path / "later.ipynb",
        _cell(f"import pathlib\npathlib.Path({ready!r}).touch()\n" + WAIT_FOR.format(path=timing)),
        _cell(SLEEP.format(seconds=0.1, then="")),
    )
    (timer_run, later_run), _ = _run(tmp_path, [timer, later])
    assert timer_run.ok and later_run.ok, (timer_run.error, later_run.error)
    timed, after = _printed(timer_run, 2), _printed(later_run, 2)
    assert after["start"] >= timed["end"] - 0.05  # it started once the timed cell was over
    metadata = nbformat.read(later_run.output, as_version=4).metadata
    assert sharing.held_back_seconds(metadata) > 1.0


def test_a_timed_cell_waits_for_a_chapter_that_must_not_be_stopped(tmp_path):
    """Chapter 5 talks to servers under timeouts: a timed cell elsewhere waits for its cell."""
    (serving,) = sharing.UNPAUSABLE
    running = str(tmp_path / "running")
    server = _notebook(
        tmp_path / f"{serving}.ipynb",
        _cell(
            f"import pathlib\npathlib.Path({running!r}).touch()\n"
            + SLEEP.format(seconds=2, then="")
        ),
    )
    timer = _notebook(
        tmp_path / "timer.ipynb",
        _cell(WAIT_FOR.format(path=running)),
        _cell(SLEEP.format(seconds=0.5, then=""), timed=True),
    )
    (server_run, timer_run), _ = _run(tmp_path, [server, timer])
    assert server_run.ok and timer_run.ok, (server_run.error, timer_run.error)
    untimed, timed = _printed(server_run, 1), _printed(timer_run, 2)
    assert timed["start"] >= untimed["end"] - 0.05
    assert _held(server_run)["paused_s"] == 0.0 and _held(timer_run)["waited_s"] > 0.5


@pytest.mark.parametrize(
    ("ending", "error"),
    [
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "dying.ipynb"),  # kernel dies
        ("1 / 0", "ZeroDivisionError"),  # the cell raises; papermill stops there
    ],
)
def test_a_chapter_that_fails_in_a_timed_cell_lets_the_other_go_on(tmp_path, ending, error):
    started, done = str(tmp_path / "started"), str(tmp_path / "done")
    busy = _notebook(tmp_path / "busy.ipynb", _cell(BUSY.format(started=started, done=done)))
    dying = _notebook(
        tmp_path / "dying.ipynb",
        _cell(WAIT_FOR.format(path=started)),
        _cell(f"import pathlib\npathlib.Path({done!r}).touch()\n{ending}", timed=True),
        _cell("print('never')"),
    )
    (busy_run, dying_run), _ = _run(tmp_path, [busy, dying])
    assert busy_run.ok, busy_run.error  # continued, although its stopper never ended its cell
    assert not dying_run.ok and error in dying_run.error


def test_a_stopped_kernel_s_clock_leaves_its_pause_out(tmp_path, monkeypatch):
    paused = tmp_path / "paused"
    monkeypatch.setenv(sharing.PAUSED_FILE_ENV, str(paused))
    assert sharing.paused_seconds() == 0.0  # no file yet
    paused.write_text("2.5")
    assert sharing.paused_seconds() == 2.5
    assert sharing.clock() == pytest.approx(time.perf_counter() - 2.5, abs=0.05)
    paused.write_text("half a minute")
    assert sharing.paused_seconds() == 0.0
    monkeypatch.delenv(sharing.PAUSED_FILE_ENV)
    assert sharing.clock() == pytest.approx(time.perf_counter(), abs=0.05)


def test_the_machine_refuses_a_pausable_list_of_the_wrong_length(tmp_path):
    with pytest.raises(ValueError, match="pausable has 1 entries for 2 chapters"):
        sharing.SharedMachine(2, pausable=[True], folder=tmp_path)


def test_the_last_code_cell_is_found_by_id_and_held_back_seconds_are_read(tmp_path):
    path = tmp_path / "n.ipynb"
    notebook = new_notebook(
        cells=[new_code_cell("x = 1"), new_code_cell("y = 2"), new_code_cell("")]
    )
    nbformat.write(notebook, path)
    assert sharing.last_code_cell_id(path) == notebook.cells[1].id
    sharing.record_held_back(path, {"paused_s": 1.25, "waited_s": 0.5})
    metadata = nbformat.read(path, as_version=4).metadata
    assert sharing.held_back_seconds(metadata) == 1.75
    assert sharing.held_back_seconds({}) == 0.0


def test_a_kernel_computes_untimed_cells_with_one_thread_and_timed_ones_with_its_own(tmp_path):
    """Two kernels of two threads on two cores wait on each other at every operation; each
    untimed cell gets one thread, each timed cell the threads the kernel started with."""
    threads = "print(torch.get_num_threads())"
    chapter = _notebook(
        tmp_path / "threads.ipynb",
        _cell(f"import torch\n{threads}"),
        _cell(threads),
        _cell(threads, timed=True),
        _cell(threads),
    )
    two = dict.fromkeys(runner.THREAD_VARIABLES, "2")  # whatever pytest-xdist gave this worker
    (run,), _ = _run(tmp_path, [chapter], **two)
    assert run.ok, run.error
    cells = nbformat.read(run.output, as_version=4).cells
    started, untimed, timed, again = (int(cells[i].outputs[0]["text"]) for i in range(1, 5))
    assert (started, untimed, timed, again) == (2, 1, 2, 1)


def test_set_cell_threads_limits_every_pool_and_gives_them_back(monkeypatch):
    import threadpoolctl
    import torch

    monkeypatch.setattr(sharing, "_STARTING_THREADS", {})
    before = torch.get_num_threads()
    pools = {pool["filepath"]: pool["num_threads"] for pool in threadpoolctl.threadpool_info()}
    try:
        # a kernel that starts with two threads everywhere (pytest-xdist gave this worker one)
        torch.set_num_threads(2)
        threadpoolctl.threadpool_limits(limits=2)
        assert pools and torch.get_num_threads() == 2
        sharing.set_cell_threads(timed=False)
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpoolctl.threadpool_info())
        sharing.set_cell_threads(timed=True)
        assert torch.get_num_threads() == 2
        assert all(pool["num_threads"] == 2 for pool in threadpoolctl.threadpool_info())
    finally:
        torch.set_num_threads(before)
        threadpoolctl.threadpool_limits(limits=pools)


def test_a_chapter_that_comes_after_the_others_times_only_once_they_are_done(tmp_path):
    """Chapter 10 times the rebuild of the others (C23): its first cells run beside them, its
    timed cells once every other chapter is done."""
    (last,) = sharing.AFTER_THE_OTHERS
    started = str(tmp_path / "started")
    other = _notebook(
        tmp_path / "other.ipynb",
        _cell(
            f"import pathlib\npathlib.Path({started!r}).touch()\n"
            + SLEEP.format(seconds=2, then="")
        ),
    )
    after = _notebook(
        tmp_path / f"{last}.ipynb",
        _cell(WAIT_FOR.format(path=started)),  # untimed: beside the other chapter
        _cell(SLEEP.format(seconds=0.1, then=""), timed=True),
    )
    (other_run, after_run), _ = _run(tmp_path, [other, after])
    assert other_run.ok and after_run.ok, (other_run.error, after_run.error)
    untimed, timed = _printed(other_run, 1), _printed(after_run, 2)
    assert timed["start"] >= untimed["end"]
    ended = nbformat.read(other_run.output, as_version=4).metadata
    assert sharing.METADATA_KEY in ended  # written before the chapter counted as done
