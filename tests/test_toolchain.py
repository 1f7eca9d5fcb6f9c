"""Chapter 10's toolchain pieces: Label Studio export/import, ECS logs, Transformers from a
config (no download), line counts and papermill's recorded durations."""

from __future__ import annotations

import json
import logging

import nbformat
import pytest
import torch

from handbook import toolchain

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = ["sports", "weather", "business", "technology"]


def test_a_label_studio_export_written_by_the_chapter_loads_into_a_dataset(tmp_path):
    annotations = [
        ["sports", "sports", "weather"],
        ["business", None, "business"],  # one annotator skipped it
        [],  # nobody labelled it yet
        [None],
        ["technology", "weather"],  # a tie: the class listed first in LABELS wins
    ]
    tasks = toolchain.label_studio_export([f"text {i}" for i in range(5)], annotations)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))

    dataset = toolchain.load_label_studio(path, LABELS)

    assert dataset.features["label"].names == LABELS
    assert dataset["id"] == [1, 2, 5]
    assert dataset["text"] == ["text 0", "text 1", "text 4"]
    assert [LABELS[label] for label in dataset["label"]] == ["sports", "business", "weather"]
    assert dataset["annotators"] == [3, 2, 2]
    assert dataset["agreement"] == pytest.approx([2 / 3, 1.0, 0.5])
    assert tasks[1]["annotations"][1]["was_cancelled"] is True


def test_a_malformed_export_is_refused_naming_the_task(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"tasks": []}))
    with pytest.raises(ValueError, match="expected a JSON list of tasks, got dict"):
        toolchain.load_label_studio(path, LABELS)
    tasks = toolchain.label_studio_export(["a"], [["cooking"]])
    path.write_text(json.dumps(tasks))
    with pytest.raises(ValueError, match="task 1 has the label 'cooking', expected one of"):
        toolchain.load_label_studio(path, LABELS)
    tasks = toolchain.label_studio_export(["a"], [["sports"]], to_name="body")
    path.write_text(json.dumps(tasks))
    with pytest.raises(ValueError, match="task 1 has no data field 'text'"):
        toolchain.load_label_studio(path, LABELS)
    with pytest.raises(ValueError, match="one list of annotations per text, got 1 for 2"):
        toolchain.label_studio_export(["a", "b"], [["sports"]])


def test_simulated_annotators_err_and_skip_at_the_rates_asked():
    labels = [index % 4 for index in range(4000)]
    chosen = toolchain.simulated_annotations(
        labels, LABELS, annotators=1, error_rate=0.2, skip_rate=0.1, seed=0
    )
    flat = [row[0] for row in chosen]
    skipped = sum(choice is None for choice in flat) / len(flat)
    answered = [(choice, label) for choice, label in zip(flat, labels, strict=True) if choice]
    wrong = sum(LABELS[label] != choice for choice, label in answered) / len(answered)
    assert skipped == pytest.approx(0.1, abs=0.02) and wrong == pytest.approx(0.2, abs=0.02)


def test_chapter_5_log_records_come_out_in_elastic_common_schema():
    import ecs_logging

    line = toolchain.log_line(
        logging.getLogger("handbook.serve"),
        toolchain.ecs_handler(None, service="handbook-serve"),
        "request",
        request_id="r-1",
        method="POST",
        path="/predict",
        route="/predict",
        status=200,
        duration_ms=12.5,
        settings={"batch": 8},
    )
    event = toolchain.flatten(json.loads(line))
    assert event["ecs.version"] == ecs_logging.ECS_VERSION
    assert event["http.request.method"] == "POST" and event["url.path"] == "/predict"
    assert event["http.response.status_code"] == 200 and event["http.request.id"] == "r-1"
    assert event["event.duration"] == 12_500_000  # nanoseconds
    assert event["labels.route"] == "/predict" and event["service.name"] == "handbook-serve"
    assert json.loads(event["labels.settings"]) == {"batch": 8}
    assert event["log.level"] == "info" and event["message"] == "request"
    assert "duration_ms" not in event and "status" not in event


def test_a_vit_built_from_a_config_round_trips_through_save_pretrained(tmp_path):
    from transformers import ViTForImageClassification

    model = toolchain.vit_from_config(toolchain.vit_config(hidden=16, layers=1), seed=0).eval()
    images = torch.rand(3, 1, 8, 8)
    logits = toolchain.Logits(model)(images)
    assert logits.shape == (3, 10)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    restored = ViTForImageClassification.from_pretrained(tmp_path).eval()
    assert torch.equal(toolchain.Logits(restored)(images), logits)


def test_the_auto_classes_read_a_saved_folder_as_they_would_a_hub_name(tmp_path):
    from transformers import AutoModel, AutoModelForImageClassification

    model = toolchain.vit_from_config(toolchain.vit_config(hidden=16, layers=1), seed=0).eval()
    model.save_pretrained(tmp_path)
    images = torch.rand(3, 1, 8, 8)
    classifier = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    encoder = AutoModel.from_pretrained(tmp_path, add_pooling_layer=False).eval()
    assert type(classifier) is type(model) and type(encoder).__name__ == "ViTModel"
    with torch.no_grad():
        assert torch.equal(
            classifier(pixel_values=images).logits, model(pixel_values=images).logits
        )
        states = encoder(pixel_values=images).last_hidden_state
        assert torch.equal(states, model.vit(pixel_values=images).last_hidden_state)
    assert states.shape == (3, 17, 16)  # 16 patches of 2x2 and the class token, width 16


def test_digits_become_pixel_values_that_a_batch_reads_as_one_array():
    from datasets import Array3D

    from handbook import datasets

    split = datasets.digits(seed=0)["test"]
    table = toolchain.digits_as_pixel_values(split)
    images, labels = datasets.image_tensors(split)
    # a fixed-shape column: a batch of rows is one array, not a tensor per pixel
    assert isinstance(table.features["pixel_values"], Array3D)
    rows = table[:]
    assert torch.equal(rows["pixel_values"], images) and torch.equal(rows["labels"], labels)
    batch = table[[0, 5, 7]]
    assert torch.equal(batch["pixel_values"], images[[0, 5, 7]])


def test_lines_of_code_skip_the_docstring_comments_and_blank_lines():
    def example(a):
        """A docstring
        over two lines."""
        # a comment
        b = a + 1

        return b

    assert toolchain.lines_of_code(example) == 2


def _executed(path, start, end):
    """An executed copy with papermill's times (ISO, UTC, as papermill writes them)."""
    metadata = {"papermill": {"start_time": start, "end_time": end, "duration": 1.0}}
    nbformat.write(nbformat.v4.new_notebook(metadata=metadata), path)


def test_recorded_chapter_intervals_come_from_papermill_metadata(tmp_path):
    _executed(tmp_path / "00_digits.ipynb", "2026-12-07T12:00:00.000000", "2026-12-07T12:00:12.5")
    being_executed = {"start_time": "2026-12-07T12:01:00", "end_time": None, "duration": None}
    nbformat.write(  # chapter 10 itself, as papermill leaves it while it runs
        nbformat.v4.new_notebook(metadata={"papermill": being_executed}),
        tmp_path / "01_attention.ipynb",
    )
    never_started = {"start_time": None, "end_time": None}
    nbformat.write(
        nbformat.v4.new_notebook(metadata={"papermill": never_started}),
        tmp_path / "02_optimization.ipynb",
    )
    ((start, end),) = toolchain.recorded_chapter_intervals(tmp_path).values()
    assert list(toolchain.recorded_chapter_intervals(tmp_path)) == ["00_digits"]
    assert end - start == 12.5


def test_the_rebuild_counts_chapters_run_side_by_side_once():
    """Three chapters one after another, then two side by side (their intervals overlap), then
    one more: the loop is the rebuild's wall time, not the sum of every chapter's own time."""
    steps = toolchain.rebuild_steps(
        {
            "00_a": (0.0, 10.0),
            "01_b": (10.0, 30.0),
            "06_c": (30.0, 90.0),
            "07_d": (30.5, 70.0),
            "08_e": (70.1, 95.0),  # started when 07_d ended, while 06_c still ran
            "10_f": (95.2, 100.0),
        }
    )
    assert [(step.name, round(step.seconds, 1)) for step in steps] == [
        ("00_a", 10.0),
        ("01_b", 20.0),
        ("06_c + 07_d + 08_e", 65.0),
        ("10_f", 4.8),
    ]
    assert steps[2].how == "papermill, 3 side by side" and steps[0].how == "papermill"
    loop = toolchain.IterationLoop("without", steps)
    assert loop.seconds == pytest.approx(99.8)  # 0 to 100 s, less the gaps between chapters
    assert toolchain.rebuild_steps({}) == []


def test_c23_needs_every_chapter_before_10_executed_in_the_build(tmp_path, monkeypatch):
    """The loop without the toolchain is a full rebuild: with a chapter missing (a re-run of
    some chapters), there is nothing to compare with, whatever the others took."""
    from handbook import config

    chapters = [path.stem for path in config.chapter_notebooks()]
    before = [name for name in chapters if name < "10_toolchain"]
    assert len(before) == 10 and "10_toolchain" in chapters
    assert toolchain.chapters_not_executed(dict.fromkeys(chapters, 30.0)) == []
    assert toolchain.chapters_not_executed(dict.fromkeys(before, 30.0)) == []
    assert toolchain.chapters_not_executed({"00_digits": 20.0}) == before[1:]
    assert toolchain.chapters_not_executed({}) == before
    # where the chapter looks by default: the build's executed copies (as `handbook verify`
    # lays out its re-run), not the build folder itself
    monkeypatch.setenv("HANDBOOK_BUILD_DIR", str(tmp_path))
    times = ("2026-12-07T12:00:00", "2026-12-07T12:00:12.5")
    _executed(tmp_path / "01_attention.ipynb", *times)
    assert toolchain.recorded_chapter_intervals() == {}
    (tmp_path / "site" / "notebooks").mkdir(parents=True)
    _executed(tmp_path / "site" / "notebooks" / "00_digits.ipynb", *times)
    assert list(toolchain.recorded_chapter_intervals()) == ["00_digits"]


def test_a_failing_command_is_reported_with_its_output():
    import sys

    with pytest.raises(RuntimeError, match="failed \\(3\\):\n.*boom"):
        toolchain.timed_command(
            [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], timeout_s=60
        )
    assert toolchain.timed_command([sys.executable, "-c", "pass"], timeout_s=60) > 0
