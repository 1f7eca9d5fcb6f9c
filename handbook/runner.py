"""Execute one notebook with papermill: its kernel's environment, its timing, its failure in words.

The book pipeline (:mod:`handbook.book`: ``handbook run``, ``handbook book``, ``handbook verify``)
decides which notebooks run, behind the execution cache, and calls :func:`execute_notebook` for
each (or :func:`execute_side_by_side` for several at once); ``handbook grade`` runs solution cells
in its own sandbox instead (see :mod:`handbook.exercises.sandbox`). Smoke mode, the ledger folder
and the offline switches reach the kernel as environment variables
(:func:`notebook_environment`), the one mechanism that works under papermill and nbval.

The kernel's own stderr (library start-up chatter such as PyTorch's ``gpuGetDeviceCount failed``
lines) goes to a log file instead of the terminal (:func:`stderr_to`); a cell's error still
reaches the terminal through the failure report (:func:`describe_failure`), with the log's path.
Notebooks run side by side with ``--jobs N`` get their share of the cores
(:func:`threads_per_kernel`); chapters sharing the machine two at a time in a full build run
untimed cells with one thread and timed cells alone with every thread (:mod:`handbook.sharing`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from handbook import config

KERNEL_NAME = "python3"
#: The kernel's own start-up chatter (loopback transport notes) is not ours to show; it ends
#: without tearing down its modules once its exit handlers have run (:mod:`handbook.kernel_exit`);
#: in a shared chapter it runs each untimed cell with one thread (:mod:`handbook.sharing`).
KERNEL_ARGUMENTS = [
    "--IPKernelApp.log_level=ERROR",
    "--IPKernelApp.exec_lines=import handbook.kernel_exit, handbook.sharing; "
    "handbook.sharing.follow_cell_kinds()",
]


@dataclass
class NotebookRun:
    """The outcome of executing one notebook; ``error`` is None when every cell ran."""

    notebook: Path
    output: Path
    seconds: float
    error: str | None = None
    #: True when the cache's executed copy was reused; ``reason`` says why it ran otherwise.
    cached: bool = False
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def notebook_environment(
    *, smoke: bool, strict_exercises: bool, ledger_dir: Path | None = None
) -> dict[str, str]:
    """The variables every kernel started by the tooling gets (see :mod:`handbook.config`)."""
    variables = dict(config.OFFLINE_ENV)
    variables[config.SMOKE_ENV] = "1" if smoke else "0"
    variables[config.STRICT_EXERCISES_ENV] = "1" if strict_exercises else "0"
    variables[config.PROGRESS_ENV] = "0"
    if ledger_dir is not None:
        variables[config.LEDGER_ENV] = str(ledger_dir)
    return variables


def describe_failure(notebook: Path, error: BaseException) -> str:
    """A one-paragraph report naming the notebook, the cell and the error."""
    cell_index = getattr(error, "cell_index", None)
    if cell_index is None:
        return f"{notebook}: {type(error).__name__}: {error}"
    source = (getattr(error, "source", "") or "").strip().splitlines()
    first_line = source[0] if source else ""
    ename = getattr(error, "ename", type(error).__name__)
    evalue = getattr(error, "evalue", str(error))
    return (
        f"{notebook}: cell {cell_index} (execution count {getattr(error, 'exec_count', '?')}, "
        f"starting `{first_line}`) raised {ename}: {evalue}"
    )


def execute_notebook(
    notebook: Path,
    output: Path,
    *,
    environment: dict[str, str],
    parameters: dict | None = None,
    timeout_s: int = 1800,
    kernel_log: Path | None = None,
    client_options: dict | None = None,
) -> NotebookRun:
    """Run ``notebook`` top to bottom with papermill, writing the executed copy to ``output``.

    The kernel starts in the notebook's own folder; with ``kernel_log`` its stderr (and
    papermill's own log lines) go to that file rather than to the terminal. ``client_options``
    go to nbclient's client (its cell hooks: :func:`handbook.sharing.hooks`). Never raises for an
    error inside the notebook: the returned :class:`NotebookRun` carries the description instead.
    """
    import papermill

    notebook = Path(notebook)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = None
    try:
        with config.temporary_environment(environment), stderr_to(kernel_log):
            papermill.execute_notebook(
                str(notebook),
                str(output),
                parameters=parameters or {},
                kernel_name=KERNEL_NAME,
                cwd=str(notebook.parent),
                progress_bar=False,
                execution_timeout=timeout_s,
                extra_arguments=KERNEL_ARGUMENTS,
                **(client_options or {}),
            )
    except Exception as exc:  # papermill wraps kernel errors; report them, do not crash the run
        error = describe_failure(notebook, exc)
        if kernel_log is not None:
            error += f" (the kernel's log: {kernel_log})"
    return NotebookRun(notebook, output, time.perf_counter() - start, error)


@contextlib.contextmanager
def stderr_to(path: Path | None) -> Iterator[None]:
    """Send file descriptor 2 (inherited by the kernel process) to ``path`` inside the block."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("wb") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


#: Variables that set the size of a kernel's thread pools when notebooks run side by side.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def threads_per_kernel(jobs: int) -> dict[str, str]:
    """With ``jobs`` kernels at once, each gets its share of the cores (at least one thread);
    one kernel alone keeps the libraries' defaults (an empty dict)."""
    if jobs <= 1:
        return {}
    share = str(max(1, (os.cpu_count() or 1) // jobs))
    return dict.fromkeys(THREAD_VARIABLES, share)


def _worker_context():
    """Fork where it exists: a worker then starts with papermill already imported (importing it
    anew costs seconds of CPU, mostly jsonschema's grammars); spawn elsewhere (macOS, Windows)."""
    import multiprocessing

    return get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def execute_side_by_side(
    jobs: Sequence[tuple[Path, Path, Path]], *, environment: dict[str, str], workers: int
) -> Iterator[NotebookRun]:
    """Execute ``(notebook, output, kernel log)`` jobs, ``workers`` kernels at a time, each with
    the thread counts of ``environment`` (the caller adds :func:`threads_per_kernel` to give each
    its share of the cores); yields each run as it finishes."""
    import papermill  # noqa: F401  imported once here, inherited by forked workers

    with ProcessPoolExecutor(max_workers=workers, mp_context=_worker_context()) as pool:
        futures = [
            pool.submit(execute_notebook, notebook, output, environment=environment, kernel_log=log)
            for notebook, output, log in jobs
        ]
        for future in as_completed(futures):
            yield future.result()
