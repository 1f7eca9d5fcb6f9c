import pytest

from handbook import claims, cli


def test_ledger_command_prints_the_records(capsys):
    claims.record(
        "C24",
        claim="start with digits",
        article_value="advice",
        measured=98.0,
        unit="%",
        verdict="reproduced",
        note="n",
        chapter="00_digits",
    )
    assert cli.main(["ledger"]) == 0
    out = capsys.readouterr().out
    assert "| C24 | start with digits |" in out and "98 %" in out


def test_unknown_notebook_is_named():
    with pytest.raises(SystemExit, match="no notebook 'nope.ipynb'"):
        cli.main(["run", "nope.ipynb"])


def test_grade_refuses_missing_files():
    with pytest.raises(SystemExit, match="no submission at missing.ipynb"):
        cli.main(["grade", "missing.ipynb"])


def test_stage_and_ledger_include(tmp_path):
    cli.stage_book_sources(tmp_path)
    for name in ("_config.yml", "_toc.yml", "references.bib", "book/intro.md"):
        assert (tmp_path / name).is_file()
    include = cli.write_ledger_include(tmp_path)
    assert include.read_text().count("<tr") == 25  # a header and one row per claim
    assert "No claim has been measured" in include.read_text()


def test_bench_command_prints_one_table(capsys, monkeypatch):
    # each chapter module's benchmarks() is tested in its own test file; here, the command
    monkeypatch.setattr(cli, "BENCHMARK_MODULES", ["handbook.digits"])
    assert cli.main(["bench", "--smoke"]) == 0
    out = capsys.readouterr().out
    assert "speed-up" in out and "SmallCNN" in out


def test_every_registered_benchmark_module_provides_benchmarks():
    import importlib

    for name in cli.BENCHMARK_MODULES:
        assert callable(importlib.import_module(name).benchmarks), name


def test_student_command_writes_the_edition(tmp_path, capsys):
    assert cli.main(["student", "00_digits", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "00_digits.ipynb").is_file()
    assert "solutions removed" in capsys.readouterr().out


def test_clear_ledger_removes_only_claim_records(tmp_path):
    (tmp_path / "C3.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    cli.clear_ledger(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_book_refuses_notebooks_whose_last_run_failed(tmp_path, monkeypatch):
    import nbformat
    from nbformat.v4 import new_notebook

    from handbook import runner

    site = tmp_path / "site"
    (site / "notebooks").mkdir(parents=True)
    for chapter in runner.chapter_notebooks():
        notebook = new_notebook()
        notebook.metadata["papermill"] = {"exception": chapter.name == "00_digits.ipynb"}
        nbformat.write(notebook, site / "notebooks" / chapter.name)
    with pytest.raises(SystemExit, match="their last run failed: 00_digits.ipynb"):
        cli._check_every_notebook_executed(site)


def test_student_command_keeps_existing_work(tmp_path, capsys):
    answer = tmp_path / "00_digits.ipynb"
    answer.write_text("my answers")
    assert cli.main(["student", "00_digits", "--out", str(tmp_path)]) == 0
    assert answer.read_text() == "my answers"
    assert "kept" in capsys.readouterr().out
    assert cli.main(["student", "00_digits", "--out", str(tmp_path), "--force"]) == 0
    assert answer.read_text() != "my answers"


def test_serve_command_passes_options_and_builds_first(monkeypatch):
    import handbook.serve.__main__ as serve_main

    seen = []
    monkeypatch.setattr(serve_main, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["serve", "--backend", "int8", "--port", "8080"]) == 0
    assert seen == [["--build", "--backend", "int8", "--port", "8080"]]


def test_import_handbook_does_not_load_the_server():
    import subprocess
    import sys

    code = "import sys, handbook, handbook.cli; print('fastapi' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.stdout.strip() == "False", loaded.stderr
