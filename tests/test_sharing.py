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

#: A cell that keeps one core busy for ``seconds`` of wall time and prints when it ran and the
#: gaps (over 0.3 s) in its progress: the times it was stopped.
BUSY = """import time
start, samples = time.time(), []
while time.time() - start < {seconds}:
    samples.append(time.time())
    sum(range(20000))
gaps = [(a, b) for a, b in zip(samples, samples[1:]) if b - a > 0.3]
print(json.dumps({{"start": start, "end": time.time(), "gaps": gaps}}))"""
#: A cell that prints when it ran, sleeping ``seconds``.
SLEEP = """start = time.time()
time.sleep({seconds})
print(json.dumps({{"start": start, "end": time.time(), "gaps": []}}))"""


def _cell(source, *, timed=False):
    cell = new_code_cell(source)
    if timed:
        cell.metadata["tags"] = [sharing.TIMED_TAG]
    return cell


def _notebook(path, *cells):
    cells = [new_code_cell("import json, time"), *cells]
    nbformat.write(new_notebook(cells=cells), path)
    return path


def _run(tmp_path, notebooks):
    printed = io.StringIO()
    runs = book.execute(
        notebooks,
        tmp_path / "out",
        environment=runner.notebook_environment(smoke=True, strict_exercises=True),
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
    busy = _notebook(tmp_path / "busy.ipynb", _cell(BUSY.format(seconds=4)))
    timer = _notebook(
        tmp_path / "timer.ipynb",
        _cell("time.sleep(1)"),
        _cell(BUSY.format(seconds=1.5), timed=True),
    )
    (busy_run, timer_run), printed = _run(tmp_path, [busy, timer])
    assert busy_run.ok and timer_run.ok, (busy_run.error, timer_run.error)
    other, timed = _printed(busy_run, 1), _printed(timer_run, 2)
    assert timed["gaps"] == []  # the timed cell was never stopped
    # the busy cell made no progress while the timed cell ran: one gap covers it
    assert len(other["gaps"]) == 1, other["gaps"]
    (stopped, continued) = other["gaps"][0]
    assert stopped <= timed["start"] + 0.2 and continued >= timed["end"] - 0.2
    held = _held(busy_run)
    assert held["paused_s"] == pytest.approx(continued - stopped, abs=0.3)
    assert _held(timer_run) == {"paused_s": 0.0, "waited_s": 0.0}
    assert "busy.ipynb ... ok in" in printed and "s of it held back for timed cells" in printed


def test_untimed_cells_start_only_when_no_timed_cell_runs(tmp_path):
    timer = _notebook(tmp_path / "timer.ipynb", _cell(SLEEP.format(seconds=2), timed=True))
    later = _notebook(
        tmp_path / "later.ipynb", _cell("time.sleep(1.5)"), _cell(SLEEP.format(seconds=0.1))
    )
    (timer_run, later_run), _ = _run(tmp_path, [timer, later])
    assert timer_run.ok and later_run.ok
    timed, waited = _printed(timer_run, 1), _printed(later_run, 2)
    assert waited["start"] >= timed["end"] - 0.05  # it started once the timed cell was over
    metadata = nbformat.read(later_run.output, as_version=4).metadata
    assert sharing.held_back_seconds(metadata) > 0.5


def test_a_timed_cell_waits_for_a_chapter_that_must_not_be_stopped(tmp_path):
    """Chapter 5 talks to servers under timeouts: a timed cell elsewhere waits for its cell."""
    (serving,) = sharing.UNPAUSABLE
    server = _notebook(tmp_path / f"{serving}.ipynb", _cell(SLEEP.format(seconds=2.5)))
    timer = _notebook(
        tmp_path / "timer.ipynb",
        _cell("time.sleep(1)"),
        _cell(SLEEP.format(seconds=0.5), timed=True),
    )
    (server_run, timer_run), _ = _run(tmp_path, [server, timer])
    assert server_run.ok and timer_run.ok
    untimed, timed = _printed(server_run, 1), _printed(timer_run, 2)
    # one after the other, never overlapping (usually the timed cell waits for the other's end)
    assert timed["start"] >= untimed["end"] - 0.05 or untimed["start"] >= timed["end"] - 0.05
    assert _held(server_run)["paused_s"] == 0.0
    assert _held(server_run)["waited_s"] + _held(timer_run)["waited_s"] > 0.5


def test_a_chapter_whose_kernel_dies_in_a_timed_cell_lets_the_other_go_on(tmp_path):
    busy = _notebook(tmp_path / "busy.ipynb", _cell(BUSY.format(seconds=3)))
    dying = _notebook(
        tmp_path / "dying.ipynb",
        _cell("time.sleep(1)"),
        _cell("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", timed=True),
    )
    start = time.perf_counter()
    (busy_run, dying_run), _ = _run(tmp_path, [busy, dying])
    assert busy_run.ok, busy_run.error
    assert not dying_run.ok and "dying.ipynb" in dying_run.error
    assert time.perf_counter() - start < 60


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
    (run,), _ = _run(tmp_path, [chapter])
    assert run.ok, run.error
    cells = nbformat.read(run.output, as_version=4).cells
    started, untimed, timed, again = (int(cells[i].outputs[0]["text"]) for i in range(1, 5))
    assert (untimed, timed, again) == (1, started, 1)


def test_set_cell_threads_limits_every_pool_and_gives_them_back(monkeypatch):
    import threadpoolctl
    import torch

    monkeypatch.setattr(sharing, "_STARTING_THREADS", {})
    before = torch.get_num_threads()
    pools = {pool["filepath"]: pool["num_threads"] for pool in threadpoolctl.threadpool_info()}
    try:
        sharing.set_cell_threads(timed=False)
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpoolctl.threadpool_info())
        sharing.set_cell_threads(timed=True)
        assert torch.get_num_threads() == before
        after = {pool["filepath"]: pool["num_threads"] for pool in threadpoolctl.threadpool_info()}
        assert after == pools
    finally:
        torch.set_num_threads(before)
        for path, count in pools.items():
            for pool in threadpoolctl.threadpool_info():
                if pool["filepath"] == path:
                    threadpoolctl.threadpool_limits(limits={pool["prefix"]: count})
