import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from handbook import cli, config, runner


def _notebook(path, *sources):
    nbformat.write(new_notebook(cells=[new_code_cell(source) for source in sources]), path)
    return path


def test_chapter_notebooks_are_in_book_order():
    names = [path.name for path in runner.chapter_notebooks()]
    assert names and names == sorted(names)
    assert names[0] == "00_digits.ipynb"


def test_smoke_mode_and_the_ledger_reach_the_kernel(tmp_path):
    notebook = _notebook(
        tmp_path / "probe.ipynb",
        "import os, handbook\n"
        "print('smoke', handbook.smoke_mode(), os.environ['HANDBOOK_LEDGER_DIR'], "
        "os.environ['HF_HUB_OFFLINE'], os.getcwd())",
    )
    environment = runner.notebook_environment(
        smoke=True, strict_exercises=True, ledger_dir=tmp_path / "ledger"
    )
    run = runner.execute_notebook(
        notebook, tmp_path / "out" / "probe.ipynb", environment=environment
    )
    assert run.ok, run.error
    text = nbformat.read(run.output, as_version=4).cells[0].outputs[0]["text"]
    assert text.split() == ["smoke", "True", str(tmp_path / "ledger"), "1", str(tmp_path)]


def test_a_failure_names_the_notebook_the_cell_and_the_error(tmp_path, capsys):
    notebook = _notebook(
        tmp_path / "broken.ipynb", "x = 1", "y = 2", "raise KeyError('the missing key')"
    )
    runs = runner.run_notebooks(
        [notebook],
        tmp_path / "out",
        environment=runner.notebook_environment(smoke=True, strict_exercises=True),
    )
    assert not runs[0].ok
    assert "broken.ipynb" in runs[0].error
    assert "cell 2" in runs[0].error and "raise KeyError" in runs[0].error
    assert "KeyError" in runs[0].error and "the missing key" in runs[0].error
    printed = capsys.readouterr().out
    assert "[1/1] broken.ipynb ... FAILED in" in printed


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
    assert "ZeroDivisionError" in captured.err


def test_a_kernel_s_stderr_goes_to_its_log_not_the_terminal(tmp_path, capfd):
    """What child processes (the kernel) write to file descriptor 2 lands in the log."""
    import subprocess
    import sys

    log = tmp_path / "logs" / "chapter.log"
    with runner.stderr_to(log):
        subprocess.run([sys.executable, "-c", "import os; os.write(2, b'gpu chatter')"], check=True)
    assert log.read_text() == "gpu chatter"
    assert "gpu chatter" not in capfd.readouterr().err
    print("after", file=sys.stderr)
    assert "after" in capfd.readouterr().err  # restored


def test_side_by_side_runs_share_the_cores(tmp_path):
    assert runner.threads_per_kernel(1) == {}
    shares = runner.threads_per_kernel(2)
    assert set(shares) == set(runner.THREAD_VARIABLES) and int(shares["OMP_NUM_THREADS"]) >= 1
    notebooks = [
        _notebook(tmp_path / f"n{index}.ipynb", "import os\nprint(os.environ['OMP_NUM_THREADS'])")
        for index in range(2)
    ]
    runs = runner.run_notebooks(
        notebooks,
        tmp_path / "out",
        environment=runner.notebook_environment(smoke=True, strict_exercises=True),
        jobs=2,
    )
    assert [run.ok for run in runs] == [True, True] and [run.notebook for run in runs] == notebooks
    printed = nbformat.read(runs[0].output, as_version=4).cells[0].outputs[0]["text"]
    assert printed.strip() == shares["OMP_NUM_THREADS"]


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
    copy = runner._copy_book(tmp_path / "copy")
    copied = {str(path.relative_to(copy)) for path in copy.rglob("*") if path.is_file()}
    assert copied == {"deploy/k8s/hpa.yaml", "Makefile", ".ci/run", "tests/test_digits.py"}
