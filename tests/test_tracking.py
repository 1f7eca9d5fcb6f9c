"""MLflow tracking against a real store: what ``train.fit(..., tracker=...)`` logs is read back."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from handbook import tracking, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def build_folder(tmp_path_factory):
    """One temporary build folder for the module: creating an MLflow database takes seconds."""
    return tmp_path_factory.mktemp("build")


@pytest.fixture
def store(build_folder, monkeypatch, request):
    """The book's local store, in the module's build folder; one experiment per test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("HANDBOOK_BUILD_DIR", str(build_folder))
    monkeypatch.setattr(tracking, "DEFAULT_EXPERIMENT", request.node.name[:60])
    return build_folder / "mlflow"


def _problem(n=64):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(n, 2, generator=generator)
    targets = (inputs.sum(dim=1) > 0).long()
    return train.make_loader(inputs, targets, batch_size=16, shuffle=True)


def _tracked_run(experiment=None, epochs=3, lr=0.5, **tags):
    experiment = experiment or tracking.DEFAULT_EXPERIMENT
    loader = _problem()
    train.set_seed(0)
    model = nn.Linear(2, 2)
    with tracking.MLflowTracker(experiment, run_name=f"lr={lr}", tags=tags) as run:
        history = train.fit(
            model,
            loader,
            epochs=epochs,
            optimizer=torch.optim.SGD(model.parameters(), lr=lr),
            val_loader=loader,
            progress=False,
            tracker=run,
        )
    return run, model, history


def test_the_default_store_is_a_sqlite_file_in_the_build_folder(store):
    assert tracking.tracking_uri() == f"sqlite:///{store / 'mlflow.db'}"
    run, _, _ = _tracked_run()
    assert (store / "mlflow.db").is_file()
    location = tracking.client().get_run(run.run_id).info.artifact_uri
    assert location.startswith((store / "artifacts" / tracking.DEFAULT_EXPERIMENT).as_uri())


def test_fit_logs_parameters_metrics_per_epoch_model_commit_and_environment(store):
    run, model, history = _tracked_run(epochs=3, lr=0.5)
    logged = tracking.client().get_run(run.run_id)

    assert logged.info.status == "FINISHED"
    assert logged.info.run_name == "lr=0.5"
    params = logged.data.params
    assert params["epochs"] == "3" and params["optimizer"] == "SGD"
    assert params["optimizer.lr"] == "0.5" and params["batch_size"] == "16"
    assert params["parameters"] == "6" and params["world_size"] == "1"
    steps, values = tracking.metric_history(run.run_id, "val_accuracy")
    assert steps == [1, 2, 3]
    assert values == pytest.approx(history.val_accuracy)
    assert tracking.metric_history(run.run_id, "train_loss")[1] == pytest.approx(history.train_loss)
    commit = logged.data.tags.get("mlflow.source.git.commit")
    assert commit == tracking.git_commit() and (commit is None or len(commit) == 40)

    restored = tracking.load_logged_model(nn.Linear(2, 2), run.run_id)
    assert torch.equal(restored.weight, model.weight) and torch.equal(restored.bias, model.bias)
    artifacts = {item.path for item in tracking.client().list_artifacts(run.run_id)}
    assert {"environment.json", "model"} <= artifacts
    location = tracking.client().get_run(run.run_id).info.artifact_uri.removeprefix("file://")
    environment = json.loads(Path(location, "environment.json").read_text())
    assert environment["packages"]["torch"] == torch.__version__.split("+")[0]
    assert environment["python"] == platform.python_version()


def test_runs_are_compared_through_mlflows_search(store):
    for lr in (0.01, 0.5):
        _tracked_run(lr=lr, sweep="lr")
    _tracked_run(lr=0.2, sweep="other")

    table = tracking.runs_table(
        tracking.DEFAULT_EXPERIMENT,
        filter_string="tags.sweep = 'lr'",
        order_by=["metrics.val_accuracy DESC"],
    )
    assert sorted(table["params.optimizer.lr"]) == ["0.01", "0.5"]
    assert list(table["metrics.val_accuracy"]) == sorted(table["metrics.val_accuracy"])[::-1]
    assert set(table["status"]) == {"FINISHED"}


def test_mlflow_tracking_uri_points_the_runs_elsewhere(store, tmp_path, monkeypatch):
    elsewhere = f"sqlite:///{tmp_path / 'team' / 'server.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    assert tracking.tracking_uri() == elsewhere

    run, _, _ = _tracked_run()
    assert (tmp_path / "team" / "server.db").is_file()
    local = tracking.client(f"sqlite:///{store / 'mlflow.db'}")
    with pytest.raises(Exception, match="not found"):
        local.get_run(run.run_id)
    assert tracking.client(elsewhere).get_run(run.run_id).info.status == "FINISHED"


def test_a_failing_block_marks_the_run_failed_and_figures_are_artifacts(store):
    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    with (
        pytest.raises(RuntimeError, match="boom"),
        tracking.MLflowTracker(tracking.DEFAULT_EXPERIMENT) as run,
    ):
        run.log_figure(figure, "curve.png")
        raise RuntimeError("boom")
    plt.close(figure)
    logged = tracking.client().get_run(run.run_id)
    assert logged.info.status == "FAILED"
    assert "curve.png" in {item.path for item in tracking.client().list_artifacts(run.run_id)}


def test_a_tracker_outside_a_with_block_says_how_to_use_it(store):
    with pytest.raises(RuntimeError, match="use it as `with MLflowTracker"):
        tracking.MLflowTracker("tests").log_params({"a": 1})


def test_the_ui_starts_without_job_runners_unless_the_reader_asks(monkeypatch):
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    assert tracking.ui_environment()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    assert tracking.ui_environment()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"
