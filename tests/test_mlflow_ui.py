"""The MLflow UI (``make mlflow``) in a real browser: it starts on 127.0.0.1 over a store the
book's tracker wrote, and the chapter's runs are there, by name, with their metric.

Playwright drives the system Chromium (``/usr/bin/chromium``, or ``$CHROMIUM``). Without a browser
the test is skipped with one line saying so, except under CI (``CI=true``), where it fails: a
browser test that silently does not run has not tested anything. Costs a few seconds: MLflow's
server start-up and one page load.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from torch import nn

from handbook import tracking, train

EXPERIMENT = "10_toolchain"
START_TIMEOUT_S = 300  # a loaded machine: MLflow's server imports a lot before it listens


def _chromium() -> str | None:
    candidates = [os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")]
    candidates += [shutil.which("chromium-browser"), shutil.which("google-chrome")]
    return next((path for path in candidates if path and Path(path).is_file()), None)


def _browser_or_skip() -> str:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(
                "CI is set but no Chromium was found (install it: apt-get install chromium)"
            )
        pytest.skip("no Chromium on this machine (apt-get install chromium); CI=true would fail")
    return browser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the MLflow UI exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise AssertionError(f"the MLflow UI did not answer on {url} within {START_TIMEOUT_S} s")


def _stop(server: subprocess.Popen) -> None:
    """End the UI's whole process group: politely, then for sure."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


@pytest.fixture
def store_with_a_run(tmp_path, monkeypatch):
    """A store holding one tracked training run, as the chapter makes them."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    inputs = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    loader = train.make_loader(inputs, (inputs[:, 0] > 0).long(), batch_size=8, shuffle=True)
    model = nn.Linear(2, 2)
    with tracking.MLflowTracker(EXPERIMENT, run_name="mlp lr=0.3", tags={"sweep": "ui"}) as run:
        train.fit(
            model,
            loader,
            epochs=2,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.3),
            val_loader=loader,
            tracker=run,
            progress=False,
        )
    return uri, run.run_id


def test_the_mlflow_ui_lists_the_chapters_runs(store_with_a_run):
    browser_path = _browser_or_skip()
    from playwright.sync_api import sync_playwright

    uri, run_id = store_with_a_run
    port = _free_port()
    command = tracking.ui_command(port, uri)
    assert command[-4:] == ["--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        command,
        env=tracking.ui_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, server)
        experiment = tracking.experiment_id(EXPERIMENT, uri)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=browser_path, args=["--no-sandbox"]
            )
            page = browser.new_page()
            page.goto(f"{url}/#/experiments/{experiment}/runs", timeout=120_000)
            page.get_by_text("mlp lr=0.3").first.wait_for(timeout=120_000)
            page.goto(f"{url}/#/experiments/{experiment}/runs/{run_id}", timeout=120_000)
            page.get_by_text("val_accuracy").first.wait_for(timeout=120_000)
            browser.close()
    finally:
        _stop(server)
