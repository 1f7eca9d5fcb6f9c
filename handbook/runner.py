"""Execute notebooks with papermill: one progress line each, failures named by notebook and cell.

Used by ``handbook run`` / ``handbook book`` (chapter notebooks for the site) and by ``handbook
verify`` (a scratch re-run; ``handbook grade`` runs solution cells in its own sandbox instead,
see :mod:`handbook.exercises.sandbox`). Smoke mode, the ledger folder and the offline switches
reach the kernel as environment variables, the one mechanism that works under papermill and nbval.

:func:`run_notebooks` sits behind the execution cache of :mod:`handbook.cache`: a notebook whose
key is unchanged, and whose executed copy and ledger records are still the ones its last run
wrote, is not executed again (its line says ``cached``); ``force=True`` executes everything.
Notebooks can run side by side (``jobs``), each kernel then limited to its share of the cores.
The kernel's own stderr (library start-up chatter such as PyTorch's ``gpuGetDeviceCount failed``
lines) goes to ``logs/<notebook>.log`` beside the folder of executed copies instead of the
terminal; a cell's error still
reaches the terminal through the failure report, with the log's path.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

from handbook import cache, config

KERNEL_NAME = "python3"


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


def chapter_notebooks(root: Path | None = None) -> list[Path]:
    """The chapter notebooks in book order: ``notebooks/NN_name.ipynb`` sorted by name."""
    folder = (root or config.project_root()) / "notebooks"
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


@contextlib.contextmanager
def kernel_environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables for kernels started inside the block, then restore them."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
) -> NotebookRun:
    """Run ``notebook`` top to bottom with papermill, writing the executed copy to ``output``.

    The kernel starts in the notebook's own folder; with ``kernel_log`` its stderr (and
    papermill's own log lines) go to that file rather than to the terminal. Never raises for an
    error inside the notebook: the returned :class:`NotebookRun` carries the description instead.
    """
    import papermill

    notebook = Path(notebook)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = None
    try:
        with kernel_environment(environment), stderr_to(kernel_log):
            papermill.execute_notebook(
                str(notebook),
                str(output),
                parameters=parameters or {},
                kernel_name=KERNEL_NAME,
                cwd=str(notebook.parent),
                progress_bar=False,
                execution_timeout=timeout_s,
                # the kernel's own start-up chatter (loopback transport notes) is not ours to show
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
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


def key_environment(environment: dict[str, str]) -> dict[str, str]:
    """The part of a kernel's environment that can change what a notebook shows: everything but
    where its ledger records go."""
    return {name: value for name, value in environment.items() if name != config.LEDGER_ENV}


def chapter_records(ledger_dir: Path, notebook: Path) -> dict[str, str]:
    """``{claim id: SHA-256 of its record}`` for the records ``notebook`` wrote: those whose
    ``chapter`` is the notebook's stem, as :func:`handbook.claims.record` is called."""
    records = {}
    for path in sorted(Path(ledger_dir).glob("C*.json")):
        try:
            chapter = json.loads(path.read_text()).get("chapter")
        except (OSError, ValueError):
            continue
        if chapter == notebook.stem:
            records[path.stem] = cache.file_sha256(path)
    return records


def _forget_records(ledger_dir: Path, notebook: Path, entry: cache.Entry | None) -> None:
    """Before a chapter runs again: remove the records its last run left, so that a claim it no
    longer records does not linger in the ledger."""
    stale = set(chapter_records(ledger_dir, notebook)) | set(entry.claims if entry else ())
    for claim_id in stale:
        (Path(ledger_dir) / f"{claim_id}.json").unlink(missing_ok=True)


def _worker_context():
    """Fork where it exists: a worker then starts with papermill already imported (importing it
    anew costs seconds of CPU, mostly jsonschema's grammars); spawn elsewhere (macOS, Windows)."""
    import multiprocessing

    return get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _execute_job(notebook: Path, output: Path, environment: dict[str, str], log: Path):
    return execute_notebook(notebook, output, environment=environment, kernel_log=log)


def run_notebooks(
    notebooks: Sequence[Path],
    out_dir: Path,
    *,
    environment: dict[str, str],
    stream=None,
    cache_dir: Path | None = None,
    force: bool = False,
    jobs: int = 1,
) -> list[NotebookRun]:
    """Execute each notebook into ``out_dir``, printing one line per notebook with its wall time.

    With ``cache_dir``, a notebook whose cache entry still holds (see :mod:`handbook.cache`) is
    not executed: its line says ``cached``; one that runs says why. ``force`` runs every notebook.
    ``jobs`` > 1 runs that many kernels at once (never for timings that will be published: they
    would share the cores). Returns the runs in the order of ``notebooks``.
    """
    stream = stream or sys.stdout
    notebooks = [Path(notebook) for notebook in notebooks]
    for notebook in notebooks:
        if not notebook.is_file():
            raise FileNotFoundError(f"no notebook at {notebook}")
    ledger = Path(environment.get(config.LEDGER_ENV) or config.ledger_dir())
    kernel_variables = {**environment, **threads_per_kernel(jobs)}
    runs: dict[Path, NotebookRun] = {}
    pending: list[tuple[Path, str, dict[str, str]]] = []
    count = len(notebooks)
    for position, notebook in enumerate(notebooks, start=1):
        output = out_dir / notebook.name
        components, reason = {}, "--force" if force else "no cache"
        if cache_dir is not None:
            components = cache.key_components(
                notebook,
                environment=key_environment(kernel_variables),
                package_root=config.project_root(),
            )
            entry = cache.load_entry(cache_dir, notebook)
            if not force:
                reason = cache.reason_to_run(entry, components, output, ledger)
            if reason is None:
                print(
                    f"[{position}/{count}] {notebook.name} ... cached "
                    f"(ran in {entry.seconds:.1f} s last time)",
                    file=stream,
                    flush=True,
                )
                runs[notebook] = NotebookRun(notebook, output, 0.0, cached=True)
                continue
            _forget_records(ledger, notebook, entry)
            cache.entry_path(cache_dir, notebook).unlink(missing_ok=True)
        pending.append((notebook, reason, components))
    done = count - len(pending)

    def report(run: NotebookRun, *, started_line: bool) -> None:
        nonlocal done
        done += 1
        status = "ok" if run.ok else "FAILED"
        why = f" ({run.reason})" if run.reason and cache_dir is not None else ""
        head = "" if started_line else f"[{done}/{count}] {run.notebook.name} ... "
        print(f"{head}{status} in {run.seconds:.1f} s{why}", file=stream, flush=True)
        if not run.ok:
            print(f"    {run.error}", file=stream, flush=True)

    def finish(
        run: NotebookRun, reason: str, components: dict[str, str], *, started_line: bool
    ) -> NotebookRun:
        run = replace(run, reason=reason)
        if cache_dir is not None and run.ok:
            cache.save_entry(
                cache_dir,
                cache.Entry(
                    notebook=str(run.notebook),
                    key=cache.digest(components),
                    components=components,
                    executed=str(run.output),
                    executed_sha256=cache.file_sha256(run.output),
                    claims=chapter_records(ledger, run.notebook),
                    seconds=round(run.seconds, 1),
                ),
            )
        report(run, started_line=started_line)
        return run

    logs = out_dir.parent / "logs"
    if jobs <= 1 or len(pending) <= 1:
        for notebook, reason, components in pending:
            print(f"[{done + 1}/{count}] {notebook.name} ...", end=" ", file=stream, flush=True)
            run = _execute_job(
                notebook, out_dir / notebook.name, kernel_variables, logs / f"{notebook.stem}.log"
            )
            runs[notebook] = finish(run, reason, components, started_line=True)
    else:
        import papermill  # noqa: F401  imported once here, inherited by forked workers

        with ProcessPoolExecutor(max_workers=jobs, mp_context=_worker_context()) as pool:
            futures = {
                pool.submit(
                    _execute_job,
                    notebook,
                    out_dir / notebook.name,
                    kernel_variables,
                    logs / f"{notebook.stem}.log",
                ): (notebook, reason, components)
                for notebook, reason, components in pending
            }
            for future in as_completed(futures):
                notebook, reason, components = futures[future]
                runs[notebook] = finish(future.result(), reason, components, started_line=False)
    return [runs[notebook] for notebook in notebooks]


# The cache's own benchmark ------------------------------------------------------------------------

#: What a scratch copy of the book leaves out: build output, environments, caches, people's work.
#: Everything else comes along, since chapters read more than their sources (chapter 5 the
#: manifests in deploy/, chapter 10 the Makefile, .ci/run and a test file it times).
_NOT_COPIED = (
    "_build",
    ".venv",
    "venv",
    ".git",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "*.egg-info",
    "student",
    "grades",
)


def _copy_book(target: Path) -> Path:
    """A copy of the checkout in ``target`` (an existing, empty folder), without
    :data:`_NOT_COPIED`; not a git checkout, like a book downloaded as a zip."""
    import shutil

    root = config.project_root()
    shutil.copytree(root, target, ignore=shutil.ignore_patterns(*_NOT_COPIED), dirs_exist_ok=True)
    return target


def _timed_book_build(root: Path, *options: str) -> float:
    """Seconds for ``python -m handbook book --smoke`` in the scratch copy ``root``."""
    import subprocess

    environment = {**os.environ, "PYTHONPATH": str(root), config.BUILD_ENV: "_build/smoke"}
    environment.pop(config.LEDGER_ENV, None)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "handbook", "book", "--smoke", *options],
        cwd=root,
        env=environment,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def _append_to_markdown_cell(notebook: Path, text: str) -> None:
    import nbformat

    content = nbformat.read(notebook, as_version=4)
    cell = next(cell for cell in content.cells if cell.cell_type == "markdown")
    cell.source += text
    nbformat.write(content, notebook)


def benchmarks(smoke: bool = False) -> list:
    """The execution cache, measured: a smoke-mode build of the whole book (every chapter
    executed, then the site) against the same build with nothing changed, after editing one
    chapter's markdown, and after editing ``handbook/multimodal.py`` (chapter 8's module).

    Each build runs once, one after the other in a scratch copy of the book, so the ratios come
    from one run; ``smoke`` changes nothing (the builds are smoke builds already).
    """
    import tempfile

    from handbook import bench

    with tempfile.TemporaryDirectory(prefix="handbook-cache-bench-") as scratch:
        root = _copy_book(Path(scratch))
        seconds = {"every chapter executed (--force)": _timed_book_build(root, "--force")}
        seconds["nothing changed"] = _timed_book_build(root)
        _append_to_markdown_cell(root / "notebooks" / "08_multimodal.ipynb", "\n\nAn edit.")
        seconds["chapter 8's markdown edited"] = _timed_book_build(root)
        module = root / "handbook" / "multimodal.py"
        module.write_text(module.read_text() + "\n# an edit\n")
        seconds["handbook/multimodal.py edited"] = _timed_book_build(root)
    full = seconds["every chapter executed (--force)"]
    group = "runner: smoke book rebuild"
    return [
        bench.Measurement(group, variant, value * 1000.0, full / value, None, "one build each")
        for variant, value in seconds.items()
    ]
