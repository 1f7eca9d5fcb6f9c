"""The ``handbook`` command: run notebooks, build the book, student edition, grade, serve, bench.

python -m handbook run [--smoke] [NOTEBOOK ...]   execute chapter notebooks (cached) with papermill
python -m handbook book [--smoke] [--no-run]      run every chapter, then build the HTML site
python -m handbook ledger                         print the claims ledger of the last run
python -m handbook student [--out student]        write the student edition (no solutions)
python -m handbook grade SUBMISSION ... [--jobs N]  grade a class, each submission sandboxed
python -m handbook serve [--build] [OPTIONS]      chapter 5's prediction server on 127.0.0.1
python -m handbook bench [--smoke] [MODULE ...]   every chapter's side-by-side benchmarks
python -m handbook verify [--smoke] [CHAPTER ...]  re-run chapters, compare with the ledger
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from handbook import config, diagrams, learning_path

#: Chapter modules that provide ``benchmarks(smoke) -> list[bench.Measurement]``.
BENCHMARK_MODULES = [
    "handbook.digits",
    "handbook.attention",
    "handbook.optim",
    "handbook.data",
    "handbook.compress",
    "handbook.cases",
    "handbook.multimodal",
    "handbook.ethics",
    "handbook.continual",
    "handbook.serve.loadtest",
    "handbook.runner",
    "handbook.exercises.grading",
]

#: What the staged book source holds besides the executed notebooks.
BOOK_SOURCES = ["_config.yml", "_toc.yml", "references.bib", "book"]
LEDGER_INCLUDE = Path("book") / "ledger_table.inc"


def _output_dir_for(notebook: Path) -> Path:
    """Chapter notebooks go to the site; any other notebook to ``<build dir>/executed``."""
    chapters = config.project_root() / "notebooks"
    return config.executed_dir() if notebook.parent == chapters else config.build_dir() / "executed"


def clear_ledger(ledger: Path) -> None:
    """Remove the claim records of an earlier run (only those: the folder may hold more)."""
    for record in ledger.glob("C*.json"):
        record.unlink()


def remove_orphan_records(ledger: Path, chapters: list[Path]) -> list[str]:
    """Remove the records of chapters that no longer exist (or that name no chapter), so that a
    run of every chapter leaves exactly what the chapters recorded; returns the claim ids."""
    import json

    stems = {chapter.stem for chapter in chapters}
    removed = []
    for record in sorted(ledger.glob("C*.json")):
        try:
            chapter = json.loads(record.read_text()).get("chapter")
        except (OSError, ValueError):
            chapter = None
        if chapter not in stems:
            record.unlink()
            removed.append(record.stem)
    return removed


def _resolve_notebooks(names: list[str]) -> list[Path]:
    from handbook import runner

    if not names:
        notebooks = runner.chapter_notebooks()
        if not notebooks:
            raise SystemExit(f"no chapter notebooks found in {config.project_root() / 'notebooks'}")
        return notebooks
    paths = []
    for name in names:
        path = Path(name)
        if not path.is_file():
            candidate = config.project_root() / "notebooks" / (path.stem + ".ipynb")
            if not candidate.is_file():
                raise SystemExit(f"no notebook {name!r}: give a path or a name in notebooks/")
            path = candidate
        paths.append(path.resolve())
    return paths


def command_run(arguments: argparse.Namespace) -> int:
    """Execute notebooks behind the execution cache (chapters into ``<build dir>/site/notebooks``,
    others into ``<build dir>/executed``); exit status 1 if any failed."""
    import time

    from handbook import runner

    notebooks = _resolve_notebooks(arguments.notebooks)
    ledger = config.ledger_dir()
    if not arguments.notebooks:
        removed = remove_orphan_records(ledger, notebooks)
        if removed:
            print(f"removed ledger records of no current chapter: {', '.join(removed)}")
    environment = runner.notebook_environment(
        smoke=arguments.smoke, strict_exercises=True, ledger_dir=ledger
    )
    mode = "smoke" if arguments.smoke else "full"
    jobs = max(1, arguments.jobs)
    side_by_side = f", {jobs} at a time" if jobs > 1 else ""
    print(
        f"executing {len(notebooks)} notebook(s) in {mode} mode into {config.build_dir()}"
        f"{side_by_side}"
    )
    if note := shared_cores_note(jobs, smoke=arguments.smoke):
        print(note)
    start = time.perf_counter()
    runs = []
    for output_dir in sorted({_output_dir_for(notebook) for notebook in notebooks}):
        batch = [notebook for notebook in notebooks if _output_dir_for(notebook) == output_dir]
        runs.extend(
            runner.run_notebooks(
                batch,
                output_dir,
                environment=environment,
                cache_dir=config.build_dir() / "cache" / output_dir.name,
                force=arguments.force,
                jobs=jobs,
            )
        )
    failed = [run for run in runs if not run.ok]
    cached = sum(run.cached for run in runs)
    print(
        f"{len(runs) - len(failed)}/{len(runs)} notebooks ok ({cached} cached, "
        f"{len(runs) - cached} executed) in {time.perf_counter() - start:.1f} s"
    )
    if failed:
        print("failures:\n" + "\n".join(f"  {run.error}" for run in failed), file=sys.stderr)
        return 1
    return 0


def stage_book_sources(site_dir: Path) -> None:
    """Copy the book's prose and configuration next to the executed notebooks in ``site_dir``."""
    root = config.project_root()
    for name in BOOK_SOURCES:
        source, target = root / name, site_dir / name
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
        elif source.is_file():
            shutil.copy2(source, target)
        else:
            raise FileNotFoundError(f"the book needs {source}, which is missing")
    # the concept diagrams, beside the executed notebooks whose markdown shows figures/NAME.svg
    diagrams.copy_figures(site_dir / "notebooks")


def write_ledger_include(site_dir: Path) -> Path:
    """Render the claims records of the last run into the file the ledger page includes."""
    from handbook import claims, ledger_page

    return ledger_page.write_page(claims.load_records(), site_dir / LEDGER_INCLUDE)


def _check_every_notebook_executed(site_dir: Path) -> None:
    """Every chapter has an executed copy, and none of them stopped on an error."""
    import nbformat

    from handbook import runner

    missing, failed = [], []
    for notebook in runner.chapter_notebooks():
        executed = site_dir / "notebooks" / notebook.name
        if not executed.is_file():
            missing.append(notebook.name)
        elif nbformat.read(executed, as_version=4).metadata.get("papermill", {}).get("exception"):
            failed.append(notebook.name)
    if missing or failed:
        problems = [f"not executed yet: {', '.join(missing)}"] * bool(missing)
        problems += [f"their last run failed: {', '.join(failed)}"] * bool(failed)
        raise SystemExit("; ".join(problems) + "; run `python -m handbook run` (or drop --no-run)")


def _jupyter_book_executable() -> str:
    beside_python = Path(sys.executable).parent / "jupyter-book"
    found = str(beside_python) if beside_python.exists() else shutil.which("jupyter-book")
    if not found:
        raise SystemExit("jupyter-book is not installed: `pip install -e .` installs it")
    return found


def command_book(arguments: argparse.Namespace) -> int:
    """Execute every chapter (unless --no-run), then build the HTML site with warnings as errors."""
    if not arguments.no_run:
        status = command_run(
            argparse.Namespace(
                notebooks=[], smoke=arguments.smoke, force=arguments.force, jobs=arguments.jobs
            )
        )
        if status:
            return status
    site_dir = config.build_dir() / "site"
    _check_every_notebook_executed(site_dir)
    stage_book_sources(site_dir)
    write_ledger_include(site_dir)
    # generated from the notebooks and this run's timings (see handbook.learning_path)
    learning_path.write_page(
        site_dir / "book", run_dirs=learning_path.run_folders(smoke=arguments.smoke)
    )
    command = [
        _jupyter_book_executable(),
        "build",
        str(site_dir),
        "--path-output",
        str(config.site_output_root()),
        "--warningiserror",
        "--keep-going",
        "--quiet",
    ]
    print("building the site:", " ".join(command[1:]))
    result = subprocess.run(command, check=False)
    if result.returncode:
        print(
            "the site build failed (warnings count as errors): see the messages above",
            file=sys.stderr,
        )
        return result.returncode
    index = config.html_dir() / "index.html"
    print(f"\nThe book is ready: open file://{index}")
    return 0


def command_ledger(arguments: argparse.Namespace) -> int:
    from handbook import claims

    print(claims.render_markdown(claims.load_records()))
    return 0


def command_student(arguments: argparse.Namespace) -> int:
    from handbook.exercises import student

    notebooks = _resolve_notebooks(arguments.notebooks)
    out_dir = Path(arguments.out)
    existing = [n for n in notebooks if (out_dir / n.name).exists() and not arguments.force]
    for notebook in existing:
        print(
            f"kept {out_dir / notebook.name}: it exists and may hold your answers "
            "(--force replaces it)"
        )
    notebooks = [notebook for notebook in notebooks if notebook not in existing]
    written = student.make_student_editions(notebooks, out_dir)
    diagrams.copy_figures(out_dir)  # the notebooks show figures/NAME.svg
    for path in written:
        print(f"wrote {path}")
    print(
        f"student edition: {len(written)} notebook(s) in {out_dir}/ "
        "(solutions removed, outputs cleared)"
    )
    return 0


def command_grade(arguments: argparse.Namespace) -> int:
    """Grade a class in sandboxes (see handbook.exercises.grading); exit status 2 on bad usage,
    3 when the sandbox cannot run on this machine (nothing recorded for anyone)."""
    from handbook.exercises import grading, sandbox, similarity

    limits = sandbox.Limits(
        memory_bytes=arguments.memory * 2**20,
        cpu_seconds=arguments.cpu,
        cell_seconds=arguments.timeout,
        notebook_seconds=arguments.notebook_timeout,
    )
    try:
        grading.grade_class(
            [Path(name) for name in arguments.submissions],
            out_dir=Path(arguments.out),
            csv_path=Path(arguments.csv) if arguments.csv else None,
            chapter=arguments.chapter,
            limits=limits,
            jobs=arguments.jobs,
            roster=Path(arguments.roster) if arguments.roster else None,
            copy_threshold=(
                similarity.THRESHOLD
                if arguments.copy_threshold is None
                else arguments.copy_threshold
            ),
        )
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"handbook grade: {error}") from error
    except sandbox.SandboxUnavailable as error:
        print(f"handbook grade: {error}", file=sys.stderr)
        return 3
    return 0


def benchmark_modules(names: Sequence[str]) -> list[str]:
    """The modules of :data:`BENCHMARK_MODULES` that ``names`` select, in that order: a name is
    the module's path with or without ``handbook.`` (``attention``, ``serve.loadtest``); none
    selects every module. An unknown name raises ``SystemExit`` listing the known ones."""
    if not names:
        return list(BENCHMARK_MODULES)
    short = {module.removeprefix("handbook."): module for module in BENCHMARK_MODULES}
    unknown = [name for name in names if name.removeprefix("handbook.") not in short]
    if unknown:
        raise SystemExit(
            f"handbook bench: no benchmarks named {', '.join(unknown)}; "
            f"expected some of: {', '.join(short)}"
        )
    wanted = {name.removeprefix("handbook.") for name in names}
    return [module for name, module in short.items() if name in wanted]


def command_bench(arguments: argparse.Namespace) -> int:
    from handbook import bench

    rows, failed = [], []
    for module_name in benchmark_modules(arguments.modules):
        print(f"benchmarking {module_name} ...", flush=True)
        try:
            module = importlib.import_module(module_name)
            rows.extend(module.benchmarks(smoke=arguments.smoke))
        except Exception as error:  # one module's failure must not lose the others' rows
            failed.append(module_name)
            print(f"{module_name} failed: {type(error).__name__}: {error}", flush=True)
    print()
    print(bench.format_table(rows))
    print(
        "\nspeed-up = the median over interleaved rounds of the group's baseline time / the "
        "variant's time;\nmiddle half = the interquartile range of those per-round ratios."
    )
    if failed:
        print(f"\n{len(failed)} module(s) failed, their rows are missing: {', '.join(failed)}")
        return 1
    return 0


def _verify_scratch(arguments: argparse.Namespace) -> Path:
    """A fresh folder for the re-run: ``--scratch`` or a new one under the build folder."""
    import tempfile

    if arguments.scratch:
        scratch = Path(arguments.scratch).resolve()
        if scratch.exists() and any(scratch.iterdir()):
            raise SystemExit(f"--scratch {scratch} is not empty: give a new or an empty folder")
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch
    config.build_dir().mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="verify-", dir=config.build_dir()))


def _reference_claims(reference_dir: Path, chapters: set[str]) -> dict:
    """The reference ledger's records of ``chapters``, by claim id."""
    from handbook import claims

    return {
        entry.claim_id: entry
        for entry in claims.load_records(reference_dir)
        if entry.chapter in chapters
    }


def command_verify(arguments: argparse.Namespace) -> int:
    """Re-execute chapters into a scratch folder and compare every claim they record with the
    ledger (read once the re-run is over): exit status 1 if a value drifted or a chapter
    failed, 2 if there is nothing to compare with."""
    from handbook import claims, runner

    notebooks = _resolve_notebooks(arguments.chapters)
    reference_dir = Path(arguments.against) if arguments.against else config.ledger_dir()
    chapters = {notebook.stem for notebook in notebooks}
    if not reference_dir.is_dir():
        print(
            f"there is no ledger in {reference_dir} to compare with: run `python -m handbook "
            "run` first (or point --against at another ledger)",
            file=sys.stderr,
        )
        return 2
    if arguments.rerun_ledger:
        scratch, runs = Path(arguments.rerun_ledger), []
        rerun_dir = scratch
        print(f"comparing the records in {rerun_dir} (nothing re-executed)")
    else:
        scratch = _verify_scratch(arguments)
        rerun_dir = scratch / "ledger"
        environment = runner.notebook_environment(
            smoke=arguments.smoke, strict_exercises=True, ledger_dir=rerun_dir
        )
        environment[config.BUILD_ENV] = str(scratch)
        mode = "smoke" if arguments.smoke else "full"
        print(f"re-executing {len(notebooks)} chapter(s) in {mode} mode into {scratch}")
        # laid out as a build: chapter 10 times the chapters executed before it in the same
        # build (C23), here those of this re-run
        runs = runner.run_notebooks(
            notebooks, config.executed_dir(scratch), environment=environment
        )
    rerun = {
        entry.claim_id: entry
        for entry in claims.load_records(rerun_dir)
        if entry.chapter in chapters
    }
    reference = _reference_claims(reference_dir, chapters)
    if not reference:
        print(
            f"the ledger in {reference_dir} holds no claim of {', '.join(sorted(chapters))}: "
            "run `python -m handbook run` first (or point --against at another ledger)",
            file=sys.stderr,
        )
        return 2
    print(f"\n{'':4} {'':5} ledger in {reference_dir} | re-run")
    comparisons = [
        claims.compare_records(reference.get(claim_id), rerun.get(claim_id))
        for claim_id in sorted(set(reference) | set(rerun), key=lambda claim_id: int(claim_id[1:]))
    ]
    for comparison in comparisons:
        print(comparison.line())
    drifted = [comparison.claim_id for comparison in comparisons if not comparison.agrees]
    unmeasured = [comparison.claim_id for comparison in comparisons if not comparison.compared]
    failed = [run for run in runs if not run.ok]
    for run in failed:
        print(f"chapter failed: {run.error}", file=sys.stderr)
    if drifted or failed:
        print(
            f"\nnot reproducible: {len(drifted)} claim(s) drifted ({', '.join(drifted) or 'none'}),"
            f" {len(failed)} chapter(s) failed; the re-run is in {scratch}",
            file=sys.stderr,
        )
        return 1
    if unmeasured:
        print(
            f"\nno drift: {len(comparisons) - len(unmeasured)} claim(s) reproduced the ledger's "
            f"values; not measured by this re-run, so not compared: {', '.join(unmeasured)}"
        )
    else:
        print(f"\nall {len(comparisons)} claim(s) reproduced the ledger's values")
    if runs and not arguments.scratch:  # a folder of our own, and nothing in it to look into
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"(the re-run's folder {scratch} was removed: `--scratch DIR` keeps one)")
    return 0


def command_serve(arguments: argparse.Namespace) -> int:
    from handbook.serve.__main__ import main as serve_main  # FastAPI loads only for this command

    return serve_main(["--build", *arguments.extra])


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def shared_cores_note(jobs: int, *, smoke: bool) -> str | None:
    """What a full-mode run with ``jobs`` > 1 does to the ledger's timings (None otherwise)."""
    if jobs <= 1 or smoke:
        return None
    return (
        f"note: with --jobs {jobs} the chapters share the cores, so the timings they record in "
        "the ledger (speed-ups, durations) are slower and noisier than with --jobs 1"
    )


def _add_execution_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force",
        action="store_true",
        help="execute every notebook even when the cache says nothing changed",
    )
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        help="notebooks executed at once (default 1: timings in the ledger need the whole "
        "machine; make test uses 2 in smoke mode)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="handbook", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="execute chapter notebooks with papermill")
    run.add_argument("notebooks", nargs="*", help="paths or names (default: every chapter)")
    run.add_argument(
        "--smoke", action="store_true", help="small sizes: same logic, minutes not hours"
    )
    _add_execution_options(run)
    run.set_defaults(handler=command_run)

    book = commands.add_parser("book", help="execute every chapter and build the HTML site")
    book.add_argument("--smoke", action="store_true", help="execute in smoke mode")
    book.add_argument(
        "--no-run", action="store_true", help="reuse the notebooks executed last time"
    )
    _add_execution_options(book)
    book.set_defaults(handler=command_book)

    ledger = commands.add_parser("ledger", help="print the claims ledger of the last run")
    ledger.set_defaults(handler=command_ledger)

    student_parser = commands.add_parser("student", help="write the student edition")
    student_parser.add_argument("notebooks", nargs="*", help="default: every chapter")
    student_parser.add_argument("--out", default="student", help="output folder (default: student)")
    student_parser.add_argument(
        "--force", action="store_true", help="replace student notebooks that already exist"
    )
    student_parser.set_defaults(handler=command_student)

    grade = commands.add_parser(
        "grade",
        help="grade students' notebooks: each solution cell in a sandbox, scored by the grader",
    )
    grade.add_argument(
        "submissions",
        nargs="+",
        help="notebooks, or folders of them (one file or folder per student)",
    )
    grade.add_argument("--out", default="grades", help="output folder (default: grades)")
    grade.add_argument("--csv", help="where to write the score table (default: OUT/grades.csv)")
    grade.add_argument("--chapter", type=int, help="default: the chapter most submissions are")
    grade.add_argument("--jobs", type=int, default=1, help="submissions graded at once")
    grade.add_argument(
        "--timeout", type=float, default=300.0, help="wall-clock seconds per cell (default 300)"
    )
    grade.add_argument(
        "--notebook-timeout", type=float, default=1800.0, help="seconds per notebook (default 1800)"
    )
    grade.add_argument("--memory", type=int, default=2048, help="MiB per cell (default 2048)")
    grade.add_argument("--cpu", type=int, default=60, help="CPU seconds per cell (default 60)")
    grade.add_argument(
        "--roster",
        help="CSV mapping each submission (column 'submission') to its Canvas ids "
        "(Student, ID, SIS User ID, SIS Login ID, Section) for OUT/canvas.csv",
    )
    grade.add_argument(
        "--copy-threshold",
        type=float,
        help="list pairs of solutions at least this alike (0 to 1) in OUT/copies.csv "
        "(default 0.85)",
    )
    grade.set_defaults(handler=command_grade)

    serve = commands.add_parser(
        "serve",
        help="serve the chapter-5 model on 127.0.0.1:8000 (builds it first if missing)",
        description="Every option goes to `python -m handbook.serve` (see its --help), e.g. "
        "`handbook serve --backend int8 --port 8080`.",
    )
    serve.set_defaults(handler=command_serve, passes_options=True)

    bench_parser = commands.add_parser("bench", help="run every chapter's benchmarks side by side")
    bench_parser.add_argument("--smoke", action="store_true", help="fewer repeats")
    bench_parser.add_argument(
        "modules",
        nargs="*",
        help="only these modules' benchmarks, e.g. `attention serve.loadtest` (default: all)",
    )
    bench_parser.set_defaults(handler=command_bench)

    verify = commands.add_parser(
        "verify",
        help="re-run chapters in a scratch folder and compare their claims with the ledger",
        description="Non-timing values must be identical, timing intervals must overlap; "
        "one line per claim; exit status 1 on drift.",
    )
    verify.add_argument("chapters", nargs="*", help="names or paths (default: every chapter)")
    verify.add_argument("--smoke", action="store_true", help="re-run in smoke mode")
    verify.add_argument(
        "--against", help="the ledger folder to compare with (default: the book's ledger)"
    )
    verify.add_argument(
        "--scratch", help="an empty folder for the re-run (default: a new one in the build folder)"
    )
    verify.add_argument(
        "--rerun-ledger",
        help="compare this ledger folder (a re-run's, another machine's) instead of re-executing",
    )
    verify.set_defaults(handler=command_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    arguments, extra = parser.parse_known_args(argv)
    if extra and not getattr(arguments, "passes_options", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    arguments.extra = extra  # `handbook serve --port 8080`: options of python -m handbook.serve
    return arguments.handler(arguments)


if __name__ == "__main__":
    sys.exit(main())
