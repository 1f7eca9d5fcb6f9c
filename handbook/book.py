"""The book pipeline: execute the chapters, stage the sources, build the site, verify the ledger.

``handbook run``, ``handbook book`` and ``handbook verify`` (:mod:`handbook.cli`) each call one
function here, and every step is a small function of its own:

- **execute**: :func:`execute` runs notebooks behind the execution cache of
  :mod:`handbook.cache` (``cache.lookup`` before, ``cache.commit`` after): a notebook whose key is
  unchanged, and whose executed copy and ledger records are still the ones its last run wrote, is
  not executed again (its line says ``cached``); one that runs says why. Chapters run two at a
  time, their timed cells alone, chapter 10's only once the others are done
  (:mod:`handbook.sharing`). :func:`run` does
  that for the command: chapters into ``<build>/site/notebooks``, other notebooks into
  ``<build>/executed``, then a summary line.
- **build the site**: :func:`build_site` checks that every chapter was executed, stages the
  book's sources beside them (:func:`stage_book_sources`), writes the generated pages (the
  ledger, :func:`write_ledger_include`; the learning path) and runs Jupyter Book.
- **verify**: :func:`verify` re-executes chapters in a scratch build and compares each claim they
  record with a ledger (:func:`handbook.claims.compare_records`).
- **chapter 10**: :func:`chapter_intervals` reads when each chapter of a build started and ended,
  the public function chapter 10 (:mod:`handbook.toolchain`, claim C23) times a full rebuild with
  (:func:`chapter_timings`, how long each took, is what the learning-path page shows).
- **benchmark**: :func:`benchmarks`, the cache measured on whole smoke builds (``make bench``).

Executing one notebook (papermill, its kernel's environment, its timing) is
:mod:`handbook.runner`'s job; the ledger's files are read and written by :mod:`handbook.claims`
only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from handbook import cache, claims, config, editions, i18n, runner, sharing
from handbook.runner import NotebookRun

#: What the staged book source holds besides the executed notebooks.
BOOK_SOURCES = ["_config.yml", "_toc.yml", "references.bib", "book"]
LEDGER_INCLUDE = Path("book") / "ledger_table.inc"


class BookError(Exception):
    """A step of the pipeline cannot go on; the message says what to do instead."""


# Which notebooks, and where they go ---------------------------------------------------------------


def resolve_notebooks(names: Sequence[str]) -> list[Path]:
    """Notebooks named by path or by name in ``notebooks/`` (``00_digits``); none names every
    chapter. Raises :class:`BookError` naming a notebook that is not there."""
    if not names:
        notebooks = config.chapter_notebooks()
        if not notebooks:
            raise BookError(f"no chapter notebooks found in {config.project_root() / 'notebooks'}")
        return notebooks
    paths = []
    for name in names:
        path = Path(name)
        if not path.is_file():
            candidate = config.project_root() / "notebooks" / (path.stem + ".ipynb")
            if not candidate.is_file():
                raise BookError(f"no notebook {name!r}: give a path or a name in notebooks/")
            path = candidate
        paths.append(path.resolve())
    return paths


def output_dir_for(notebook: Path) -> Path:
    """Chapter notebooks go to the site; any other notebook to ``<build dir>/executed``."""
    chapters = config.project_root() / "notebooks"
    return config.executed_dir() if notebook.parent == chapters else config.build_dir() / "executed"


def key_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The part of a kernel's environment that can change what a notebook shows: everything but
    where its ledger records go; with editions (:mod:`handbook.editions`), the catalogs their
    figures are translated from."""
    key = {name: value for name, value in environment.items() if name != config.LEDGER_ENV}
    if environment.get(editions.EDITIONS_ENV):
        # the figures drawn for an edition change with its catalogs of the code's messages
        languages = environment[editions.EDITIONS_ENV].split()
        key["catalogs"] = i18n.runtime_catalogs_digest(languages, i18n.FIGURE_CATALOGS)
    return key


#: The order the shared chapters start in: the longest first (what each computes in a full build),
#: so that both lanes end at about the same time instead of one chapter running on alone at the
#: end (the classic longest-processing-time rule; chapter 5, whose cells cannot be stopped and
#: which mostly times, first). Replaying the cells' times of one full build, this order takes
#: about 440 s for chapters 0 to 9 against 485 s in the book's order (that build took 489 s; five
#: in this order took 447 to 501 s, as fast as the machine was). Chapter 10 comes last: its
#: timed cells wait for every other chapter to be done (:data:`handbook.sharing.AFTER_THE_OTHERS`),
#: its first cells run beside the last of them.
START_ORDER = (
    "05_serving",
    "03_data",
    "02_optimization",
    "07_continual",
    "06_cases",
    "01_attention",
    "09_ethics",
    "04_compression",
    "08_multimodal",
    "00_digits",
    "10_toolchain",
)


def in_start_order(jobs: Sequence[tuple[Path, Path, Path]]) -> list[tuple[Path, Path, Path]]:
    """``jobs`` in :data:`START_ORDER` (notebooks it does not name last, in their order)."""
    rank = {name: position for position, name in enumerate(START_ORDER)}
    return sorted(jobs, key=lambda job: rank.get(job[0].stem, len(rank)))


def shared_chapters() -> frozenset[str]:
    """Chapters (notebook stems) that :func:`execute` runs two at a time with ``--jobs 1``: all."""
    return frozenset(path.stem for path in config.chapter_notebooks())


def execution_groups(
    jobs: Sequence[tuple[Path, Path, Path]], shared: Collection[str]
) -> list[list[tuple[Path, Path, Path]]]:
    """``(notebook, output, kernel log)`` jobs cut, in order, into groups: each notebook whose stem
    is in ``shared`` joins the shared ones next to it, every other is a group alone."""
    groups: list[list[tuple[Path, Path, Path]]] = []
    for job in jobs:
        shared_job = job[0].stem in shared
        if shared_job and groups and groups[-1][0][0].stem in shared:
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


def shared_cores_note(jobs: int, *, smoke: bool) -> str | None:
    """What a full-mode run with ``jobs`` > 1 does to the ledger's timings (None otherwise)."""
    if jobs <= 1 or smoke:
        return None
    return (
        f"note: with --jobs {jobs} the chapters share the cores, so the timings they record in "
        "the ledger (speed-ups, durations) are slower and noisier than with --jobs 1"
    )


# Execute, behind the cache ------------------------------------------------------------------------


def _forget_records(ledger: Path, notebook: Path, entry: cache.Entry | None) -> None:
    """Before a chapter runs again: remove the records its last run left, so that a claim it no
    longer records does not linger in the ledger."""
    stale = set(claims.record_digests(ledger, chapter=notebook.stem))
    claims.remove_records(ledger, stale | set(entry.claims if entry else ()))


def _outcome(run: NotebookRun, *, with_reason: bool) -> str:
    """``ok in 12.3 s (handbook/attention.py changed)``, and the error on a line of its own."""
    why = f" ({run.reason})" if run.reason and with_reason else ""
    line = f"{'ok' if run.ok else 'FAILED'} in {run.seconds:.1f} s{why}"
    return line if run.ok else f"{line}\n    {run.error}"


def execute(
    notebooks: Sequence[Path],
    out_dir: Path,
    *,
    environment: dict[str, str],
    stream=None,
    cache_dir: Path | None = None,
    force: bool = False,
    jobs: int = 1,
    shared: Collection[str] | None = None,
) -> list[NotebookRun]:
    """Execute each notebook into ``out_dir``, printing one line per notebook with its wall time.

    With ``cache_dir``, a notebook whose cache entry still holds (:func:`handbook.cache.lookup`)
    is not executed: its line says ``cached``; one that runs says why, and a successful run is
    committed to the cache. ``force`` runs every notebook. ``jobs`` > 1 runs that many kernels at
    once, each with its share of the threads (never for timings that will be published: they
    would share the cores). With ``jobs`` 1, notebooks named in ``shared`` (stems; default
    :func:`shared_chapters`) that are next to each other run two at a time, in
    :data:`START_ORDER`, untimed cells with one thread, cells tagged ``timed`` alone on the
    machine with every thread (:func:`handbook.sharing.run_shared`); the others one at a time.
    Returns the runs in the order of ``notebooks``.
    """
    stream = stream or sys.stdout
    notebooks = [Path(notebook) for notebook in notebooks]
    for notebook in notebooks:
        if not notebook.is_file():
            raise FileNotFoundError(f"no notebook at {notebook}")
    ledger = Path(environment.get(config.LEDGER_ENV) or config.ledger_dir())
    kernel_variables = {**environment, **runner.threads_per_kernel(jobs)}
    count = len(notebooks)
    runs: dict[Path, NotebookRun] = {}
    lookups: dict[Path, cache.Lookup | None] = {}
    for position, notebook in enumerate(notebooks, start=1):
        found = None
        if cache_dir is not None:
            found = cache.lookup(
                cache_dir,
                notebook,
                environment=key_environment(kernel_variables),
                package_root=config.project_root(),
                executed=out_dir / notebook.name,
                records=claims.record_digests(ledger),
                force=force,
            )
            if found.hit:
                print(
                    f"[{position}/{count}] {notebook.name} ... cached "
                    f"(ran in {found.entry.seconds:.1f} s last time)",
                    file=stream,
                    flush=True,
                )
                runs[notebook] = NotebookRun(notebook, out_dir / notebook.name, 0.0, cached=True)
                continue
            _forget_records(ledger, notebook, found.entry)
        lookups[notebook] = found

    def finish(run: NotebookRun) -> NotebookRun:
        found = lookups[run.notebook]
        run = replace(run, reason=found.reason if found else ("--force" if force else "no cache"))
        if found is not None and run.ok:
            cache.commit(
                cache_dir,
                run.notebook,
                found.components,
                executed=run.output,
                records=claims.record_digests(ledger, chapter=run.notebook.stem),
                seconds=run.seconds,
            )
        return run

    done = count - len(lookups)
    logs = out_dir.parent / "logs"
    jobs_to_run = [
        (notebook, out_dir / notebook.name, logs / f"{notebook.stem}.log") for notebook in lookups
    ]
    with_reason = cache_dir is not None
    if jobs > 1:
        groups, shared = ([jobs_to_run] if jobs_to_run else []), ()
    else:
        shared = shared_chapters() if shared is None else shared
        if not sharing.supported() or (os.cpu_count() or 1) < 2:
            shared = ()  # no way to stop a kernel midway, or one core: one chapter at a time
        groups = execution_groups(jobs_to_run, shared)
    for group in groups:
        if group[0][0].stem in shared:  # with --jobs 1 only (``shared`` is empty otherwise)
            if len(group) > 1:
                print(
                    f"{group[0][0].stem} to {group[-1][0].stem}: two at a time, each cell tagged "
                    f"'{sharing.TIMED_TAG}' alone on the machine",
                    file=stream,
                    flush=True,
                )
            finished = sharing.run_shared(
                in_start_order(group), environment=kernel_variables, folder=logs / "shared-machine"
            )
        elif len(group) > 1:
            finished = (
                (run, None)
                for run in runner.execute_side_by_side(
                    group, environment=kernel_variables, workers=jobs
                )
            )
        else:
            for notebook, output, log in group:
                done += 1
                print(f"[{done}/{count}] {notebook.name} ...", end=" ", file=stream, flush=True)
                run = finish(
                    runner.execute_notebook(
                        notebook, output, environment=kernel_variables, kernel_log=log
                    )
                )
                print(_outcome(run, with_reason=with_reason), file=stream, flush=True)
                runs[notebook] = run
            continue
        with contextlib.closing(finished):  # interrupted: its processes end at once
            for run, held in finished:
                run = finish(run)
                done += 1
                outcome = _outcome(run, with_reason=with_reason)
                if held and run.ok and sum(held.values()) >= 0.05:
                    outcome += f" ({sum(held.values()):.1f} s of it held back for timed cells)"
                print(
                    f"[{done}/{count}] {run.notebook.name} ... {outcome}", file=stream, flush=True
                )
                runs[run.notebook] = run
    return [runs[notebook] for notebook in notebooks]


def run(
    notebooks: Sequence[Path], *, every_chapter: bool, smoke: bool, force: bool, jobs: int
) -> list[NotebookRun]:
    """Execute ``notebooks`` behind the cache into the build folder (``handbook run``): chapters
    into the site's folder, others into ``<build dir>/executed``. ``every_chapter``: the run is
    of the whole book, so records of chapters that no longer exist are removed first. Prints a
    summary line and the failures; returns the runs."""
    ledger = config.ledger_dir()
    if every_chapter:
        removed = claims.remove_orphan_records(ledger, [notebook.stem for notebook in notebooks])
        if removed:
            print(f"removed ledger records of no current chapter: {', '.join(removed)}")
    environment = runner.notebook_environment(smoke=smoke, strict_exercises=True, ledger_dir=ledger)
    # every figure drawn for each translated edition too, in the same run (handbook.editions)
    environment.update(editions.kernel_variables(config.build_dir()))
    mode = "smoke" if smoke else "full"
    jobs = max(1, jobs)
    side_by_side = f", {jobs} at a time" if jobs > 1 else ""
    print(
        f"executing {len(notebooks)} notebook(s) in {mode} mode into {config.build_dir()}"
        f"{side_by_side}"
    )
    if note := shared_cores_note(jobs, smoke=smoke):
        print(note)
    start = time.perf_counter()
    runs = []
    for output_dir in sorted({output_dir_for(notebook) for notebook in notebooks}):
        runs.extend(
            execute(
                [notebook for notebook in notebooks if output_dir_for(notebook) == output_dir],
                output_dir,
                environment=environment,
                cache_dir=config.build_dir() / "cache" / output_dir.name,
                force=force,
                jobs=jobs,
            )
        )
    failed = [done for done in runs if not done.ok]
    cached = sum(done.cached for done in runs)
    print(
        f"{len(runs) - len(failed)}/{len(runs)} notebooks ok ({cached} cached, "
        f"{len(runs) - cached} executed) in {time.perf_counter() - start:.1f} s"
    )
    if failed:
        print("failures:\n" + "\n".join(f"  {done.error}" for done in failed), file=sys.stderr)
    return runs


# Build the site -----------------------------------------------------------------------------------


def stage_book_sources(site_dir: Path) -> None:
    """Copy the book's prose and configuration next to the executed notebooks in ``site_dir``."""
    from handbook import diagrams

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
    from handbook import ledger_page

    return ledger_page.write_page(claims.load_records(), site_dir / LEDGER_INCLUDE)


def check_every_chapter_executed(site_dir: Path) -> None:
    """Every chapter has an executed copy in ``site_dir``, and none of them stopped on an error;
    raises :class:`BookError` naming those that did not."""
    import nbformat

    missing, failed = [], []
    for notebook in config.chapter_notebooks():
        executed = site_dir / "notebooks" / notebook.name
        if not executed.is_file():
            missing.append(notebook.name)
        elif nbformat.read(executed, as_version=4).metadata.get("papermill", {}).get("exception"):
            failed.append(notebook.name)
    if missing or failed:
        problems = [f"not executed yet: {', '.join(missing)}"] * bool(missing)
        problems += [f"their last run failed: {', '.join(failed)}"] * bool(failed)
        raise BookError("; ".join(problems) + "; run `python -m handbook run` (or drop --no-run)")


def _jupyter_book_executable() -> str:
    beside_python = Path(sys.executable).parent / "jupyter-book"
    found = str(beside_python) if beside_python.exists() else shutil.which("jupyter-book")
    if not found:
        raise BookError("jupyter-book is not installed: `pip install -e .` installs it")
    return found


def run_folders(*, smoke: bool | None = None) -> dict[str, Path]:
    """Where the last run of each mode left its executed chapters: ``make book``'s ``_build``
    (full) and ``make test``'s ``_build/smoke`` (smoke); the current build directory stands for
    the mode ``smoke`` names (None: the current build is not one of them)."""
    root = config.project_root()
    folders = {
        "smoke": config.executed_dir(root / "_build" / "smoke"),
        "full": config.executed_dir(root / "_build"),
    }
    if smoke is not None:
        folders["smoke" if smoke else "full"] = config.executed_dir()
    return folders


def build_site(*, smoke: bool) -> int:
    """Build the HTML site from the chapters executed last (``smoke``: this build is a smoke
    build, for the learning path's timings) with warnings as errors; returns Jupyter Book's exit
    status (0: the site is ready). Raises :class:`BookError` if a chapter was not executed."""
    from handbook import learning_path

    site_dir = config.build_dir() / "site"
    check_every_chapter_executed(site_dir)
    stage_book_sources(site_dir)
    write_ledger_include(site_dir)
    # generated from the notebooks and this run's timings (see handbook.learning_path)
    timings = {mode: chapter_timings(folder) for mode, folder in run_folders(smoke=smoke).items()}
    learning_path.write_page(site_dir / "book", timings)
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
    # The editions are built from the staged sources, not from the English HTML: Jupyter Book
    # builds English while the translated editions are staged and built beside it (two
    # processes on two cores; nothing here is timed).
    english = subprocess.Popen(command)

    def english_built() -> int:
        if english.returncode is None and english.wait():
            print(
                "the site build failed (warnings count as errors): see the messages above",
                file=sys.stderr,
            )
        return english.returncode

    try:
        for language in i18n.TRANSLATIONS:
            status = build_translated_site(language, smoke=smoke, after=english_built)
            if status:
                english_built()
                return status
    except BaseException:  # an interrupted build leaves no Jupyter Book running
        english.kill()
        english.wait()
        raise
    if english_built():
        return english.returncode
    print(f"\nThe book is ready: open file://{config.html_dir() / 'index.html'}")
    for language in i18n.TRANSLATIONS:
        print(f"  {language}: file://{translated_html_dir(language) / 'index.html'}")
    return 0


# The translated editions --------------------------------------------------------------------------


def translated_html_dir(language: str) -> Path:
    """Where an edition's site goes: ``_build/html/zh`` (folder from handbook.book_site)."""
    from handbook import book_site

    return config.html_dir() / book_site.EDITIONS[language][0].rstrip("/")


def translate_staged_config(site_dir: Path, language: str) -> None:
    """The staged ``_config.yml`` and ``_toc.yml`` in ``language``: Sphinx's ``language`` (which
    gives ``<html lang>``, the theme's words and the search's word splitter), the title, the
    footer and the captions from the catalog ``book/_site``."""
    import yaml

    table = i18n.translations(language, i18n.SITE_CATALOG)
    settings = yaml.safe_load((site_dir / "_config.yml").read_text(encoding="utf-8"))
    for keys in i18n.SITE_KEYS:
        holder = settings
        for key in keys[:-1]:
            holder = holder.setdefault(key, {})
        if keys[-1] in holder:
            holder[keys[-1]] = table.get(holder[keys[-1]], holder[keys[-1]])
    settings.setdefault("sphinx", {}).setdefault("config", {})["language"] = language
    (site_dir / "_config.yml").write_text(
        yaml.safe_dump(settings, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    toc = yaml.safe_load((site_dir / "_toc.yml").read_text(encoding="utf-8"))
    for part in toc.get("parts", []):
        if part.get("caption"):
            part["caption"] = table.get(part["caption"], part["caption"])
    (site_dir / "_toc.yml").write_text(
        yaml.safe_dump(toc, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )


def translate_staged_pages(site_dir: Path, language: str) -> None:
    """Every staged chapter and page of ``site_dir`` in ``language``: each paragraph of prose
    from its catalog (the executed notebooks keep their outputs; an output drawn in both
    languages keeps the one in ``language``: :func:`handbook.editions.outputs_in`)."""
    root = config.project_root()
    untranslated: set[str] = set()
    for source in i18n.markdown_sources():
        name = i18n.catalog_name(source)
        staged = site_dir / source.resolve().relative_to(root)
        if not staged.is_file():
            continue
        if staged.suffix == ".ipynb":
            notebook = json.loads(staged.read_text(encoding="utf-8"))
            cells = i18n.translate_notebook_cells(notebook["cells"], language, name)
            untranslated |= editions.untranslated_figure_texts(cells, language)
            notebook["cells"] = [editions.outputs_in(cell, language) for cell in cells]
            staged.write_text(json.dumps(notebook, ensure_ascii=False, indent=1), encoding="utf-8")
        else:
            text = staged.read_text(encoding="utf-8")
            translated = i18n.translate_markdown(text, i18n.translations(language, name))
            staged.write_text(translated, encoding="utf-8")
    report = config.build_dir() / f"untranslated-figure-texts-{language}.txt"
    report.write_text("".join(f"{text}\n" for text in sorted(untranslated)), encoding="utf-8")
    if untranslated:
        print(
            f"{len(untranslated)} text(s) in the figures have no {language} translation (listed in "
            f"{report}; `python -m handbook translations --collect-figure-labels "
            f"{config.executed_dir()}` would add them to the catalogs)"
        )


def build_translated_site(
    language: str, *, smoke: bool, after: Callable[[], int] | None = None
) -> int:
    """The edition in ``language`` from the English site staged by :func:`build_site`: the same
    executed notebooks (nothing runs again), their prose, the ledger and the learning path in
    ``language``, built by Jupyter Book into :func:`translated_html_dir`. Returns Jupyter Book's
    exit status. ``after``: called before the edition is copied into the English site's folder
    (the English build still running returns its status there; non-zero stops the copy)."""
    from handbook import book_site, learning_path
    from handbook.plots import style

    staging = time.perf_counter()
    english, site_dir = config.build_dir() / "site", config.build_dir() / f"site-{language}"
    shutil.rmtree(site_dir, ignore_errors=True)
    shutil.copytree(english, site_dir)
    translate_staged_config(site_dir, language)
    translate_staged_pages(site_dir, language)
    with i18n.language_of(language):
        write_ledger_include(site_dir)
        timings = {
            mode: chapter_timings(folder) for mode, folder in run_folders(smoke=smoke).items()
        }
        learning_path.write_page(site_dir / "book", timings)
    # a reader's browser without a CJK font still shows the glyphs (offline, as the site is)
    book_site.write_cjk_webfont(site_dir, style.cjk_font_path())
    output_root = config.build_dir() / f"html-{language}"
    command = [
        _jupyter_book_executable(),
        "build",
        str(site_dir),
        "--path-output",
        str(output_root),
        "--warningiserror",
        "--keep-going",
        "--quiet",
    ]
    print(f"building the {language} edition:", " ".join(command[1:]))
    start = time.perf_counter()
    staged = start - staging
    result = subprocess.run(command, check=False)
    if result.returncode:
        print(f"the {language} edition's build failed: see the messages above", file=sys.stderr)
        return result.returncode
    if after is not None and (status := after()):
        return status
    target = translated_html_dir(language)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(output_root / "_build" / "html", target)
    print(
        f"the {language} edition built in {time.perf_counter() - staging:.1f} s (staged and "
        f"translated in {staged:.1f} s, Jupyter Book {time.perf_counter() - start:.1f} s)"
    )
    return 0


# Verify -------------------------------------------------------------------------------------------

#: :func:`verify`'s results, which are ``handbook verify``'s exit statuses.
REPRODUCED, NOT_REPRODUCIBLE, NOTHING_TO_COMPARE = 0, 1, 2


def scratch_folder(scratch: Path | None) -> Path:
    """A fresh folder for a re-run: ``scratch`` (new or empty) or a new one under the build
    folder; raises :class:`BookError` when ``scratch`` holds something."""
    import tempfile

    if scratch:
        scratch = Path(scratch).resolve()
        if scratch.exists() and any(scratch.iterdir()):
            raise BookError(f"--scratch {scratch} is not empty: give a new or an empty folder")
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch
    config.build_dir().mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="verify-", dir=config.build_dir()))


def rerun(notebooks: Sequence[Path], scratch: Path, *, smoke: bool) -> list[NotebookRun]:
    """Execute ``notebooks`` laid out as a build in ``scratch`` (its own ledger, no cache):
    chapter 10 times the chapters executed before it in the same build (C23), here this re-run's."""
    environment = runner.notebook_environment(
        smoke=smoke, strict_exercises=True, ledger_dir=scratch / "ledger"
    )
    environment[config.BUILD_ENV] = str(scratch)
    mode = "smoke" if smoke else "full"
    print(f"re-executing {len(notebooks)} chapter(s) in {mode} mode into {scratch}")
    return execute(notebooks, config.executed_dir(scratch), environment=environment)


def verify(
    notebooks: Sequence[Path],
    *,
    reference_dir: Path,
    smoke: bool,
    scratch: Path | None = None,
    rerun_ledger: Path | None = None,
) -> int:
    """Compare every claim ``notebooks`` record with the ledger in ``reference_dir``, one line
    per claim: re-executed into a scratch build (:func:`rerun`; ``scratch`` keeps it), or, with
    ``rerun_ledger``, the records already there. Returns :data:`REPRODUCED`,
    :data:`NOT_REPRODUCIBLE` (a value drifted or a chapter failed) or :data:`NOTHING_TO_COMPARE`.
    """
    chapters = {notebook.stem for notebook in notebooks}
    if not reference_dir.is_dir():
        print(
            f"there is no ledger in {reference_dir} to compare with: run `python -m handbook "
            "run` first (or point --against at another ledger)",
            file=sys.stderr,
        )
        return NOTHING_TO_COMPARE
    if rerun_ledger:
        folder, runs, rerun_dir = Path(rerun_ledger), [], Path(rerun_ledger)
        print(f"comparing the records in {rerun_dir} (nothing re-executed)")
    else:
        folder = scratch_folder(scratch)
        rerun_dir = folder / "ledger"
        runs = rerun(notebooks, folder, smoke=smoke)
    reference = claims.records_of(reference_dir, chapters)
    if not reference:
        print(
            f"the ledger in {reference_dir} holds no claim of {', '.join(sorted(chapters))}: "
            "run `python -m handbook run` first (or point --against at another ledger)",
            file=sys.stderr,
        )
        return NOTHING_TO_COMPARE
    rerun_records = claims.records_of(rerun_dir, chapters)
    print(f"\n{'':4} {'':5} ledger in {reference_dir} | re-run")
    comparisons = [
        claims.compare_records(reference.get(claim_id), rerun_records.get(claim_id))
        for claim_id in sorted(
            set(reference) | set(rerun_records), key=lambda claim_id: int(claim_id[1:])
        )
    ]
    for comparison in comparisons:
        print(comparison.line())
    drifted = [comparison.claim_id for comparison in comparisons if not comparison.agrees]
    unmeasured = [comparison.claim_id for comparison in comparisons if not comparison.compared]
    failed = [done for done in runs if not done.ok]
    for done in failed:
        print(f"chapter failed: {done.error}", file=sys.stderr)
    if drifted or failed:
        print(
            f"\nnot reproducible: {len(drifted)} claim(s) drifted ({', '.join(drifted) or 'none'}),"
            f" {len(failed)} chapter(s) failed; the re-run is in {folder}",
            file=sys.stderr,
        )
        return NOT_REPRODUCIBLE
    if unmeasured:
        print(
            f"\nno drift: {len(comparisons) - len(unmeasured)} claim(s) reproduced the ledger's "
            f"values; not measured by this re-run, so not compared: {', '.join(unmeasured)}"
        )
    else:
        print(f"\nall {len(comparisons)} claim(s) reproduced the ledger's values")
    if runs and not scratch:  # a folder of our own, and nothing in it to look into
        shutil.rmtree(folder, ignore_errors=True)
        print(f"(the re-run's folder {folder} was removed: `--scratch DIR` keeps one)")
    return REPRODUCED


# What chapter 10 times ----------------------------------------------------------------------------


def _notebook_metadata(executed: Path | None) -> dict[str, dict]:
    """Chapter (notebook stem) -> the notebook metadata of its executed copy in a build (default
    :func:`handbook.config.executed_dir`: this build's); a copy that cannot be read is absent.
    A notebook is JSON: its metadata is read with :mod:`json`, not ``nbformat``, whose
    import (through jsonschema's format checkers) costs a kernel about 3 s."""
    found = {}
    for path in sorted(Path(executed or config.executed_dir()).glob("[0-9][0-9]_*.ipynb")):
        try:
            metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        except (OSError, ValueError):
            continue
        found[path.stem] = metadata
    return found


def _papermill_metadata(executed: Path | None) -> dict[str, dict]:
    """Chapter -> the ``papermill`` metadata of its executed copy (:func:`_notebook_metadata`)."""
    return {
        chapter: metadata.get("papermill", {})
        for chapter, metadata in _notebook_metadata(executed).items()
    }


def chapter_timings(executed: Path | None = None) -> dict[str, float]:
    """Chapter (notebook stem) -> seconds papermill took to execute it, less those it was held
    back for another chapter's timed cells (:func:`handbook.sharing.held_back_seconds`), from the
    executed copies of a build (default: this build's). A chapter not executed there, or whose
    copy cannot be read, is absent. The learning-path page shows them per mode."""
    timings = {}
    for chapter, metadata in _notebook_metadata(executed).items():
        duration = metadata.get("papermill", {}).get("duration")
        if duration is not None:
            timings[chapter] = float(duration) - sharing.held_back_seconds(metadata)
    return timings


def _timestamp(text: str) -> float:
    """POSIX seconds of papermill's ISO time (UTC when it names no zone)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def chapter_intervals(executed: Path | None = None) -> dict[str, tuple[float, float]]:
    """Chapter (notebook stem) -> ``(start, end)`` of its execution in POSIX seconds, from
    papermill's start and end times in the executed copies of a build (default: this build's);
    a chapter without both is absent.

    Chapter 10 (:mod:`handbook.toolchain`, claim C23) reads the chapters executed before it as
    the wall time of a full rebuild without the toolchain: chapters that ran two at a time
    (:mod:`handbook.sharing`) overlap, so their times are not simply added."""
    intervals = {}
    for chapter, metadata in _papermill_metadata(executed).items():
        start, end = metadata.get("start_time"), metadata.get("end_time")
        if not (isinstance(start, str) and isinstance(end, str)):  # end None: still running
            continue
        try:
            intervals[chapter] = (_timestamp(start), _timestamp(end))
        except ValueError:
            continue
    return intervals


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


def copy_book(target: Path) -> Path:
    """A copy of the checkout in ``target`` (an existing, empty folder), without
    :data:`_NOT_COPIED`; not a git checkout, like a book downloaded as a zip."""
    shutil.copytree(
        config.project_root(),
        target,
        ignore=shutil.ignore_patterns(*_NOT_COPIED),
        dirs_exist_ok=True,
    )
    return target


def _timed_book_build(root: Path, *options: str) -> float:
    """Seconds for ``python -m handbook book --smoke`` in the scratch copy ``root``."""
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
        root = copy_book(Path(scratch))
        seconds = {"every chapter executed (--force)": _timed_book_build(root, "--force")}
        seconds["nothing changed"] = _timed_book_build(root)
        _append_to_markdown_cell(root / "notebooks" / "08_multimodal.ipynb", "\n\nAn edit.")
        seconds["chapter 8's markdown edited"] = _timed_book_build(root)
        module = root / "handbook" / "multimodal.py"
        module.write_text(module.read_text() + "\n# an edit\n")
        seconds["handbook/multimodal.py edited"] = _timed_book_build(root)
    full = seconds["every chapter executed (--force)"]
    group = "book: smoke book rebuild"
    return [
        bench.Measurement(group, variant, value * 1000.0, full / value, None, "one build each")
        for variant, value in seconds.items()
    ]
