"""Two chapters share the cores, except while one of them times something.

A full build (``make book``) runs chapters 0 to 9 two at a time (:func:`run_shared`, called by
:func:`handbook.book.execute`). Most of a chapter's time goes to training and evaluating small
models: two threads do that barely faster than one (a small Transformer's training step: 2.0 s
against 2.3 s), while two kernels of two threads each on two cores wait on one another at every
operation and ran it 4.6 times slower. So every untimed cell runs with one thread
(:func:`follow_cell_kinds`, :func:`set_cell_threads`): two chapters then take about the time of
one, and each cell computes the same numbers in every build, whatever ran beside it. A few cells
measure time: a latency, a speed-up, a training time the ledger records. Those cells carry the
tag ``timed`` (:data:`TIMED_TAG`), run with the kernel's own threads, and have the machine to
themselves:

- a cell (timed or not) starts only when no other chapter is in a timed cell;
- a timed cell starts only when no other chapter is starting its kernel, shutting it down, or
  running a cell of a chapter that must not be paused (:data:`UNPAUSABLE`: chapter 5, whose cells
  talk to servers under timeouts); then every other chapter in the middle of a cell has its
  kernel, and whatever the kernel started, stopped (``SIGSTOP``) until the timed cell ends
  (``SIGCONT``).

A stopped kernel loses no work and computes the same numbers; only its clock moves on. The seconds
it spent stopped are written to a file the kernel finds in :data:`PAUSED_FILE_ENV`, and
:func:`clock` subtracts them: the "4 epochs in 2.8 s" a training run prints
(:func:`handbook.train.fit`) leave them out. How long each chapter was held back (stopped, or
waiting to start a cell) is kept in its executed copy's metadata (:data:`METADATA_KEY`), so that the
learning path's per-chapter times (:func:`handbook.book.chapter_timings`) leave it out too.

The state lives in shared memory (:class:`SharedMachine`), one slot per chapter, guarded by one
lock. Each chapter runs in a process of its own, which calls :meth:`SharedMachine.begin` before
its kernel starts; nbclient's hooks (:func:`hooks`: ``on_notebook_start``, ``on_cell_execute``,
``on_cell_executed``) call :meth:`SharedMachine.kernel_ready`, :meth:`SharedMachine.enter_cell`
and :meth:`SharedMachine.leave_cell`.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

#: The cell tag that gives a cell the machine to itself.
TIMED_TAG = "timed"
#: Chapters whose cells are never stopped midway: chapter 5 starts servers and a load generator
#: and waits on them under timeouts, which a stopped clock would trip. They only wait at a cell's
#: start, and a timed cell elsewhere waits for their running cell to end.
UNPAUSABLE = frozenset({"05_serving"})
#: Chapters whose timed cells wait until every other chapter of the build is done: chapter 10
#: times a rebuild of the others from their executed copies (claim C23). Its first, untimed cells
#: run beside the last of them.
AFTER_THE_OTHERS = frozenset({"10_toolchain"})
#: The file, named by this variable, holding the seconds the kernel has spent stopped.
PAUSED_FILE_ENV = "HANDBOOK_PAUSED_FILE"
#: The file, named by this variable, saying whether the cell about to run is ``timed``.
CELL_KIND_FILE_ENV = "HANDBOOK_CELL_KIND_FILE"
#: Where an executed copy records how long its chapter was held back, in its notebook metadata.
METADATA_KEY = "handbook_shared_machine"

# A slot's state.
WAITING, STARTING, IDLE, UNTIMED, TIMED, PAUSED, FINISHING, DONE = range(8)
#: States in which no timed cell may start elsewhere: CPU is being spent that cannot be stopped.
_BUSY_UNSTOPPABLE = (STARTING, TIMED, FINISHING)


def supported() -> bool:
    """Stopping a kernel midway needs POSIX signals and ``fork`` (Linux, macOS)."""
    return hasattr(signal, "SIGSTOP") and "fork" in multiprocessing.get_all_start_methods()


def paused_seconds() -> float:
    """Seconds this kernel has spent stopped so far (0.0 outside a shared build)."""
    path = os.environ.get(PAUSED_FILE_ENV)
    if not path:
        return 0.0
    try:
        return float(Path(path).read_text(encoding="utf-8") or 0.0)
    except (OSError, ValueError):
        return 0.0


def clock() -> float:
    """``time.perf_counter()`` less the seconds this kernel spent stopped for another chapter's
    timed cell: the clock to print a training run's duration with. A timed cell never runs
    stopped, so for what it measures this is ``perf_counter`` itself."""
    return time.perf_counter() - paused_seconds()


def is_timed(cell: Mapping) -> bool:
    """True for a code cell tagged :data:`TIMED_TAG`."""
    return TIMED_TAG in cell.get("metadata", {}).get("tags", [])


def _processes(pid: int) -> list:
    """The processes started by process ``pid`` (the kernel, and whatever it started), parents
    first; gone ones are left out."""
    import psutil

    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).children(recursive=True)
    return []


def _signal(processes: Sequence, number: int) -> None:
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(number)


class SharedMachine:
    """The state of ``count`` chapters sharing the machine, in shared memory: create it before the
    chapters' processes start (they inherit it), one slot per chapter.

    ``pausable[i]`` says whether slot ``i``'s cells may be stopped midway; ``folder`` holds the
    files of :data:`PAUSED_FILE_ENV`, one per slot.
    """

    def __init__(
        self,
        count: int,
        *,
        pausable: Sequence[bool],
        folder: Path,
        last: Sequence[bool] | None = None,
        context=None,
    ):
        if len(pausable) != count:
            raise ValueError(f"pausable has {len(pausable)} entries for {count} chapters")
        last = [False] * count if last is None else list(last)
        if len(last) != count:
            raise ValueError(f"last has {len(last)} entries for {count} chapters")
        context = context or multiprocessing.get_context("fork")
        self.count = count
        self.condition = context.Condition()
        self.states = context.Array("i", [WAITING] * count, lock=False)
        self.pids = context.Array("i", [0] * count, lock=False)
        self.pausable = list(pausable)
        #: slots whose timed cells wait until every other slot is done
        self.last = last
        self.paused_since = context.Array("d", [0.0] * count, lock=False)
        self.paused_total = context.Array("d", [0.0] * count, lock=False)
        self.waited_total = context.Array("d", [0.0] * count, lock=False)
        folder.mkdir(parents=True, exist_ok=True)
        self.paused_files = [folder / f"paused-{slot}" for slot in range(count)]
        self.cell_kind_files = [folder / f"cell-kind-{slot}" for slot in range(count)]
        for path in self.paused_files:
            path.write_text("0.0", encoding="utf-8")

    # what the hooks call, in the chapter's own process ------------------------------------------

    def begin(self, slot: int) -> None:
        """Before the chapter's kernel starts: wait until no timed cell runs elsewhere."""
        with self.condition:
            self.pids[slot] = os.getpid()
            # not counted as held back: papermill's clock has not started yet
            self.condition.wait_for(lambda: not self._others_in(slot, (TIMED,)))
            self.states[slot] = STARTING
            self.condition.notify_all()

    def kernel_ready(self, slot: int) -> None:
        with self.condition:
            self.states[slot] = IDLE
            self.condition.notify_all()

    def enter_cell(self, slot: int, *, timed: bool) -> None:
        """Before a code cell is sent to the kernel. An untimed cell waits while a timed one runs
        elsewhere. A timed cell also waits for kernels starting or finishing and for cells that
        cannot be stopped, then stops every other chapter's running cell."""
        with self.condition:
            if not timed:
                self._wait(slot, lambda: not self._others_in(slot, (TIMED,)))
                self.states[slot] = UNTIMED
            else:
                self._wait(slot, lambda: self._timed_may_start(slot))
                self.states[slot] = TIMED
                self._stop_others(slot)
            self.condition.notify_all()

    def leave_cell(self, slot: int, *, last: bool = False) -> None:
        """After a cell's reply and outputs came back. A timed cell lets the others go on. If this
        chapter's kernel was stopped just as its cell ended, wait until it runs again; after its
        ``last`` cell, the chapter holds timed cells back until its kernel has shut down."""
        with self.condition:
            if self.states[slot] == TIMED:
                self._continue_others(slot)
            # stopped as the cell ended: its pause is counted as such, not as a wait
            self.condition.wait_for(lambda: self.states[slot] != PAUSED)
            if last:
                self._wait(slot, lambda: not self._others_in(slot, (TIMED,)))
            self.states[slot] = FINISHING if last else IDLE
            self.condition.notify_all()

    def finish(self, slot: int) -> None:
        """The chapter's run is over, whatever happened: release what it holds, and leave none
        of its own processes stopped."""
        with self.condition:
            if self.states[slot] == TIMED:
                self._continue_others(slot)
            elif self.states[slot] == PAUSED:
                _signal(_processes(self.pids[slot]), signal.SIGCONT)
            self.states[slot] = DONE
            self.condition.notify_all()

    def held_back(self, slot: int) -> dict[str, float]:
        """Seconds slot ``slot`` spent stopped, and waiting to start a cell while another
        chapter's timed cell ran (or, before a timed cell, for a cell that cannot be stopped)."""
        return {
            "paused_s": round(self.paused_total[slot], 3),
            "waited_s": round(self.waited_total[slot], 3),
        }

    # under the lock -------------------------------------------------------------------------------

    def _wait(self, slot: int, ready) -> None:
        start = time.perf_counter()
        self.condition.wait_for(ready)
        self.waited_total[slot] += time.perf_counter() - start

    def _others_in(self, slot: int, states: Sequence[int]) -> bool:
        return any(self.states[other] in states for other in range(self.count) if other != slot)

    def _timed_may_start(self, slot: int) -> bool:
        if self.last[slot] and any(
            self.states[other] != DONE for other in range(self.count) if other != slot
        ):
            return False
        return not self._others_unstoppable(slot)

    def _others_unstoppable(self, slot: int) -> bool:
        for other in range(self.count):
            if other == slot:
                continue
            state = self.states[other]
            if state in _BUSY_UNSTOPPABLE or (state == UNTIMED and not self.pausable[other]):
                return True
        return False

    def _stop_others(self, slot: int) -> None:
        now = time.perf_counter()
        for other in range(self.count):
            if other != slot and self.states[other] == UNTIMED and self.pausable[other]:
                # marked first: whatever happens while signalling, it is continued later
                self.states[other] = PAUSED
                self.paused_since[other] = now
                _signal(_processes(self.pids[other]), signal.SIGSTOP)

    def _continue_others(self, slot: int) -> None:
        now = time.perf_counter()
        for other in range(self.count):
            if other != slot and self.states[other] == PAUSED:
                self.states[other] = UNTIMED
                self.paused_total[other] += now - self.paused_since[other]
                _write_atomically(self.paused_files[other], repr(self.paused_total[other]))
                _signal(_processes(self.pids[other]), signal.SIGCONT)

    def processes(self) -> list:
        """Every process the chapters started (their kernels and what those started)."""
        return [
            process
            for slot in range(self.count)
            if self.pids[slot]
            for process in _processes(self.pids[slot])
        ]


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


# In the kernel: one thread for an untimed cell ----------------------------------------------------


def follow_cell_kinds() -> None:
    """In a kernel the book started for a shared chapter (:data:`CELL_KIND_FILE_ENV` set; the
    runner calls this in every kernel it starts): before each cell, give an untimed cell one
    thread and a timed cell the threads the kernel started with (:func:`set_cell_threads`)."""
    path = os.environ.get(CELL_KIND_FILE_ENV)
    if not path:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return

    def before_cell(info) -> None:
        try:
            timed = Path(path).read_text(encoding="utf-8") == TIMED_TAG
        except OSError:
            timed = False
        set_cell_threads(timed=timed)

    shell.events.register("pre_run_cell", before_cell)


#: The thread counts a kernel started with, per pool, recorded before the first change.
_STARTING_THREADS: dict[str, int] = {}


def set_cell_threads(*, timed: bool) -> None:
    """Two chapters at once, each with a pool of two threads on two cores, run several times
    slower than one after the other: each pool's threads wait for one another at every operation
    while the other chapter holds a core. So an untimed cell runs with one thread (PyTorch's
    pool, and the BLAS and OpenMP pools of the libraries loaded so far, through threadpoolctl);
    a timed cell, alone on the machine, with the threads the kernel started with. The numbers a
    cell computes are the same from build to build: each cell always runs with the same count.
    """
    import sys

    torch = sys.modules.get("torch")
    try:
        import threadpoolctl
    except ImportError:  # scikit-learn brings it; without it only PyTorch's pool changes
        threadpoolctl = None
    pools = threadpoolctl.threadpool_info() if threadpoolctl else []
    # what the kernel started with, recorded before the first change
    if torch is not None:
        _STARTING_THREADS.setdefault("torch", torch.get_num_threads())
    for pool in pools:
        _STARTING_THREADS.setdefault(pool["filepath"], pool["num_threads"])
    if timed and pools:
        starting = {pool["filepath"]: _STARTING_THREADS[pool["filepath"]] for pool in pools}
        threadpoolctl.threadpool_limits(limits=starting)  # each pool by its file
    elif threadpoolctl and not timed:
        threadpoolctl.threadpool_limits(limits=1)
    if torch is not None:  # last: PyTorch's count is OpenMP's, which the limits above also set
        torch.set_num_threads(_STARTING_THREADS["torch"] if timed else 1)


def cell_kind(cell: Mapping) -> str:
    """What the kernel reads before the cell: :data:`TIMED_TAG` or ``untimed``."""
    return TIMED_TAG if is_timed(cell) else "untimed"


# One chapter in its own process -------------------------------------------------------------------


def last_code_cell_id(notebook: Path) -> str | None:
    """The id of the notebook's last code cell with code in it (papermill may insert cells, so
    positions do not tell)."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    code = [
        cell for cell in cells if cell["cell_type"] == "code" and "".join(cell["source"]).strip()
    ]
    return code[-1].get("id") if code else None


def hooks(machine: SharedMachine, slot: int, last_cell: str | None) -> dict:
    """nbclient's hooks that tell ``machine`` where slot ``slot``'s chapter is, and its kernel
    what kind of cell comes next."""

    def on_notebook_start(**_):
        machine.kernel_ready(slot)

    def on_cell_execute(cell, **_):
        _write_atomically(machine.cell_kind_files[slot], cell_kind(cell))
        machine.enter_cell(slot, timed=is_timed(cell))

    def on_cell_executed(cell, execute_reply=None, **_):
        # papermill stops at a cell's error (one not tagged to raise): the kernel shuts down next
        stops = (execute_reply or {}).get("content", {}).get("status") == "error" and (
            "raises-exception" not in cell.get("metadata", {}).get("tags", [])
        )
        last = last_cell is not None and cell.get("id") == last_cell
        machine.leave_cell(slot, last=last or stops)

    return {
        "on_notebook_start": on_notebook_start,
        "on_cell_execute": on_cell_execute,
        "on_cell_executed": on_cell_executed,
        # a stopped kernel is still alive; its outputs come once it runs again
        "iopub_timeout": 3600,
        "raise_on_iopub_timeout": True,
    }


def _run_one(machine: SharedMachine, slot: int, job, environment: dict[str, str], results) -> None:
    """In the chapter's own process: execute it, then record how long it was held back."""
    from handbook import runner

    notebook, output, log = job
    try:
        machine.begin(slot)
        run = runner.execute_notebook(
            notebook,
            output,
            environment={
                **environment,
                PAUSED_FILE_ENV: str(machine.paused_files[slot]),
                CELL_KIND_FILE_ENV: str(machine.cell_kind_files[slot]),
            },
            kernel_log=log,
            client_options=hooks(machine, slot, last_code_cell_id(notebook)),
        )
        held = machine.held_back(slot)
        if run.ok:  # before this chapter counts as done: chapter 10 reads the copy then
            record_held_back(output, held)
    finally:
        machine.finish(slot)
    results.put((slot, run, held))


def record_held_back(executed: Path, held: Mapping[str, float]) -> None:
    """Write ``held`` (seconds stopped and waiting) into the executed copy's metadata."""
    import nbformat

    document = nbformat.read(executed, as_version=nbformat.NO_CONVERT)
    document.metadata[METADATA_KEY] = dict(held)
    nbformat.write(document, executed)


def held_back_seconds(metadata: Mapping) -> float:
    """Seconds a chapter was held back for other chapters' timed cells, from its executed copy's
    notebook metadata (0.0 when it ran alone)."""
    held = metadata.get(METADATA_KEY) or {}
    return max(0.0, float(held.get("paused_s", 0.0)) + float(held.get("waited_s", 0.0)))


def run_shared(
    jobs: Sequence[tuple[Path, Path, Path]],
    *,
    environment: dict[str, str],
    folder: Path,
    at_once: int = 2,
) -> Iterator[tuple[object, dict[str, float]]]:
    """Execute ``(notebook, output, kernel log)`` jobs ``at_once`` at a time, in order, each in a
    process of its own, timed cells alone (see the module's docstring). Yields ``(run, held)``
    as each finishes: the :class:`handbook.runner.NotebookRun` and the seconds it was held back."""
    import papermill  # noqa: F401  imported once here, inherited by the forked processes

    context = multiprocessing.get_context("fork")
    pausable = [Path(notebook).stem not in UNPAUSABLE for notebook, _, _ in jobs]
    last = [Path(notebook).stem in AFTER_THE_OTHERS for notebook, _, _ in jobs]
    machine = SharedMachine(len(jobs), pausable=pausable, last=last, folder=folder, context=context)
    results = context.Queue()
    running: dict[int, multiprocessing.Process] = {}
    waiting = list(range(len(jobs)))
    try:
        while waiting or running:
            while waiting and len(running) < at_once:
                slot = waiting.pop(0)
                process = context.Process(
                    target=_run_one,
                    args=(machine, slot, jobs[slot], environment, results),
                    name=f"chapter {Path(jobs[slot][0]).stem}",
                )
                process.start()
                running[slot] = process
            slot, run, held = _next_result(results, running, jobs, machine)
            running.pop(slot).join()
            yield run, held
    finally:
        # interrupted, or a chapter's process failed: no kernel is left running, or stopped
        left = machine.processes()
        for process in running.values():
            process.terminate()
            process.join(timeout=10)
        _signal(left, signal.SIGTERM)
        _signal(left, signal.SIGCONT)


def _next_result(results, running: Mapping[int, multiprocessing.Process], jobs, machine):
    """The next finished chapter; a process that died without a word is reported as failed, and
    what it held is released."""
    import queue

    from handbook.runner import NotebookRun

    while True:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            for slot, process in running.items():
                if process.exitcode is not None and not process.is_alive():
                    with contextlib.suppress(queue.Empty):
                        return results.get(timeout=1.0)
                    machine.finish(slot)
                    notebook, output, _ = jobs[slot]
                    error = f"{notebook}: its process ended with status {process.exitcode}"
                    return slot, NotebookRun(Path(notebook), Path(output), 0.0, error), {}
