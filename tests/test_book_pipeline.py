"""The book pipeline (handbook.book): which notebooks, executing them behind the cache, staging
the site, what chapter 10 reads. The cache's own decisions are tested in tests/test_cache*.py,
`handbook verify` through the command in tests/test_cli.py."""

import io
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from handbook import book, cli, config, runner, sharing


def _notebook(path, *sources):
    nbformat.write(new_notebook(cells=[new_code_cell(source) for source in sources]), path)
    return path


def test_notebooks_are_named_by_path_or_by_chapter_and_a_wrong_name_is_refused(tmp_path):
    assert book.resolve_notebooks([]) == config.chapter_notebooks()
    assert book.resolve_notebooks(["00_digits"]) == [config.chapter_notebooks()[0]]
    own = _notebook(tmp_path / "own.ipynb", "x = 1")
    assert book.resolve_notebooks([str(own)]) == [own.resolve()]
    with pytest.raises(book.BookError, match="no notebook 'nope': give a path or a name"):
        book.resolve_notebooks(["nope"])


def test_chapters_go_to_the_site_and_other_notebooks_beside_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDBOOK_BUILD_DIR", str(tmp_path))
    assert book.output_dir_for(config.chapter_notebooks()[0]) == tmp_path / "site" / "notebooks"
    assert book.output_dir_for(tmp_path / "own.ipynb") == tmp_path / "executed"


def test_the_ledger_folder_is_no_part_of_a_chapter_s_key():
    environment = runner.notebook_environment(
        smoke=True, strict_exercises=True, ledger_dir=config.project_root() / "elsewhere"
    )
    assert config.LEDGER_ENV in environment and config.LEDGER_ENV not in book.key_environment(
        environment
    )
    assert book.key_environment(environment)[config.SMOKE_ENV] == "1"


def test_stage_and_ledger_include(tmp_path):
    book.stage_book_sources(tmp_path)
    for name in ("_config.yml", "_toc.yml", "references.bib", "book/intro.md"):
        assert (tmp_path / name).is_file()
    include = book.write_ledger_include(tmp_path)
    assert include.read_text().count("<tr") == 25  # a header and one row per claim
    assert "No claim has been measured" in include.read_text()


def test_the_site_is_not_built_from_chapters_whose_last_run_failed(tmp_path):
    site = tmp_path / "site"
    (site / "notebooks").mkdir(parents=True)
    for chapter in config.chapter_notebooks():
        notebook = new_notebook()
        notebook.metadata["papermill"] = {"exception": chapter.name == "00_digits.ipynb"}
        nbformat.write(notebook, site / "notebooks" / chapter.name)
    with pytest.raises(book.BookError, match="their last run failed: 00_digits.ipynb"):
        book.check_every_chapter_executed(site)
    (site / "notebooks" / "01_attention.ipynb").unlink()
    with pytest.raises(book.BookError, match="not executed yet: 01_attention.ipynb; their last"):
        book.check_every_chapter_executed(site)


def test_full_mode_on_shared_cores_says_what_it_does_to_the_timings():
    assert book.shared_cores_note(1, smoke=False) is None
    assert book.shared_cores_note(2, smoke=True) is None
    note = book.shared_cores_note(2, smoke=False)
    assert "--jobs 2" in note and "timings" in note and "--jobs 1" in note


def test_each_notebook_gets_one_line_and_a_failure_its_reason(tmp_path, monkeypatch):
    """The kernel is a fake here (tests/test_runner.py and the tests below run real ones)."""
    good = _notebook(tmp_path / "good.ipynb", "x = 1")
    bad = _notebook(tmp_path / "bad.ipynb", "1 / 0")

    def fake_kernel(notebook, output, *, environment, kernel_log):
        assert kernel_log == tmp_path / "logs" / f"{notebook.stem}.log"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("executed")
        error = "bad.ipynb: cell 0 raised ZeroDivisionError" if notebook == bad else None
        return runner.NotebookRun(notebook, output, 0.25, error)

    monkeypatch.setattr(runner, "execute_notebook", fake_kernel)
    printed = io.StringIO()
    environment = runner.notebook_environment(smoke=True, strict_exercises=True)
    runs = book.execute([good, bad], tmp_path / "out", environment=environment, stream=printed)
    assert [run.ok for run in runs] == [True, False] and runs[1].reason == "no cache"
    assert printed.getvalue().splitlines() == [
        "[1/2] good.ipynb ... ok in 0.2 s",
        "[2/2] bad.ipynb ... FAILED in 0.2 s",
        "    bad.ipynb: cell 0 raised ZeroDivisionError",
    ]
    with pytest.raises(FileNotFoundError, match="no notebook at"):
        book.execute([tmp_path / "missing.ipynb"], tmp_path / "out", environment=environment)


def test_cli_run_reports_failure_with_exit_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(config, "build_dir", lambda: tmp_path / "_build")
    good = _notebook(tmp_path / "good.ipynb", "print('fine')")
    bad = _notebook(tmp_path / "bad.ipynb", "1 / 0")
    assert cli.main(["run", "--smoke", str(good)]) == 0
    # not a chapter: executed beside the site, never in place of a chapter's executed copy
    assert (tmp_path / "_build" / "executed" / "good.ipynb").is_file()
    assert not (tmp_path / "_build" / "site" / "notebooks" / "good.ipynb").exists()
    assert cli.main(["run", "--smoke", str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert "1/2 notebooks ok (1 cached, 1 executed)" in captured.out
    assert "good.ipynb ... cached" in captured.out
    assert "[2/2] bad.ipynb ... FAILED in" in captured.out
    assert "ZeroDivisionError" in captured.err


def test_side_by_side_runs_share_the_cores(tmp_path):
    shares = runner.threads_per_kernel(2)
    notebooks = [
        _notebook(tmp_path / f"n{index}.ipynb", "import os\nprint(os.environ['OMP_NUM_THREADS'])")
        for index in range(2)
    ]
    runs = book.execute(
        notebooks,
        tmp_path / "out",
        environment=runner.notebook_environment(smoke=True, strict_exercises=True),
        jobs=2,
    )
    assert [run.ok for run in runs] == [True, True] and [run.notebook for run in runs] == notebooks
    printed = nbformat.read(runs[0].output, as_version=4).cells[0].outputs[0]["text"]
    assert printed.strip() == shares["OMP_NUM_THREADS"]


def test_shared_chapters_next_to_each_other_form_one_group():
    jobs = [(Path(f"{name}.ipynb"), None, None) for name in ("a", "u1", "u2", "b", "u3", "c")]
    groups = book.execution_groups(jobs, {"u1", "u2", "u3"})
    assert [[job[0].stem for job in group] for group in groups] == [
        ["a"],
        ["u1", "u2"],
        ["b"],
        ["u3"],
        ["c"],
    ]
    assert book.execution_groups([], {"u1"}) == []


def test_every_chapter_shares_the_machine_and_the_one_that_times_the_rebuild_starts_last():
    chapters = {path.stem for path in config.chapter_notebooks()}
    assert book.shared_chapters() == chapters
    assert sorted(book.START_ORDER) == sorted(chapters)  # each once, all of them
    assert book.START_ORDER[-1] in sharing.AFTER_THE_OTHERS
    assert chapters >= sharing.AFTER_THE_OTHERS | sharing.UNPAUSABLE
    jobs = [(Path(f"{name}.ipynb"), None, None) for name in ("00_digits", "mine", "05_serving")]
    assert [job[0].stem for job in book.in_start_order(jobs)] == ["05_serving", "00_digits", "mine"]


def test_shared_notebooks_run_two_at_a_time_with_no_thread_variable_added(tmp_path):
    """With --jobs 1, shared notebooks next to each other overlap in time, and the pipeline adds
    no thread variable for them (handbook.sharing sets each cell's threads, tests/test_sharing.py);
    the runs come back in the notebooks' order, one line each, after the line that says what
    happens."""
    probe = (
        "import os, time\n"
        "start = time.time(); time.sleep(1.5)\n"
        "print(start, time.time(), os.environ.get('OMP_NUM_THREADS', 'unset'))"
    )
    notebooks = [_notebook(tmp_path / f"{name}.ipynb", probe) for name in ("u1", "u2")]
    printed = io.StringIO()
    runs = book.execute(
        notebooks,
        tmp_path / "out",
        environment=runner.notebook_environment(smoke=True, strict_exercises=True),
        shared={"u1", "u2"},
        stream=printed,
    )
    assert [run.ok for run in runs] == [True, True] and [run.notebook for run in runs] == notebooks
    outputs = [
        nbformat.read(run.output, as_version=4).cells[0].outputs[0]["text"].split() for run in runs
    ]
    (start_1, end_1, threads_1), (start_2, end_2, threads_2) = outputs
    assert threads_1 == threads_2 == os.environ.get("OMP_NUM_THREADS", "unset")  # as given
    assert float(start_2) < float(end_1) and float(start_1) < float(end_2), "not side by side"
    lines = printed.getvalue().splitlines()
    assert lines[0] == "u1 to u2: two at a time, each cell tagged 'timed' alone on the machine"
    assert len(lines) == 3 and all("held back" not in line for line in lines[1:])


def _timing_parameters(chapter: str) -> list[str]:
    """The parameters of a chapter's claim verdicts that take a time (a duration, a speed-up, a
    latency, a thread count)."""
    import importlib
    import inspect

    verdicts = importlib.import_module(f"handbook.verdicts.{chapter.split('_', 1)[1]}")
    found = []
    for name, function in inspect.getmembers(verdicts, inspect.isfunction):
        if name[0] == "c" and name[1:].isdigit():
            words = ("second", "speed", "_ms", "latency", "thread", "time")
            found += [
                parameter
                for parameter in inspect.signature(function).parameters
                if any(word in parameter for word in words)
            ]
    return found


def test_a_chapter_whose_claims_take_a_time_times_it_in_a_tagged_cell():
    """Chapters share the machine except in cells tagged 'timed': a chapter whose verdicts take a
    duration, a speed-up or a latency has such cells; one whose verdicts take none needs none."""
    for path in config.chapter_notebooks():
        notebook = nbformat.read(path, as_version=4)
        timed = [cell for cell in notebook.cells if sharing.is_timed(cell)]
        assert all(cell.cell_type == "code" for cell in timed), path.stem
        if _timing_parameters(path.stem):
            assert timed, f"{path.stem} records a timing but tags no cell 'timed'"


def test_chapter_timings_come_from_papermill_metadata_of_the_build(tmp_path, monkeypatch):
    for name, duration in (("00_digits", 12.5), ("01_attention", None)):
        notebook = new_notebook()
        if duration is not None:
            notebook.metadata["papermill"] = {"duration": duration}
        nbformat.write(notebook, tmp_path / f"{name}.ipynb")
    (tmp_path / "02_optimization.ipynb").write_text('{"cut sh')  # being written: no timing
    assert book.chapter_timings(tmp_path) == {"00_digits": 12.5}
    # a chapter that shared the machine: less the seconds it was held back for timed cells
    shared = new_notebook()
    shared.metadata["papermill"] = {"duration": 30.0}
    shared.metadata[sharing.METADATA_KEY] = {"paused_s": 4.5, "waited_s": 0.5}
    nbformat.write(shared, tmp_path / "03_data.ipynb")
    assert book.chapter_timings(tmp_path) == {"00_digits": 12.5, "03_data": 25.0}
    monkeypatch.setenv("HANDBOOK_BUILD_DIR", str(tmp_path))
    assert book.chapter_timings() == {}  # the build's executed copies, not the build folder


def test_the_cache_benchmark_copies_what_chapters_read_and_leaves_out_build_output(
    tmp_path, monkeypatch
):
    """Chapter 5 prints deploy/ manifests, chapter 10 the Makefile, .ci/run and a test it times:
    a scratch copy of only the sources failed there (found by `make bench`)."""
    source = tmp_path / "book"
    for name in ("deploy/k8s/hpa.yaml", "Makefile", ".ci/run", "tests/test_digits.py"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(name)
    for name in (
        "_build/smoke/x.ipynb",
        ".venv/bin/python",
        ".git/HEAD",
        "handbook/__pycache__/a.pyc",
    ):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("left out")
    monkeypatch.setattr(config, "project_root", lambda: source)
    copy = book.copy_book(tmp_path / "copy")
    copied = {str(path.relative_to(copy)) for path in copy.rglob("*") if path.is_file()}
    assert copied == {"deploy/k8s/hpa.yaml", "Makefile", ".ci/run", "tests/test_digits.py"}
