"""Execute notebooks with papermill: one progress line each, failures named by notebook and cell.

Used by ``handbook run`` / ``handbook book`` (chapter notebooks for the site) and by
``handbook grade`` (students' notebooks). Smoke mode, the ledger folder and the offline switches
reach the kernel as environment variables, the one mechanism that works under papermill and nbval.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from handbook import config

KERNEL_NAME = "python3"


@dataclass
class NotebookRun:
    """The outcome of executing one notebook; ``error`` is None when every cell ran."""

    notebook: Path
    output: Path
    seconds: float
    error: str | None = None

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
) -> NotebookRun:
    """Run ``notebook`` top to bottom with papermill, writing the executed copy to ``output``.

    The kernel starts in the notebook's own folder. Never raises for an error inside the
    notebook: the returned :class:`NotebookRun` carries the description instead.
    """
    import papermill

    notebook = Path(notebook)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = None
    try:
        with kernel_environment(environment):
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
    return NotebookRun(notebook, output, time.perf_counter() - start, error)


def run_notebooks(
    notebooks: Sequence[Path],
    out_dir: Path,
    *,
    environment: dict[str, str],
    stream=None,
) -> list[NotebookRun]:
    """Execute each notebook into ``out_dir`` printing one line per notebook with its wall time."""
    stream = stream or sys.stdout
    runs = []
    for position, notebook in enumerate(notebooks, start=1):
        notebook = Path(notebook)
        if not notebook.is_file():
            raise FileNotFoundError(f"no notebook at {notebook}")
        print(
            f"[{position}/{len(notebooks)}] {notebook.name} ...", end=" ", file=stream, flush=True
        )
        run = execute_notebook(notebook, out_dir / notebook.name, environment=environment)
        status = "ok" if run.ok else "FAILED"
        print(f"{status} in {run.seconds:.1f} s", file=stream, flush=True)
        if not run.ok:
            print(f"    {run.error}", file=stream, flush=True)
        runs.append(run)
    return runs
