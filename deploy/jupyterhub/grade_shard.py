#!/usr/bin/env python3
"""Grade one shard of a class, or merge the shards into the class's grades.

The grading Job (``grade-job.yaml``, a Kubernetes Indexed Job) runs one pod per shard; each pod
runs ``handbook-grade-shard shard``, which picks its students by ``JOB_COMPLETION_INDEX`` and
passes their notebooks to ``python -m handbook grade``. The merge Job (``merge-job.yaml``) runs
``handbook-grade-shard merge`` once every shard is done: it pools the shards' result stores and
runs ``handbook grade`` over the whole class, which finds every submission already graded and
grades none again, then writes what needs the whole class at once: ``grades.csv``, the feedback
files, ``copies.csv`` (copies are looked for across shards, not only within one), ``canvas.csv``
and ``points.csv``.

The submissions folder holds one folder per student (``<student>/*.ipynb``, the layout the hub's
``submit`` folders give) or one notebook per student (``<student>.ipynb``). A student's notebooks
are all in one shard: shard ``i`` of ``n`` takes the students ``sorted(students)[i::n]``. Only
regular ``.ipynb`` files are graded: symbolic links, hidden files and folders, anything else is
listed as skipped (a link in a student's folder could point at another student's notebook, and
a named pipe would block the grader's read forever). A shard's own CSVs in ``shards/<i>/`` are
working files (a shard of one student labels the notebook by its file name alone); the class's
are those the merge writes in ``class/``.

Standard library only, so that ``--help`` runs anywhere; the grading itself is the book's own
command, started as a process (this wrapper imports nothing of its internals but
``handbook.exercises.sandbox.isolation``, to refuse grading without the sandbox's namespaces).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: The options of ``handbook grade`` that decide a submission's result (its store key holds the
#: limits and the chapter's checks): shards and the merge must pass the same ones, or the merge
#: would grade the whole class again.
SETTINGS = ("chapter", "timeout", "notebook_timeout", "memory", "cpu")
MANIFEST = "manifest.json"
NOTEBOOK_SUFFIX = ".ipynb"
#: A notebook larger than this is skipped, not read (a class's notebooks are well under 1 MiB).
MAX_BYTES = 64 * 2**20


@dataclass
class Selection:
    """The class as found on disk: student -> notebook paths (relative to the submissions
    folder, POSIX), and what was skipped with why."""

    students: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _regular_notebook(path: Path, relative: str, skipped: dict[str, str]) -> bool:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        skipped[relative] = "a symbolic link"
    elif not stat.S_ISREG(info.st_mode):
        skipped[relative] = "not a regular file"
    elif not path.name.endswith(NOTEBOOK_SUFFIX):
        skipped[relative] = "not a notebook (.ipynb)"
    elif info.st_size > MAX_BYTES:
        skipped[relative] = f"larger than {MAX_BYTES // 2**20} MiB"
    else:
        return True
    return False


def select_class(root: Path) -> Selection:
    """Every student's notebooks under ``root`` (see the module's docstring for the rules)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no submissions folder at {root}")
    selection = Selection()
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            selection.skipped[entry.name] = "a symbolic link"
        elif entry.is_dir():
            notebooks = []
            for folder, folders, files in os.walk(entry, followlinks=False):
                folders[:] = sorted(name for name in folders if not name.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    path = Path(folder) / name
                    relative = path.relative_to(root).as_posix()
                    if _regular_notebook(path, relative, selection.skipped):
                        notebooks.append(relative)
            if notebooks:
                selection.students[entry.name] = notebooks
        elif _regular_notebook(entry, entry.name, selection.skipped):
            selection.students[entry.name.removesuffix(NOTEBOOK_SUFFIX)] = [entry.name]
    return selection


def shard_students(students: list[str] | dict, index: int, count: int) -> list[str]:
    """Shard ``index`` of ``count``: every ``count``-th student in sorted order from ``index``."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(
            f"expected a shard index in 0..{count - 1} of {count} shard(s), got {index}"
        )
    return sorted(students)[index::count]


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def grade_command(files: list[Path], out: Path, arguments: argparse.Namespace) -> list[str]:
    """``python -m handbook grade FILES --out OUT`` with the settings (and, when given, --jobs,
    --roster and --copy-threshold)."""
    command = [sys.executable, "-m", "handbook", "grade", *map(str, files), "--out", str(out)]
    for name in (*SETTINGS, "jobs", "roster", "copy_threshold"):
        value = getattr(arguments, name, None)
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    return command


def settings_of(arguments: argparse.Namespace) -> dict:
    return {name: getattr(arguments, name) for name in SETTINGS}


def check_isolation(allow_unisolated: bool) -> None:
    """Refuse to grade where the sandbox cannot have its own namespaces (the pod's seccomp or
    AppArmor profile, or a masked /proc, forbids them): there a solution cell could read the
    reference answers. ``--allow-unisolated`` grades anyway, with the pod's isolation only."""
    from handbook.exercises import sandbox

    isolation = sandbox.isolation()
    if isolation.namespaced:
        return
    message = (
        f"handbook-grade-shard: the grading sandbox has no namespaces here ({isolation.missing}); "
        "see deploy/jupyterhub/grade-job.yaml for the pod settings it needs"
    )
    if not allow_unisolated:
        raise SystemExit(message + "; --allow-unisolated grades anyway")
    print(f"warning: {message}; grading anyway (--allow-unisolated)", file=sys.stderr, flush=True)


def run_shard(arguments: argparse.Namespace) -> int:
    index = arguments.index
    if index is None:
        index = int(os.environ.get("JOB_COMPLETION_INDEX", ""))
    selection = select_class(arguments.submissions)
    students = shard_students(selection.students, index, arguments.shards)
    out = Path(arguments.out) / "shards" / str(index)
    out.mkdir(parents=True, exist_ok=True)
    files = [Path(arguments.submissions) / name for s in students for name in selection.students[s]]
    print(
        f"shard {index} of {arguments.shards}: {len(students)} of {len(selection.students)} "
        f"student(s), {len(files)} notebook(s)",
        flush=True,
    )
    status = 0
    if files:
        check_isolation(arguments.allow_unisolated)
        status = subprocess.run(grade_command(files, out, arguments), check=False).returncode
    if status == 0:  # the manifest says the shard is complete: written last, atomically
        manifest = {
            "index": index,
            "shards": arguments.shards,
            "settings": settings_of(arguments),
            "submissions": {
                file.relative_to(arguments.submissions).as_posix(): digest(file) for file in files
            },
            "skipped": {
                name: why
                for name, why in selection.skipped.items()
                if name.split("/")[0].removesuffix(NOTEBOOK_SUFFIX) in students
            },
        }
        partial = out / (MANIFEST + ".partial")
        partial.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        partial.replace(out / MANIFEST)
    return status


def read_manifests(out: Path) -> list[dict]:
    paths = sorted((Path(out) / "shards").glob(f"*/{MANIFEST}"))
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


def check_shards(manifests: list[dict], selection: Selection, arguments, root: Path) -> list[str]:
    """What keeps the shards from making the class's grades (empty when nothing does)."""
    if not manifests:
        return ["no shard has finished (no shards/*/manifest.json): run the grading Job first"]
    problems = []
    counts = {manifest["shards"] for manifest in manifests}
    if len(counts) != 1:
        return [f"the shards come from runs of different sizes {sorted(counts)}: clear shards/"]
    (count,) = counts
    missing = sorted(set(range(count)) - {manifest["index"] for manifest in manifests})
    if missing:
        problems.append(f"shard(s) {missing} of {count} have not finished: rerun the grading Job")
    for manifest in manifests:
        if manifest["settings"] != settings_of(arguments):
            problems.append(
                f"shard {manifest['index']} was graded with {manifest['settings']}, the merge "
                f"asks {settings_of(arguments)}: give the merge the grading Job's options"
            )
    graded = {name: sha for manifest in manifests for name, sha in manifest["submissions"].items()}
    now = {name for names in selection.students.values() for name in names}
    if not missing:
        for name in sorted(now - graded.keys()):
            problems.append(f"{name} is in no shard: it was submitted after the grading Job ran")
        for name in sorted(graded.keys() - now):
            problems.append(f"{name} was graded but is no longer in the submissions")
    for name in sorted(now & graded.keys()):
        if digest(root / name) != graded[name]:
            problems.append(f"{name} changed after it was graded")
    return problems


def run_merge(arguments: argparse.Namespace) -> int:
    root = Path(arguments.submissions)
    out = Path(arguments.out)
    selection = select_class(root)
    problems = check_shards(read_manifests(out), selection, arguments, root)
    if problems:
        print("handbook-grade-shard merge: cannot merge yet:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    store = out / "class" / "results"
    store.mkdir(parents=True, exist_ok=True)
    for result in sorted((out / "shards").glob("*/results/*.json")):
        shutil.copyfile(result, store / result.name)  # content-addressed: same name, same grade
    before = set(store.glob("*.json"))
    files = [root / name for names in selection.students.values() for name in names]
    status = subprocess.run(grade_command(files, out / "class", arguments), check=False).returncode
    regraded = set(store.glob("*.json")) - before
    if status == 0 and regraded:
        print(
            f"handbook-grade-shard merge: {len(regraded)} submission(s) were graded again by the "
            "merge: the shards' results did not match its settings",
            file=sys.stderr,
        )
        return 4
    return status


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="handbook-grade-shard", description=__doc__.split("\n\n")[0]
    )
    commands = main.add_subparsers(dest="command", required=True)
    shard = commands.add_parser("shard", help="grade this pod's shard of the class")
    merge = commands.add_parser("merge", help="join the shards into the class's grades")
    for command in (shard, merge):
        command.add_argument(
            "--submissions", type=Path, required=True, help="one folder per student"
        )
        command.add_argument("--out", type=Path, required=True, help="shards/ and class/ go here")
        command.add_argument("--chapter", type=int, help="as handbook grade")
        command.add_argument("--timeout", type=float, help="as handbook grade")
        command.add_argument("--notebook-timeout", type=float, help="as handbook grade")
        command.add_argument("--memory", type=int, help="as handbook grade (MiB per cell)")
        command.add_argument("--cpu", type=int, help="as handbook grade (CPU seconds per cell)")
    shard.add_argument("--shards", type=int, required=True, help="the Job's completions")
    shard.add_argument("--index", type=int, help="default: $JOB_COMPLETION_INDEX")
    shard.add_argument("--jobs", type=int, help="submissions graded at once in this pod")
    shard.add_argument(
        "--allow-unisolated",
        action="store_true",
        help="grade even where the sandbox cannot have its own namespaces",
    )
    merge.add_argument("--roster", type=Path, help="as handbook grade (canvas.csv's ids)")
    merge.add_argument("--copy-threshold", type=float, help="as handbook grade")
    return main


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    if arguments.command == "shard":
        if arguments.index is None and "JOB_COMPLETION_INDEX" not in os.environ:
            raise SystemExit("handbook-grade-shard shard: give --index or set JOB_COMPLETION_INDEX")
        return run_shard(arguments)
    return run_merge(arguments)


if __name__ == "__main__":
    sys.exit(main())
