"""A submission that borrows the book's reference answers while it is graded.

``handbook.exercises.chNN`` holds each chapter's checks next to its reference implementations
(``ch00._reference_normalized``), and the book's checkout holds the answers again: the source
notebooks' solution cells, the compiled ``__pycache__``, ``.git``'s objects. Inside the
namespaced sandbox none of them is reachable: every way in (a plain import, ``importlib``,
``__import__`` of a name built from pieces, executing the module's file, unmarshalling its
``.pyc``, reading the source notebook or a git pack) is an error with its reason, graded beside an
honest submission that is credited. Outside the sandbox a learner studying alone still imports
the references as before.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import py_compile
import re
import sys
from pathlib import Path

import pytest
from test_grading import DOUBLE, EXERCISES, LIMITS, statuses, with_checks

from handbook import config
from handbook.exercises import grading, sandbox

pytestmark = pytest.mark.skipif(
    not sandbox.isolation().namespaced,
    reason="the references are kept out of reach only by the namespaced sandbox (unshare, setpriv)",
)

REFERENCE_MODULE = config.project_root() / "handbook" / "exercises" / "ch00.py"
#: A checkout without .git (an unpacked sdist) has no git objects to borrow from.
GIT_OBJECTS = config.project_root() / ".git" / "objects"
OUT_OF_REACH = (
    r"ImportError: handbook\.exercises\.ch00 holds the book's reference answers: "
    r"they are out of reach while a submission is graded"
)


def _targets() -> dict[str, Path]:
    """Files outside the sandbox that hold the answers, each made sure to exist."""
    compiled = Path(importlib.util.cache_from_source(str(REFERENCE_MODULE)))
    py_compile.compile(str(REFERENCE_MODULE), cfile=str(compiled), doraise=True)
    targets = {
        "compiled": compiled,
        "notebook": config.project_root() / "notebooks" / "00_digits.ipynb",
    }
    if GIT_OBJECTS.is_dir():
        targets["git_object"] = next(
            path for path in sorted(GIT_OBJECTS.rglob("*")) if path.is_file()
        )
    return targets


def _attacks(targets: dict[str, Path]) -> dict[str, tuple[str, str]]:
    """Name -> (the 9.1 cell: borrow the reference, then answer; the reason it must fail with)."""
    borrow = "REFERENCE = {}\n"
    attacks = {
        "plain_import": (
            "from handbook.exercises.ch00 import _reference_normalized\n",
            OUT_OF_REACH,
        ),
        "importlib": (
            "import importlib\n"
            "MODULE = importlib.import_module('handbook.exercises.ch00')\n"
            "REFERENCE = MODULE._reference_normalized\n",
            OUT_OF_REACH,
        ),
        "dunder_import_of_a_built_name": (
            "import sys\n"
            "NAME = '.'.join(['hand' + 'book', 'exer' + 'cises', 'ch' + str(0).zfill(2)])\n"
            "__import__(NAME)\n"
            "REFERENCE = sys.modules[NAME]._reference_normalized\n",
            OUT_OF_REACH,
        ),
        "exec_of_the_module_file": (
            "import handbook.exercises.checks as checks, os\n"
            "PATH = os.path.join(os.path.dirname(checks.__file__), 'ch00.py')\n"
            "NAMESPACE = {'__name__': 'handbook.exercises.ch00'}\n"
            "exec(compile(open(PATH).read(), PATH, 'exec'), NAMESPACE)\n"
            "REFERENCE = NAMESPACE['_reference_normalized']\n",
            OUT_OF_REACH,
        ),
        "spec_from_the_file": (
            "import importlib.util, handbook.exercises.checks as checks, os\n"
            "PATH = os.path.join(os.path.dirname(checks.__file__), 'ch00.py')\n"
            "SPEC = importlib.util.spec_from_file_location('handbook.exercises.ch00', PATH)\n"
            "MODULE = importlib.util.module_from_spec(SPEC)\n"
            "SPEC.loader.exec_module(MODULE)\n"
            "REFERENCE = MODULE._reference_normalized\n",
            OUT_OF_REACH,
        ),
        "unmarshal_the_pyc": (
            "import marshal\n"
            "NAMESPACE = {'__name__': 'handbook.exercises.ch00'}\n"
            f"exec(marshal.loads(open({str(targets['compiled'])!r}, 'rb').read()[16:]), "
            "NAMESPACE)\n"
            "REFERENCE = NAMESPACE['_reference_normalized']\n",
            r"FileNotFoundError: \[Errno 2\] No such file or directory: '"
            + re.escape(str(targets["compiled"])),
        ),
        "the_source_notebook": (
            "import json\n"
            f"NOTEBOOK = json.load(open({str(targets['notebook'])!r}))\n"
            "REFERENCE = [c for c in NOTEBOOK['cells'] if 'solution' in "
            "c['metadata'].get('tags', [])]\n",
            r"FileNotFoundError: \[Errno 2\] No such file or directory: '"
            + re.escape(str(targets["notebook"])),
        ),
    }
    if "git_object" in targets:
        attacks["a_git_object"] = (
            f"REFERENCE = open({str(targets['git_object'])!r}, 'rb').read()\n",
            r"FileNotFoundError: \[Errno 2\] No such file or directory: '"
            + re.escape(str(targets["git_object"])),
        )
    return {name: (borrow + cell + DOUBLE, reason) for name, (cell, reason) in attacks.items()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """The honest submission and one per way of borrowing, graded once with two jobs."""
    targets = _targets()
    attacks = _attacks(targets)
    root = tmp_path_factory.mktemp("borrowing-class")
    submissions = root / "submissions"
    submissions.mkdir()
    (submissions / "honest.ipynb").write_text(with_checks(DOUBLE), encoding="utf-8")
    for name, (cell, _) in attacks.items():
        (submissions / f"{name}.ipynb").write_text(with_checks(cell), encoding="utf-8")
    before = {path: path.read_bytes() for path in [REFERENCE_MODULE, *targets.values()]}
    grades = grading.grade_class(
        [submissions],
        out_dir=root / "grades",
        exercises=EXERCISES,
        limits=LIMITS,
        jobs=2,
        stream=io.StringIO(),
    )
    return {
        "grades": {Path(grade.label).stem: grade for grade in grades},
        "attacks": attacks,
        "before": before,
    }


def test_the_honest_submission_beside_the_borrowers_is_credited(graded):
    honest = graded["grades"]["honest"]
    assert statuses(honest) == {"9.1": "passed", "9.2": "passed"}
    assert (honest.score, honest.problems) == (2, [])


@pytest.mark.parametrize(
    "name",
    [
        "plain_import",
        "importlib",
        "dunder_import_of_a_built_name",
        "exec_of_the_module_file",
        "spec_from_the_file",
        "unmarshal_the_pyc",
        "the_source_notebook",
        *(["a_git_object"] if GIT_OBJECTS.is_dir() else []),
    ],
)
def test_a_borrowed_reference_is_an_error_with_its_reason(graded, name):
    grade = graded["grades"][name]
    assert statuses(grade) == {"9.1": "error", "9.2": "passed"}, grade.results
    assert grade.score == 1
    (problem,) = grade.problems
    reason = graded["attacks"][name][1]
    assert re.search(r"cell 2 raised " + reason, problem), problem


def test_a_learner_studying_alone_still_has_the_references(graded):
    for path, data in graded["before"].items():
        assert path.read_bytes() == data, f"{path} changed while the class was graded"
    sys.modules.pop("handbook.exercises.ch00", None)
    reference = importlib.import_module("handbook.exercises.ch00")._reference_normalized
    assert callable(reference)


def test_an_installed_copy_of_the_package_is_masked_too(tmp_path, monkeypatch):
    """A non-editable install beside the checkout (site-packages/handbook) holds the same
    references: the sandbox's set-up masks its chapter modules and its ``__pycache__`` too."""
    installed = tmp_path / "site-packages"
    (installed / "handbook" / "exercises").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [*sys.path, str(installed)])
    script = sandbox._setup_script(LIMITS, [], None)
    exercises = installed / "handbook" / "exercises"
    assert f"for module in {exercises}/ch[0-9][0-9].py; do" in script
    assert f"tmpfs {exercises / '__pycache__'}; fi" in script
    # made before any sandbox starts: a .pyc the grader writes later lands in a masked folder
    assert (exercises / "__pycache__").is_dir()
    assert f"mount -o remount,ro {config.project_root()}\n" in script  # the checkout, masked


def test_the_supervisor_runs_python_by_a_path_that_avoids_masked_folders(monkeypatch):
    """``tests/../.venv/bin/python`` goes through ``tests``, which the sandbox masks."""
    python = config.project_root() / "tests" / ".." / ".venv" / "bin" / "python"
    monkeypatch.setattr(sys, "executable", str(python))
    command = sandbox.Sandbox(LIMITS)._supervisor_command(3)
    assert command[0] == str(config.project_root() / ".venv" / "bin" / "python")


def test_without_namespaces_the_one_warning_line_says_the_references_are_reachable():
    warning = sandbox.Isolation((), False, "unshare not found (util-linux)").warning()
    assert "\n" not in warning
    assert "read the book's reference answers (handbook.exercises.chNN)" in warning
