from pathlib import Path

import pytest

import handbook
from handbook import config


@pytest.mark.parametrize(
    "value, expected", [("1", True), ("true", True), ("0", False), ("", False)]
)
def test_smoke_mode_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(config.SMOKE_ENV, value)
    assert handbook.smoke_mode() is expected


def test_smoke_mode_rejects_an_unclear_value(monkeypatch):
    monkeypatch.setenv(config.SMOKE_ENV, "maybe")
    with pytest.raises(ValueError, match="HANDBOOK_SMOKE='maybe'"):
        handbook.smoke_mode()


def test_project_root_holds_the_book():
    root = config.project_root()
    assert (root / "_toc.yml").is_file()
    assert (root / "handbook" / "config.py").is_file()
    assert config.build_dir() == root / "_build"


def test_ledger_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(config.LEDGER_ENV, str(tmp_path / "elsewhere"))
    assert config.ledger_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv(config.LEDGER_ENV)
    assert config.ledger_dir() == config.project_root() / "_build" / "ledger"


def test_import_handbook_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, handbook; heavy = [m for m in ('matplotlib', 'torch', 'fastapi', 'papermill',"
        " 'datasets') if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent,
    )
    assert result.stdout.strip() == ""


def test_build_dir_override_keeps_smoke_builds_apart(monkeypatch):
    root = config.project_root()
    assert config.html_dir() == root / "_build" / "html"
    monkeypatch.setenv(config.BUILD_ENV, "_build/smoke")
    monkeypatch.delenv(config.LEDGER_ENV)  # set per test by conftest
    assert config.build_dir() == root / "_build" / "smoke"
    assert config.ledger_dir() == root / "_build" / "smoke" / "ledger"
    assert config.html_dir() == root / "_build" / "smoke" / "_build" / "html"


@pytest.mark.parametrize(
    "value, expected", [(None, True), ("0", False), ("no", False), ("1", True)]
)
def test_live_progress_switch(monkeypatch, value, expected):
    if value is not None:
        monkeypatch.setenv(config.PROGRESS_ENV, value)
    assert config.live_progress() is expected


def test_chapter_notebooks_are_in_book_order():
    names = [path.name for path in config.chapter_notebooks()]
    assert names and names == sorted(names)
    assert names[0] == "00_digits.ipynb"


def test_a_temporary_environment_is_restored_on_the_way_out(monkeypatch):
    import os

    monkeypatch.setenv("HANDBOOK_PROBE_KEPT", "before")
    monkeypatch.delenv("HANDBOOK_PROBE_NEW", raising=False)
    with config.temporary_environment({"HANDBOOK_PROBE_KEPT": "in", "HANDBOOK_PROBE_NEW": "in"}):
        assert os.environ["HANDBOOK_PROBE_KEPT"] == os.environ["HANDBOOK_PROBE_NEW"] == "in"
    assert os.environ["HANDBOOK_PROBE_KEPT"] == "before" and "HANDBOOK_PROBE_NEW" not in os.environ


def test_an_expected_exercise_status_is_one_the_checks_know(monkeypatch):
    from handbook.exercises import checks

    assert checks.STATUSES is config.EXERCISE_STATUSES and checks.NOT_DONE == "not done"
    monkeypatch.setenv(config.EXPECT_EXERCISES_ENV, "not done")
    assert config.expected_exercise_status() == "not done"
    monkeypatch.setenv(config.EXPECT_EXERCISES_ENV, "almost")
    with pytest.raises(ValueError, match="expected one of passed, failed, not done"):
        config.expected_exercise_status()
