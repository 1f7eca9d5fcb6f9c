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
import contextlib
import importlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from handbook import book, config, diagrams, editions, i18n, worksheets
from handbook.i18n import _

#: Chapter modules that provide ``benchmarks(smoke) -> list[bench.Measurement]``.
BENCHMARK_MODULES = [
    "handbook.digits",
    "handbook.attention",
    "handbook.optimization",
    "handbook.data",
    "handbook.compression",
    "handbook.cases",
    "handbook.multimodal",
    "handbook.ethics",
    "handbook.continual",
    "handbook.serving.benchmarks",
    "handbook.book",
    "handbook.exercises.grading",
    "handbook.exercises.peer_graders",
]


@contextlib.contextmanager
def _book_errors() -> Iterator[None]:
    """A step of the book pipeline that cannot go on ends the command with its message."""
    try:
        yield
    except book.BookError as error:
        raise SystemExit(str(error)) from error


def _notebooks(names: list[str]) -> list[Path]:
    with _book_errors():
        return book.resolve_notebooks(names)


def _run(names: list[str], arguments: argparse.Namespace) -> int:
    """Execute the notebooks ``names`` (none: every chapter) as ``handbook run`` does; 1 if any
    failed."""
    runs = book.run(
        _notebooks(names),
        every_chapter=not names,
        smoke=arguments.smoke,
        force=arguments.force,
        jobs=arguments.jobs,
    )
    return 0 if all(run.ok for run in runs) else 1


def command_run(arguments: argparse.Namespace) -> int:
    """Execute notebooks behind the execution cache (chapters into ``<build dir>/site/notebooks``,
    others into ``<build dir>/executed``); exit status 1 if any failed."""
    return _run(arguments.notebooks, arguments)


def command_book(arguments: argparse.Namespace) -> int:
    """Execute every chapter (unless --no-run), then build the HTML site with warnings as errors."""
    if not arguments.no_run and _run([], arguments):
        return 1
    with _book_errors():
        return book.build_site(smoke=arguments.smoke)


def command_ledger(arguments: argparse.Namespace) -> int:
    from handbook import claims

    print(claims.render_markdown(claims.load_records()))
    return 0


def command_student(arguments: argparse.Namespace) -> int:
    try:
        language = i18n.normalize_language(arguments.lang)
    except i18n.TranslationError as error:
        print(error, file=sys.stderr)
        return 2
    with i18n.language_of(language):  # what it prints, in the edition's language
        return _write_student_edition(arguments, language)


def _write_student_edition(arguments: argparse.Namespace, language: str) -> int:
    from handbook.exercises import student

    notebooks = _notebooks(arguments.notebooks)
    out_dir = Path(arguments.out)
    existing = [n for n in notebooks if (out_dir / n.name).exists() and not arguments.force]
    for notebook in existing:
        print(
            _("kept {path}: it exists and may hold your answers (--force replaces it)").format(
                path=out_dir / notebook.name
            )
        )
    notebooks = [notebook for notebook in notebooks if notebook not in existing]
    written = student.make_student_editions(notebooks, out_dir, language)
    diagrams.copy_figures(out_dir)  # the notebooks show figures/NAME.svg
    for path in written:
        print(_("wrote {path}").format(path=path))
    print(
        _(
            "student edition: {count} notebook(s) in {folder}/ (solutions removed, outputs cleared)"
        ).format(count=len(written), folder=out_dir)
    )
    return 0


_COUNT_FIELDS = ("entries", "translated", "fuzzy", "untranslated")


def command_translations(arguments: argparse.Namespace) -> int:
    """The catalogs of a language: update them, check them (exit 1 naming what is missing or
    stale), count them, or move one to and from a plain-text worksheet (handbook.i18n)."""

    try:
        language = i18n.normalize_language(arguments.lang)
        if language == i18n.ENGLISH:
            print("English is the source: give --lang with a translation, e.g. --lang zh_CN")
            return 2
        if arguments.update:
            results = i18n.update(language)
            pending = sum(work for _entries, work in results.values())
            total = sum(entries for entries, _work in results.values())
            print(
                f"{len(results)} catalogs of {language} updated: {total} entries, {pending} to do"
            )
        if arguments.collect_figure_labels:
            texts: set[str] = set()
            for executed in sorted(Path(arguments.collect_figure_labels).glob("[0-9]*.ipynb")):
                cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
                texts |= editions.untranslated_figure_texts(cells, language)
            added = i18n.add_figure_labels(texts, language)
            print(
                f"{len(added)} figure label(s) added to locales/{i18n.FIGURE_LABELS}"
                + (": run --update, then translate them" if added else "")
            )
        if arguments.export_worksheet:
            sys.stdout.write(worksheets.export_worksheet(language, arguments.export_worksheet))
            return 0
        for path in arguments.import_worksheet or ():
            name, written = worksheets.import_worksheet(
                language, Path(path).read_text(encoding="utf-8")
            )
            print(f"{path}: {written} translation(s) written into {name}")
        if arguments.stats or not (
            arguments.check
            or arguments.update
            or arguments.import_worksheet
            or arguments.collect_figure_labels
        ):
            rows = i18n.counts(language)
            total = i18n.Counts(
                "total", *(sum(getattr(row, field) for row in rows) for field in _COUNT_FIELDS)
            )
            print(f"{'catalog':38}" + "".join(f" {field:>12}" for field in _COUNT_FIELDS))
            for row in [*rows, total]:
                print(f"{row.name:38}" + "".join(f" {getattr(row, f):12}" for f in _COUNT_FIELDS))
        if arguments.check:
            problems = i18n.check(language)
            for problem in problems:
                print(problem.line(), file=sys.stderr)
            if problems:
                print(
                    f"{len(problems)} paragraph(s) or message(s) lack a current {language} "
                    "translation: translate them in locales/ (`--update` first for new or "
                    "edited English)",
                    file=sys.stderr,
                )
                return 1
            print(f"every paragraph and message has a current {language} translation")
    except i18n.TranslationError as error:
        print(error, file=sys.stderr)
        return 2
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
    the module's path with or without ``handbook.`` (``attention``, ``serving.benchmarks``); none
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


def command_verify(arguments: argparse.Namespace) -> int:
    """Re-execute chapters into a scratch folder and compare every claim they record with the
    ledger (read once the re-run is over): exit status 1 if a value drifted or a chapter
    failed, 2 if there is nothing to compare with."""
    notebooks = _notebooks(arguments.chapters)
    with _book_errors():
        return book.verify(
            notebooks,
            reference_dir=Path(arguments.against) if arguments.against else config.ledger_dir(),
            smoke=arguments.smoke,
            scratch=Path(arguments.scratch) if arguments.scratch else None,
            rerun_ledger=Path(arguments.rerun_ledger) if arguments.rerun_ledger else None,
        )


def command_serve(arguments: argparse.Namespace) -> int:
    from handbook.serving.__main__ import main as serve_main  # FastAPI loads only for this command

    return serve_main(["--build", *arguments.extra])


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


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
    student_parser.add_argument(
        "--lang",
        default="en",
        help="the edition's language: en (default) or zh_CN (prose and checks in Chinese)",
    )
    student_parser.set_defaults(handler=command_student)

    translations = commands.add_parser(
        "translations",
        help="the translated editions' catalogs: --check, --update, --stats (locales/)",
        description="Each English paragraph and message is one entry of a gettext catalog in "
        "locales/LANG/LC_MESSAGES (see handbook.i18n). --check exits 1 naming each one without a "
        "current translation.",
    )
    translations.add_argument("--lang", default="zh_CN", help="the language (default zh_CN)")
    translations.add_argument(
        "--check", action="store_true", help="exit 1 on any untranslated, fuzzy or missing entry"
    )
    translations.add_argument(
        "--update", action="store_true", help="merge new and edited English into the catalogs"
    )
    translations.add_argument("--stats", action="store_true", help="entries per catalog")
    translations.add_argument(
        "--collect-figure-labels",
        metavar="EXECUTED",
        help="add the untranslated texts of the figures in a build's executed chapters "
        "(e.g. _build/smoke/site/notebooks) to locales/figure-labels.txt",
    )
    translations.add_argument(
        "--export-worksheet",
        metavar="CATALOG",
        help="print a catalog (e.g. notebooks/01_attention) as plain text to translate",
    )
    translations.add_argument(
        "--import-worksheet",
        metavar="FILE",
        nargs="+",
        help="write the translations of worksheets back into their catalogs",
    )
    translations.set_defaults(handler=command_translations)

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
        description="Every option goes to `python -m handbook.serving` (see its --help), e.g. "
        "`handbook serve --backend int8 --port 8080`.",
    )
    serve.set_defaults(handler=command_serve, passes_options=True)

    bench_parser = commands.add_parser("bench", help="run every chapter's benchmarks side by side")
    bench_parser.add_argument("--smoke", action="store_true", help="fewer repeats")
    bench_parser.add_argument(
        "modules",
        nargs="*",
        help="only these modules' benchmarks, e.g. `attention serving.benchmarks` (default: all)",
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
    arguments.extra = extra  # `handbook serve --port 8080`: options of python -m handbook.serving
    return arguments.handler(arguments)


if __name__ == "__main__":
    sys.exit(main())
