"""Chapter 10, the tools around the model: Transformers' Trainer, ECS logs, Label Studio, C23.

- **Hugging Face Transformers**: a small ViT built from a config (nothing downloaded) for the
  8x8 digits, trained once with ``transformers.Trainer`` (reporting to the book's MLflow store)
  and once with ``handbook.train.fit``; :func:`lines_of_code` counts what the learner writes for
  each.
- **ELK**: chapter 5's request logs in the Elastic Common Schema, written by ``ecs-logging``
  after :class:`EcsFields` renames the server's fields to ECS names; ``deploy/elk/filebeat.yml``
  is what would ship them.
- **Label Studio**: its JSON export (tasks with ``data`` and ``annotations``) written from known
  labels and simulated annotators, and read back into a ``datasets.Dataset`` by majority vote.
- **C23**: the time from a one-line change to a verified result, with the toolchain (focused
  test, one chapter in smoke mode, a comparison through MLflow) and without (every chapter
  re-executed, as papermill timed them); :func:`handbook.verdicts.toolchain.c23` decides its
  verdict and note.
"""

from __future__ import annotations

import ast
import inspect
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from handbook import config, train

# --- Hugging Face Transformers --------------------------------------------------------------


def vit_config(image_side: int = 8, classes: int = 10, hidden: int = 32, layers: int = 2):
    """A ``ViTConfig`` for single-channel ``image_side`` x ``image_side`` images: patches of 2x2
    pixels, ``layers`` blocks of width ``hidden`` with 2 heads; no pretrained weights anywhere."""
    from transformers import ViTConfig

    return ViTConfig(
        image_size=image_side,
        patch_size=2,
        num_channels=1,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=classes,
    )


def vit_from_config(config, seed: int = 0):
    """A freshly initialised ``ViTForImageClassification`` (seeded): built, not downloaded."""
    from transformers import ViTForImageClassification

    torch.manual_seed(seed)
    return ViTForImageClassification(config)


class Logits(nn.Module):
    """A Transformers model as a plain ``images -> logits`` module for ``handbook.train``:
    ``(batch, 1, side, side)`` in, ``(batch, classes)`` out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


@dataclass
class TrainingResult:
    """What one way of training produced: test accuracy (fraction), wall time (seconds), the
    per-epoch validation accuracy and the MLflow run it was tracked in."""

    accuracy: float
    seconds: float
    val_accuracy: list[float]
    run_id: str | None = None


def train_with_trainer(
    model, train_set, test_set, *, epochs, batch_size, lr, seed, output_dir, experiment, run_name
) -> TrainingResult:
    """Train ``model`` with ``transformers.Trainer`` and report to MLflow.

    ``train_set`` / ``test_set``: ``datasets.Dataset`` with columns ``pixel_values`` ``(1, 8, 8)``
    and ``labels`` in torch format. AdamW at a constant ``lr``, evaluation every epoch.
    """
    from transformers import Trainer, TrainingArguments

    from handbook import tracking

    arguments = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=256,
        learning_rate=lr,
        weight_decay=0.0,
        lr_scheduler_type="constant",
        eval_strategy="epoch",
        logging_strategy="epoch",
        save_strategy="no",
        report_to=["mlflow"],
        run_name=run_name,
        seed=seed,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=not config.live_progress(),
    )

    def accuracy(prediction) -> dict[str, float]:
        return {
            "accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())
        }

    store = {"MLFLOW_TRACKING_URI": tracking.tracking_uri(), "MLFLOW_EXPERIMENT_NAME": experiment}
    tracking.experiment_id(experiment)  # created with the artifacts beside the local store
    with config.temporary_environment(store):
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=train_set,
            eval_dataset=test_set,
            compute_metrics=accuracy,
        )
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    history = [row["eval_accuracy"] for row in trainer.state.log_history if "eval_accuracy" in row]
    runs = tracking.runs_table(
        experiment,
        filter_string=f"tags.mlflow.runName = '{run_name}'",
        order_by=["attributes.start_time DESC"],
    )
    return TrainingResult(history[-1], seconds, history, runs["run_id"].iloc[0])


def train_with_handbook(
    model, train_set, test_set, *, epochs, batch_size, lr, seed, experiment, run_name
) -> TrainingResult:
    """Train the same kind of model with ``handbook.train.fit`` (same optimizer, batch, epochs),
    tracked with :class:`handbook.tracking.MLflowTracker`; the data sets as for the Trainer."""
    from handbook import tracking

    train_rows, test_rows = train_set[:], test_set[:]
    loader = train.make_loader(
        train_rows["pixel_values"],
        train_rows["labels"],
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
    )
    test_loader = train.make_loader(
        test_rows["pixel_values"], test_rows["labels"], batch_size=256, shuffle=False
    )
    network = Logits(model)
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=0.0)
    with tracking.MLflowTracker(experiment, run_name=run_name) as run:
        start = time.perf_counter()
        history = train.fit(
            network,
            loader,
            epochs=epochs,
            optimizer=optimizer,
            val_loader=test_loader,
            tracker=run,
            description=run_name,
        )
        seconds = time.perf_counter() - start
    return TrainingResult(history.val_accuracy[-1], seconds, history.val_accuracy, run.run_id)


def digits_as_pixel_values(split) -> datasets.Dataset:  # noqa: F821
    """A digits split (``handbook.datasets.digits``) as the columns a Transformers image model
    takes: ``pixel_values`` float ``(1, 8, 8)`` in [0, 1] and ``labels``, in torch format.

    ``pixel_values`` is a fixed-shape ``Array3D`` column: a batch of rows becomes one tensor in
    one conversion. As nested lists, every pixel of every row would become a tensor of its own,
    which made the Trainer's data loading (not its training) most of its wall time.
    """
    from datasets import Array3D, Dataset, Features, Value

    from handbook.datasets import image_tensors

    images, labels = image_tensors(split)
    features = Features(
        {
            "pixel_values": Array3D(shape=tuple(images.shape[1:]), dtype="float32"),
            "labels": Value("int64"),
        }
    )
    table = Dataset.from_dict(
        {"pixel_values": images.numpy(), "labels": labels.numpy()}, features=features
    )
    return table.with_format("torch")


def lines_of_code(function: Callable) -> int:
    """Lines of a function's body a person writes: no blank lines, comments or docstring."""
    source = textwrap.dedent(inspect.getsource(function))
    definition = ast.parse(source).body[0]
    body = definition.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    lines = source.splitlines()[body[0].lineno - 1 : body[-1].end_lineno]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


# --- ELK: chapter 5's logs in the Elastic Common Schema -------------------------------------

#: Chapter 5's request-log fields -> their Elastic Common Schema names (ECS 8).
ECS_FIELD_NAMES = {
    "request_id": "http.request.id",
    "client_request_id": "labels.client_request_id",
    "method": "http.request.method",
    "path": "url.path",
    "route": "labels.route",
    "status": "http.response.status_code",
    "model_version": "labels.model_version",
    "error": "error.message",
}


class EcsFields(logging.Filter):
    """Rename the extra fields of chapter 5's log records to ECS names, on the way out.

    ``duration_ms`` becomes ``event.duration`` in nanoseconds (ECS's unit); a field without an
    ECS name is kept under ``labels.``. The server's code (``LOGGER.info("request",
    extra={...})``) stays as it is: only the handler changes.
    """

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}

    def filter(self, record: logging.LogRecord) -> bool:
        extras = {k: v for k, v in vars(record).items() if k not in self._STANDARD}
        for name, value in extras.items():
            if "." in name or name.startswith("_"):
                continue  # already an ECS name, or private to a formatter
            delattr(record, name)
            if name == "duration_ms":
                setattr(record, "event.duration", int(round(float(value) * 1e6)))
            elif isinstance(value, (dict, list)):
                setattr(record, f"labels.{name}", json.dumps(value, default=str))
            else:
                setattr(record, ECS_FIELD_NAMES.get(name, f"labels.{name}"), value)
        return True


def ecs_handler(stream, service: str = "handbook-serve") -> logging.Handler:
    """A handler writing ECS JSON lines (``ecs_logging.StdlibFormatter``) to ``stream``, with
    :class:`EcsFields` and the service's name."""
    import ecs_logging

    handler = logging.StreamHandler(stream)
    handler.setFormatter(ecs_logging.StdlibFormatter(extra={"service.name": service}))
    handler.addFilter(EcsFields())
    return handler


def log_line(logger: logging.Logger, handler: logging.Handler, message: str, **fields) -> str:
    """What ``logger.info(message, extra=fields)`` writes through ``handler`` alone (one line)."""
    import io

    stream = io.StringIO()
    handler.setStream(stream)
    # the record goes straight to the handler: another library's logging set-up (uvicorn's,
    # MLflow's) may have disabled or re-levelled the logger, which must not change the line
    record = logger.makeRecord(
        logger.name, logging.INFO, __file__, 0, message, None, None, extra=fields
    )
    handler.handle(record)
    return stream.getvalue().strip()


def flatten(document: Mapping, prefix: str = "") -> dict[str, object]:
    """A nested JSON object as dotted keys: ``{"http": {"request": {"method": "POST"}}}`` ->
    ``{"http.request.method": "POST"}`` (how Kibana lists a document's fields)."""
    flat: dict[str, object] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# --- Label Studio --------------------------------------------------------------------------


def label_studio_export(
    texts: Sequence[str],
    annotations: Sequence[Sequence[str | None]],
    *,
    from_name: str = "topic",
    to_name: str = "text",
) -> list[dict]:
    """Tasks in Label Studio's JSON export format, one per text.

    ``annotations[i]`` lists what each annotator chose for text ``i``: a class name, or ``None``
    for an annotation the annotator skipped (exported with ``was_cancelled: true`` and no
    result). A text with no annotations is a task nobody labelled yet.
    """
    if len(texts) != len(annotations):
        raise ValueError(
            f"expected one list of annotations per text, got {len(annotations)} for {len(texts)}"
        )
    tasks, annotation_id = [], 0
    for task_id, (text, chosen) in enumerate(zip(texts, annotations, strict=True), start=1):
        entries = []
        for annotator, choice in enumerate(chosen, start=1):
            annotation_id += 1
            result = (
                []
                if choice is None
                else [
                    {
                        "id": f"r{annotation_id}",
                        "from_name": from_name,
                        "to_name": to_name,
                        "type": "choices",
                        "origin": "manual",
                        "value": {"choices": [choice]},
                    }
                ]
            )
            entries.append(
                {
                    "id": annotation_id,
                    "completed_by": annotator,
                    "was_cancelled": choice is None,
                    "result": result,
                    "ground_truth": False,
                }
            )
        tasks.append(
            {"id": task_id, "data": {to_name: text}, "annotations": entries, "predictions": []}
        )
    return tasks


def load_label_studio(
    path: str | Path,
    label_names: Sequence[str],
    *,
    from_name: str = "topic",
    to_name: str = "text",
):
    """A Label Studio JSON export as a ``datasets.Dataset``, one row per labelled task.

    Columns: ``id`` (the task's), ``text``, ``label`` (``ClassLabel`` of ``label_names``: the
    majority of the task's completed annotations, ties to the earlier name), ``annotators``
    (how many completed annotations) and ``agreement`` (the fraction of them that chose the
    majority). Cancelled annotations are ignored; a task without a completed annotation is left
    out. A malformed export raises ``ValueError`` naming the task.
    """
    from datasets import ClassLabel, Dataset, Features, Value

    tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(tasks, list):
        raise ValueError(f"{path}: expected a JSON list of tasks, got {type(tasks).__name__}")
    rows: dict[str, list] = {"id": [], "text": [], "label": [], "annotators": [], "agreement": []}
    for task in tasks:
        text = _task_text(task, to_name, path)
        verdict = task_label(task, label_names, from_name=from_name)
        if verdict is None:
            continue
        label, agreement, annotators = verdict
        rows["id"].append(int(task["id"]))
        rows["text"].append(text)
        rows["label"].append(label)
        rows["annotators"].append(annotators)
        rows["agreement"].append(agreement)
    features = Features(
        {
            "id": Value("int64"),
            "text": Value("string"),
            "label": ClassLabel(names=list(label_names)),
            "annotators": Value("int64"),
            "agreement": Value("float64"),
        }
    )
    return Dataset.from_dict(rows, features=features)


def _task_text(task: object, to_name: str, path: str | Path) -> str:
    if not isinstance(task, dict) or "id" not in task or not isinstance(task.get("data"), dict):
        raise ValueError(f"{path}: expected tasks with 'id' and a 'data' object, got {task!r:.120}")
    if to_name not in task["data"]:
        raise ValueError(
            f"{path}: task {task['id']} has no data field {to_name!r} (found "
            f"{sorted(task['data'])})"
        )
    return str(task["data"][to_name])


def task_label(
    task: Mapping, label_names: Sequence[str], *, from_name: str = "topic"
) -> tuple[int, float, int] | None:
    """``(label, agreement, annotators)`` of one Label Studio task, or ``None`` if no completed
    annotation chose a class.

    ``label``: index in ``label_names`` of the class most completed annotations chose (a tie
    goes to the class listed first in ``label_names``); ``agreement``: the fraction of those
    annotations that chose it; ``annotators``: how many there were. Cancelled annotations and
    results of other controls than ``from_name`` are ignored.
    """
    order = {name: index for index, name in enumerate(label_names)}
    choices = _completed_choices(task, from_name, order)
    if not choices:
        return None
    counts = Counter(choices)
    top = max(counts.values())
    label = min((name for name, count in counts.items() if count == top), key=order.__getitem__)
    return order[label], top / len(choices), len(choices)


def _completed_choices(task: Mapping, from_name: str, order: Mapping[str, int]) -> list[str]:
    """The class each completed annotation of ``task`` chose (one per annotation)."""
    chosen = []
    for annotation in task.get("annotations", []):
        if annotation.get("was_cancelled"):
            continue
        for result in annotation.get("result", []):
            if result.get("from_name") != from_name or result.get("type") != "choices":
                continue
            for choice in result.get("value", {}).get("choices", []):
                if choice not in order:
                    raise ValueError(
                        f"task {task.get('id')} has the label {choice!r}, expected one of "
                        f"{list(order)}"
                    )
                chosen.append(choice)
    return chosen


def simulated_annotations(
    labels: Sequence[int],
    label_names: Sequence[str],
    *,
    annotators: int,
    error_rate: float,
    skip_rate: float,
    seed: int,
) -> list[list[str | None]]:
    """What ``annotators`` hurried people would choose for items whose true classes are
    ``labels``: each annotation is a uniformly wrong class with probability ``error_rate`` and
    skipped (``None``) with probability ``skip_rate``."""
    rng = np.random.default_rng(seed)
    classes = len(label_names)
    chosen = []
    for label in labels:
        row = []
        for _ in range(annotators):
            if rng.random() < skip_rate:
                row.append(None)
                continue
            choice = int(label)
            if rng.random() < error_rate:
                choice = int((label + rng.integers(1, classes)) % classes)
            row.append(label_names[choice])
        chosen.append(row)
    return chosen


# --- C23: the iteration loop, with and without the toolchain ---------------------------------


@dataclass
class Step:
    """One timed step of an iteration loop (seconds of wall time, measured here)."""

    name: str
    seconds: float
    how: str


@dataclass
class IterationLoop:
    """The steps from a one-line change to a verified result, and their total."""

    name: str
    steps: list[Step] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return float(sum(step.seconds for step in self.steps))


def timed_command(command: Sequence[str], *, timeout_s: float, **environment: str) -> float:
    """Run ``command`` from the repository root with ``environment`` added; return its wall time
    in seconds. A failure raises ``RuntimeError`` with the end of its output: a loop whose
    result is not verified has not finished."""
    variables = {**os.environ, **config.OFFLINE_ENV, **environment}
    root = config.project_root()
    variables["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(root), variables.get("PYTHONPATH")])
    )
    start = time.perf_counter()
    result = subprocess.run(
        list(command), cwd=root, env=variables, capture_output=True, text=True, timeout=timeout_s
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-2000:]
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{output}")
    return seconds


def focused_test_seconds(test_file: str, timeout_s: float = 300) -> float:
    """Wall time of ``pytest -q <test_file>`` (the test of the module that changed)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file]
    return timed_command(command, timeout_s=timeout_s)


def chapter_run_seconds(
    notebook: str, scratch: Path, *, smoke: bool = True, timeout_s: float = 600
) -> float:
    """Wall time of ``python -m handbook run [--smoke] <notebook>`` into ``scratch`` (its own
    build folder and ledger, so the book's are untouched)."""
    command = [sys.executable, "-m", "handbook", "run", *(["--smoke"] if smoke else []), notebook]
    return timed_command(
        command,
        timeout_s=timeout_s,
        HANDBOOK_BUILD_DIR=str(Path(scratch) / "build"),
        HANDBOOK_LEDGER_DIR=str(Path(scratch) / "ledger"),
    )


def recorded_chapter_intervals(executed: Path | None = None) -> dict[str, tuple[float, float]]:
    """Chapter -> ``(start, end)`` (POSIX seconds) of its execution by papermill, from the
    executed copies of this build (every chapter before this one ran in this build), read through
    the book pipeline's :func:`handbook.book.chapter_intervals`, the function meant for this
    measurement."""
    from handbook.book import chapter_intervals

    return chapter_intervals(executed)


def rebuild_steps(intervals: Mapping[str, tuple[float, float]]) -> list[Step]:
    """The loop without the toolchain as wall time, from each chapter's ``(start, end)``:
    chapters whose executions overlapped (``make book`` runs chapters 0 to 9 two at a time,
    :mod:`handbook.sharing`) make one step, from the first start to the last end; every other
    chapter is a step of its own. The steps add up to the rebuild's wall time, not to the sum of
    the chapters' own times, which would count the time of chapters run side by side twice."""
    merged: list[tuple[list[str], float, float]] = []
    for chapter, (start, end) in sorted(intervals.items(), key=lambda item: item[1]):
        if merged and start < merged[-1][2]:
            chapters, first, last = merged[-1]
            merged[-1] = ([*chapters, chapter], first, max(last, end))
        else:
            merged.append(([chapter], start, end))
    return [
        Step(
            " + ".join(sorted(chapters)),
            end - start,
            "papermill" if len(chapters) == 1 else f"papermill, {len(chapters)} side by side",
        )
        for chapters, start, end in merged
    ]


def chapters_not_executed(
    recorded: Mapping[str, float], chapter: str = "10_toolchain"
) -> list[str]:
    """The book's chapters before ``chapter`` that have no executed copy in this build.

    The loop without the toolchain is a *full* rebuild, so C23 is measured only when none is
    missing: a re-run of some chapters (``handbook verify 10_toolchain``) has none to time.
    """
    return [
        notebook.stem
        for notebook in config.chapter_notebooks()
        if notebook.stem < chapter and notebook.stem not in recorded
    ]


def measure_seconds(action: Callable[[], object]) -> float:
    """Wall time of ``action()`` in seconds."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
