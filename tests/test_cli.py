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


def test_bench_command_prints_one_table(capsys, monkeypatch):
    # each chapter module's benchmarks() is tested in its own test file; here, the command
    monkeypatch.setattr(cli, "BENCHMARK_MODULES", ["handbook.digits"])
    assert cli.main(["bench", "--smoke"]) == 0
    out = capsys.readouterr().out
    assert "speed-up" in out and "SmallCNN" in out


def test_a_failing_benchmark_module_keeps_the_other_rows_and_fails_the_command(capsys, monkeypatch):
    import sys
    import types

    from handbook import bench

    def rows(smoke):
        return [bench.Measurement("group", "variant", 2.0, 1.0, None, "kept")]

    def broken(smoke):
        raise FileNotFoundError("deploy/k8s/hpa.yaml")

    for name, function in (("fake_good", rows), ("fake_broken", broken)):
        module = types.ModuleType(name)
        module.benchmarks = function
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(cli, "BENCHMARK_MODULES", ["fake_broken", "fake_good"])
    assert cli.main(["bench", "--smoke"]) == 1
    out = capsys.readouterr().out
    assert "fake_broken failed: FileNotFoundError: deploy/k8s/hpa.yaml" in out
    assert "kept" in out and "1 module(s) failed, their rows are missing: fake_broken" in out


def test_bench_selects_modules_by_short_name_and_names_unknown_ones():
    assert cli.benchmark_modules([]) == cli.BENCHMARK_MODULES
    assert cli.benchmark_modules(["serving.benchmarks", "handbook.attention"]) == [
        "handbook.attention",
        "handbook.serving.benchmarks",
    ]
    with pytest.raises(SystemExit, match="no benchmarks named atention; expected some of: digits"):
        cli.benchmark_modules(["atention"])


def test_every_registered_benchmark_module_provides_benchmarks():
    import importlib

    for name in cli.BENCHMARK_MODULES:
        assert callable(importlib.import_module(name).benchmarks), name


def test_student_command_writes_the_edition(tmp_path, capsys):
    assert cli.main(["student", "00_digits", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "00_digits.ipynb").is_file()
    assert "solutions removed" in capsys.readouterr().out


def test_student_command_keeps_existing_work(tmp_path, capsys):
    answer = tmp_path / "00_digits.ipynb"
    answer.write_text("my answers")
    assert cli.main(["student", "00_digits", "--out", str(tmp_path)]) == 0
    assert answer.read_text() == "my answers"
    assert "kept" in capsys.readouterr().out
    assert cli.main(["student", "00_digits", "--out", str(tmp_path), "--force"]) == 0
    assert answer.read_text() != "my answers"


def test_serve_command_passes_options_and_builds_first(monkeypatch):
    import handbook.serving.__main__ as serve_main

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


# verify: re-run chapters into a scratch folder, compare with the ledger -------------------------


def _claim(ledger, claim_id="C24", measured=98.0, interval=None, chapter="tiny", mode=None):
    return claims.record(
        claim_id,
        claim="start with digits",
        article_value="advice",
        measured=measured,
        interval=interval,
        unit="%",
        verdict="reproduced",
        note="n",
        chapter=chapter,
        ledger_dir=ledger,
    )


def _fake_rerun(monkeypatch, records, build_dir, also=None):
    """Replace notebook execution by writing ``records`` (claim id -> measured, interval) into
    the scratch ledger the kernel would have been given (and whatever ``also(ledger)`` writes).
    The default scratch folder goes under ``build_dir`` (the test's), never under the
    checkout's ``_build``."""
    from pathlib import Path

    from handbook import book, config, runner

    monkeypatch.setenv("HANDBOOK_BUILD_DIR", str(build_dir))

    def execute(notebooks, out_dir, *, environment):
        ledger = Path(environment["HANDBOOK_LEDGER_DIR"])
        scratch = Path(environment["HANDBOOK_BUILD_DIR"])
        assert ledger.parent == scratch
        assert out_dir == config.executed_dir(scratch)  # where chapter 10 looks (C23)
        for claim_id, (measured, interval) in records.items():
            _claim(ledger, claim_id, measured, interval)
        if also:
            also(ledger)
        return [
            runner.NotebookRun(notebook, out_dir / notebook.name, 0.1) for notebook in notebooks
        ]

    monkeypatch.setattr(book, "execute", execute)


@pytest.fixture
def tiny_notebook(tmp_path):
    import nbformat

    path = tmp_path / "tiny.ipynb"
    code = (
        "from handbook import claims\n"
        "claims.record('C24', claim='start with digits', article_value='advice', measured=98.0,"
        " unit='%', verdict='reproduced', note='n', chapter='tiny')"
    )
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), path)
    return path


def test_verify_reruns_a_notebook_and_finds_the_same_values(tmp_path, tiny_notebook, capsys):
    reference = tmp_path / "reference"
    _claim(reference)
    scratch = tmp_path / "scratch"
    status = cli.main(
        ["verify", str(tiny_notebook), "--against", str(reference), "--scratch", str(scratch)]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert (scratch / "ledger" / "C24.json").is_file()  # the kernel wrote to the scratch ledger
    assert "C24 same" in out and "identical value" in out and "1 claim(s) reproduced" in out


def test_verify_reports_drift_per_claim_and_exits_non_zero(
    tmp_path, tiny_notebook, monkeypatch, capsys
):
    reference = tmp_path / "reference"
    _claim(reference, "C11", 3.8, (3.1, 4.5))
    _claim(reference, "C12", 92.0)
    _claim(reference, "C13", 60.0)
    _claim(reference, "C14", 5.9, (5.5, 6.2))
    _fake_rerun(
        monkeypatch,
        {
            "C11": (4.2, (3.9, 4.6)),
            "C12": (92.0, None),
            "C13": (60.5, None),
            "C14": (9, (8.5, 9.5)),
        },
        tmp_path / "build",
    )
    status = cli.main(["verify", str(tiny_notebook), "--against", str(reference)])
    assert [path.name[:7] for path in (tmp_path / "build").iterdir()] == ["verify-"]
    lines = {
        line.split()[0]: line for line in capsys.readouterr().out.splitlines() if " C1" in line
    }
    assert status == 1
    assert "same" in lines["C11"] and "intervals overlap" in lines["C11"]
    assert "same" in lines["C12"] and "identical" in lines["C12"]
    assert "DRIFT" in lines["C13"] and "differ by +0.5" in lines["C13"]
    assert "DRIFT" in lines["C14"] and "do not overlap" in lines["C14"]


def _one_shot_c23(ledger, measured):
    claims.record(
        "C23",
        claim="iteration loop",
        article_value="4.7x",
        measured=measured,
        unit="x",
        verdict="reproduced" if measured else "not measurable here",
        note="n",
        chapter="tiny",
        timing=True,
        ledger_dir=ledger,
    )


def test_verify_of_one_chapter_does_not_call_a_timing_it_cannot_measure_a_drift(
    tmp_path, tiny_notebook, monkeypatch, capsys
):
    """C23 times the chapters executed before chapter 10 in the same run; re-run alone, it has
    none. The line says n/a and why, the summary names it, and the exit status is 0."""
    reference = tmp_path / "reference"
    _claim(reference)
    _one_shot_c23(reference, 26.8)
    _fake_rerun(
        monkeypatch,
        {"C24": (98.0, None)},
        tmp_path / "build",
        also=lambda ledger: _one_shot_c23(ledger, None),
    )
    capsys.readouterr()
    assert cli.main(["verify", str(tiny_notebook), "--against", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "C23 n/a" in out and "the re-run could not measure (not measurable here)" in out
    assert "no drift: 1 claim(s) reproduced the ledger's values" in out
    assert "not measured by this re-run, so not compared: C23\n" in out
    # nothing drifted: the scratch folder it made is gone (one given with --scratch is kept)
    assert list((tmp_path / "build").iterdir()) == [] and "was removed" in out


def test_verify_compares_two_existing_ledgers_without_running(tmp_path, tiny_notebook, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    _claim(first, "C11", 3.8, (3.1, 4.5))
    _claim(second, "C11", 2.0, (1.8, 2.2))
    _claim(second, "C12", 90.0, chapter="elsewhere")  # another chapter: not compared
    capsys.readouterr()
    arguments = ["verify", str(tiny_notebook), "--against", str(first)]
    assert cli.main([*arguments, "--rerun-ledger", str(second)]) == 1
    out = capsys.readouterr().out
    assert "nothing re-executed" in out and "C11 DRIFT" in out and "C12" not in out


def test_verify_needs_a_ledger_to_compare_with(tmp_path, tiny_notebook, monkeypatch, capsys):
    assert cli.main(["verify", str(tiny_notebook), "--against", str(tmp_path / "none")]) == 2
    assert "no ledger in" in capsys.readouterr().err
    other_chapter = tmp_path / "other"
    _claim(other_chapter, chapter="00_digits")
    _fake_rerun(monkeypatch, {"C24": (98.0, None)}, tmp_path / "build")
    assert cli.main(["verify", str(tiny_notebook), "--against", str(other_chapter)]) == 2
    assert "holds no claim of tiny" in capsys.readouterr().err


def test_jobs_must_be_a_positive_number(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--jobs", "0"])
    assert "expected a whole number of at least 1, got '0'" in capsys.readouterr().err


def test_book_names_the_chapters_not_executed_as_the_command_s_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDBOOK_BUILD_DIR", str(tmp_path))
    with pytest.raises(SystemExit, match="not executed yet: 00_digits.ipynb"):
        cli.main(["book", "--no-run"])


def test_verify_refuses_a_scratch_folder_in_use(tmp_path, tiny_notebook):
    reference, scratch = tmp_path / "reference", tmp_path / "scratch"
    _claim(reference)
    scratch.mkdir()
    (scratch / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="is not empty"):
        cli.main(
            ["verify", str(tiny_notebook), "--against", str(reference), "--scratch", str(scratch)]
        )
