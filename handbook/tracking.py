"""Experiment tracking with MLflow (chapter 10): every training run leaves a record to compare.

:class:`MLflowTracker` is what ``train.fit(..., tracker=...)`` reports to: the run's parameters,
one set of metrics per epoch, the trained weights (safetensors), figures, the git commit and the
environment. Where it writes is MLflow's own choice of store, made the usual way:

- ``MLFLOW_TRACKING_URI`` set (a team's server, ``http://mlflow.internal:5000``): that store;
- otherwise the book's local store, a SQLite file ``<build dir>/mlflow/mlflow.db`` with the
  artifacts beside it: nothing to start, and ``make mlflow`` opens its UI on 127.0.0.1.

Runs are read back with MLflow's own API (:func:`runs_table`, :func:`metric_history`), the same
calls the UI makes. ``mlflow`` is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from handbook import config

#: The experiment a run goes to unless told otherwise.
DEFAULT_EXPERIMENT = "handbook"
#: Packages whose versions are recorded with every run (those installed, in this order).
RECORDED_PACKAGES = ("torch", "numpy", "datasets", "transformers", "mlflow", "scikit-learn")


def local_store() -> Path:
    """The folder of the book's local MLflow store: ``<build dir>/mlflow``."""
    return config.build_dir() / "mlflow"


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else the local SQLite store (``sqlite:///.../mlflow.db``)."""
    configured = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if configured:
        return configured
    return f"sqlite:///{local_store() / 'mlflow.db'}"


def client(uri: str | None = None):
    """An ``mlflow.MlflowClient`` on ``uri`` (default :func:`tracking_uri`); creates the local
    store's folder when it is the one used."""
    import mlflow

    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return mlflow.MlflowClient(tracking_uri=uri)


def experiment_id(name: str = DEFAULT_EXPERIMENT, uri: str | None = None) -> str:
    """The id of experiment ``name``, created if it does not exist yet.

    In a local SQLite store the artifacts go to ``<store>/artifacts/<name>``, beside the database
    (MLflow's default would be ``./mlruns`` under whatever folder the process started in).
    """
    uri = uri or tracking_uri()
    tracking = client(uri)
    found = tracking.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts" / name).as_uri()
    return tracking.create_experiment(name, artifact_location=location)


def git_commit(root: Path | None = None) -> str | None:
    """The checked-out commit of the book (``None`` outside a git checkout or without git)."""
    try:
        folder = root or config.project_root()
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError, FileNotFoundError):
        return None
    return result.stdout.strip() or None


def environment() -> dict[str, object]:
    """Python, platform, CPU count and the versions of :data:`RECORDED_PACKAGES` installed here."""
    from importlib import metadata

    versions = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "smoke_mode": config.smoke_mode(),
        "packages": versions,
    }


class MLflowTracker:
    """One MLflow run: a :class:`handbook.train.Tracker` for ``train.fit`` and a context manager.

    ``with MLflowTracker("sweep", run_name="lr=0.1", tags={"sweep": "lr"}) as run:
    train.fit(..., tracker=run)``. Entering starts the run and records the git commit (tag
    ``mlflow.source.git.commit``, which the UI shows) and ``environment.json``; leaving ends it,
    ``FINISHED``, or ``FAILED`` if the block raised. ``run_id`` names it for :func:`runs_table`.
    """

    def __init__(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        *,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        uri: str | None = None,
    ):
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.uri = uri or tracking_uri()
        self.run_id: str | None = None
        self._client = None

    def __enter__(self) -> MLflowTracker:
        self._client = client(self.uri)
        tags = {"mlflow.source.name": "handbook", **self.tags}
        commit = git_commit()
        if commit:
            tags["mlflow.source.git.commit"] = commit
        run = self._client.create_run(
            experiment_id(self.experiment, self.uri), run_name=self.run_name, tags=tags
        )
        self.run_id = run.info.run_id
        self.log_dict(environment(), "environment.json")
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self._running().set_terminated(self.run_id, "FAILED" if kind else "FINISHED")

    def _running(self):
        if self._client is None or self.run_id is None:
            raise RuntimeError(
                "this MLflowTracker has no run yet: use it as `with MLflowTracker(...) as run:`"
            )
        return self._client

    def log_params(self, params: Mapping[str, object]) -> None:
        """Parameters of the run (values become strings, as MLflow stores them)."""
        from mlflow.entities import Param

        entries = [Param(str(key), str(value)) for key, value in params.items()]
        self._running().log_batch(self.run_id, params=entries)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Numbers measured at ``step`` (an epoch for ``fit``); non-finite values are refused by
        MLflow, so they are left out."""
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [
            Metric(str(key), float(value), now, int(step))
            for key, value in metrics.items()
            if math.isfinite(float(value))
        ]
        self._running().log_batch(self.run_id, metrics=entries)

    def log_model(self, model, name: str = "model") -> None:
        """The weights as ``<name>/model.safetensors``, the class in ``<name>/model.json``."""
        from safetensors.torch import save_model

        with tempfile.TemporaryDirectory() as folder:
            save_model(model, str(Path(folder) / "model.safetensors"))
            description = {
                "class": f"{type(model).__module__}.{type(model).__qualname__}",
                "parameters": sum(parameter.numel() for parameter in model.parameters()),
            }
            (Path(folder) / "model.json").write_text(json.dumps(description, indent=2))
            self._running().log_artifacts(self.run_id, folder, artifact_path=name)

    def log_figure(self, figure, name: str) -> None:
        """A matplotlib figure as the artifact ``name`` (``"curves.png"``)."""
        self._running().log_figure(self.run_id, figure, name)

    def log_dict(self, values: Mapping, name: str) -> None:
        """A JSON artifact ``name``."""
        self._running().log_dict(self.run_id, dict(values), name)


def load_logged_model(model, run_id: str, name: str = "model", uri: str | None = None):
    """Load the weights a run logged (:meth:`MLflowTracker.log_model`) into ``model``; return it."""
    from mlflow.artifacts import download_artifacts
    from safetensors.torch import load_model

    # by the run's artifact URI, not "runs:/": that form would look the run up in the default store
    location = client(uri).get_run(run_id).info.artifact_uri
    with tempfile.TemporaryDirectory() as folder:
        path = download_artifacts(f"{location}/{name}/model.safetensors", dst_path=folder)
        load_model(model, path)
    return model


def runs_table(
    experiment: str = DEFAULT_EXPERIMENT,
    *,
    filter_string: str = "",
    order_by: Sequence[str] = (),
    uri: str | None = None,
):
    """The experiment's runs as a pandas DataFrame, one row per run, in the columns of
    ``mlflow.search_runs``: ``run_id``, ``status``, ``tags.mlflow.runName``, ``params.*``,
    ``metrics.*`` (each metric's last value). ``filter_string`` and ``order_by`` use MLflow's
    search syntax (``"tags.sweep = 'lr'"``, ``["metrics.val_accuracy DESC"]``).

    Built from ``MlflowClient.search_runs`` on ``uri`` rather than ``mlflow.search_runs``, which
    reads the process-wide tracking URI (and ``mlflow.set_tracking_uri`` would change it for the
    rest of the process, environment variable included).
    """
    import pandas as pd

    uri = uri or tracking_uri()
    runs = client(uri).search_runs(
        [experiment_id(experiment, uri)],
        filter_string=filter_string,
        order_by=list(order_by),
        max_results=10_000,
    )
    rows = []
    for run in runs:
        row = {"run_id": run.info.run_id, "status": run.info.status}
        row.update({f"tags.{key}": value for key, value in run.data.tags.items()})
        row.update({f"params.{key}": value for key, value in run.data.params.items()})
        row.update({f"metrics.{key}": value for key, value in run.data.metrics.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def metric_history(run_id: str, key: str, uri: str | None = None) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of metric ``key`` of one run, in step order."""
    history = sorted(client(uri).get_metric_history(run_id, key), key=lambda metric: metric.step)
    return [metric.step for metric in history], [metric.value for metric in history]


def ui_command(port: int = 5000, uri: str | None = None) -> list[str]:
    """The command that serves MLflow's UI over ``uri`` (default :func:`tracking_uri`) on
    ``127.0.0.1:port``: only this machine can reach it."""
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--workers",
        "1",  # one person's UI: the default's several workers only cost memory and start-up
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def ui_environment() -> dict[str, str]:
    """This process's environment for :func:`ui_command`, with MLflow's job execution off
    unless the reader set ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION``: the server would otherwise
    start job-runner processes (for GenAI evaluation jobs and trace roll-ups) that a UI over
    training runs never uses, each importing MLflow again before the UI answers."""
    environment = dict(os.environ)
    environment.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return environment


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m handbook.tracking ui [--port N]``: MLflow's UI over :func:`tracking_uri`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m handbook.tracking")
    commands = parser.add_subparsers(dest="command", required=True)
    ui = commands.add_parser(
        "ui", help="MLflow's UI on 127.0.0.1 over the book's store (or $MLFLOW_TRACKING_URI's)"
    )
    ui.add_argument("--port", type=int, default=5000)
    arguments = parser.parse_args(argv)
    command = ui_command(arguments.port)
    print(f"MLflow UI over {tracking_uri()} on http://127.0.0.1:{arguments.port} (Ctrl-C stops)")
    try:
        return subprocess.run(command, check=False, env=ui_environment()).returncode
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
