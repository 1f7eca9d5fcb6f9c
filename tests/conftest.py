"""Shared test setup: offline, non-interactive plotting, an isolated ledger per test."""

import os

import matplotlib
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def isolated_ledger(tmp_path, monkeypatch):
    """Claims recorded by a test go to a temporary folder, never to the book's ledger."""
    folder = tmp_path / "ledger"
    monkeypatch.setenv("HANDBOOK_LEDGER_DIR", str(folder))
    monkeypatch.delenv("HANDBOOK_SMOKE", raising=False)
    monkeypatch.delenv("HANDBOOK_BUILD_DIR", raising=False)
    monkeypatch.delenv("HANDBOOK_PROGRESS", raising=False)
    monkeypatch.delenv("HANDBOOK_EXERCISES_STRICT", raising=False)
    monkeypatch.delenv("HANDBOOK_GRADE_FILE", raising=False)
    return folder
