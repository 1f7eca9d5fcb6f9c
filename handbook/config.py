"""Environment switches and project paths shared by the package, the notebooks and the CLI.

Smoke mode travels as an environment variable so that it reaches the notebook kernel in the
same way under papermill (``handbook run --smoke``) and under nbval (``make test``): the
``parameters`` cell of every notebook reads ``SMOKE = handbook.smoke_mode()``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

SMOKE_ENV = "HANDBOOK_SMOKE"
LEDGER_ENV = "HANDBOOK_LEDGER_DIR"
STRICT_EXERCISES_ENV = "HANDBOOK_EXERCISES_STRICT"
EXPECT_EXERCISES_ENV = "HANDBOOK_EXERCISES_EXPECT"
PROGRESS_ENV = "HANDBOOK_PROGRESS"
BUILD_ENV = "HANDBOOK_BUILD_DIR"

#: Variables set for every notebook kernel the tooling starts: no hub, no network.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

#: The statuses an exercise check can reach (see :mod:`handbook.exercises.checks`, which names
#: each one), the values ``HANDBOOK_EXERCISES_EXPECT`` may take. Defined here, below both, so that
#: this module need not import the checks to validate the variable.
EXERCISE_STATUSES = ("passed", "failed", "not done", "error", "not reached", "submitted")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"environment variable {name}={value!r}: expected one of 1/0, true/false, yes/no, on/off"
    )


def smoke_mode() -> bool:
    """True when ``HANDBOOK_SMOKE`` is set to 1: notebooks shrink sizes, keep their logic."""
    return _flag(SMOKE_ENV)


def strict_exercises() -> bool:
    """True when an exercise check must raise instead of printing (source notebooks in tests)."""
    return _flag(STRICT_EXERCISES_ENV)


def expected_exercise_status() -> str | None:
    """The status every exercise check must reach, or None (a learner's run: never raise).

    ``HANDBOOK_EXERCISES_STRICT=1`` (the source notebooks, with their solutions) means "passed";
    ``HANDBOOK_EXERCISES_EXPECT="not done"`` (the student edition under nbval) means every check
    must find the stub. Checks raise when the status differs (see ``handbook.exercises.checks``).
    """
    expected = os.environ.get(EXPECT_EXERCISES_ENV, "").strip()
    if expected:
        if expected not in EXERCISE_STATUSES:
            raise ValueError(
                f"environment variable {EXPECT_EXERCISES_ENV}={expected!r}: expected one of "
                f"{', '.join(EXERCISE_STATUSES)}"
            )
        return expected
    return "passed" if strict_exercises() else None


def live_progress() -> bool:
    """False when ``HANDBOOK_PROGRESS=0``: executed copies for the static book get one summary
    line per loop instead of hundreds of progress-bar redraws."""
    return PROGRESS_ENV not in os.environ or _flag(PROGRESS_ENV)


def project_root() -> Path:
    """The repository root (the folder holding ``_toc.yml``).

    Found from the package's own location (editable install), else by walking up from the
    working directory; raises if neither is inside a checkout of the book.
    """
    candidates = [Path(__file__).resolve().parent.parent, *Path.cwd().resolve().parents]
    candidates.insert(1, Path.cwd().resolve())
    for folder in candidates:
        if (folder / "_toc.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(
        "could not find the book's checkout (a folder with _toc.yml and notebooks/) above "
        f"{Path.cwd()}; run from inside the repository or install it with `pip install -e .`"
    )


def chapter_notebooks(root: Path | None = None) -> list[Path]:
    """The chapter notebooks in book order: ``notebooks/NN_topic.ipynb`` sorted by name."""
    folder = (root or project_root()) / "notebooks"
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


@contextlib.contextmanager
def temporary_environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables inside the block (for the kernels and libraries started there),
    then restore each to what it was."""
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


def build_dir() -> Path:
    """``<root>/_build``, or ``$HANDBOOK_BUILD_DIR`` (relative to the root): executed notebooks,
    the ledger records and the HTML site. ``make test`` builds into ``_build/smoke`` so that it
    never overwrites the full-mode book that ``make book`` made."""
    override = os.environ.get(BUILD_ENV)
    root = project_root()
    return root / override if override else root / "_build"


def executed_dir(build: Path | None = None) -> Path:
    """``<build>/site/notebooks`` (default: :func:`build_dir`): the executed copies of the
    chapters of a build (the site's pages, and what chapter 10 reads to time a full rebuild)."""
    return (build or build_dir()) / "site" / "notebooks"


def html_dir() -> Path:
    """Where the HTML site is written: ``_build/html`` (``<build dir>/_build/html`` when the
    build directory is overridden). Jupyter Book always writes ``<path-output>/_build/html``."""
    return site_output_root() / "_build" / "html"


def site_output_root() -> Path:
    """The ``--path-output`` given to Jupyter Book (see :func:`html_dir`)."""
    folder = build_dir()
    return folder.parent if folder == project_root() / "_build" else folder


def ledger_dir() -> Path:
    """Where claim records are written: ``$HANDBOOK_LEDGER_DIR``, else ``<build dir>/ledger``
    (:func:`build_dir`: ``_build/smoke/ledger`` under ``make test``), else ``./handbook-ledger``
    outside a checkout."""
    override = os.environ.get(LEDGER_ENV)
    if override:
        return Path(override)
    try:
        return build_dir() / "ledger"
    except FileNotFoundError:
        return Path.cwd() / "handbook-ledger"
