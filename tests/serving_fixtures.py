"""Shared fixtures of the chapter-5 serving tests (loaded with ``pytest_plugins``).

One small model folder is built per test session (a few seconds); the model as it was in memory
before it was written is kept, so a test can compare what ``load_artifact`` reads back with it.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from torch import nn

SMALL = {"d_model": 32, "num_heads": 2, "d_ff": 64, "num_layers": 1}


@dataclass
class Built:
    directory: Path
    trained: nn.Module  # the network build_artifact trained, before anything was written
    test_texts: list[str]
    test_labels: list[int]


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    from handbook.serving import model as serve_model

    captured = {}
    train_classifier = serve_model.train_classifier

    def capture(*args, **kwargs):
        captured["model"] = train_classifier(*args, **kwargs)
        return captured["model"]

    directory = tmp_path_factory.mktemp("serve") / "topics"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HANDBOOK_PROGRESS", "0")
        patch.setattr(serve_model, "train_classifier", capture)
        serve_model.build_artifact(directory, train_size=300, test_size=100, epochs=2, cfg=SMALL)
    _, _, texts, labels, _ = serve_model.topic_corpus(300, 100, seed=0)
    return Built(directory, captured["model"], list(texts), list(labels))


@pytest.fixture(scope="session")
def model_dir(built) -> Path:
    return built.directory


@pytest.fixture(scope="session")
def artifact(model_dir):
    from handbook.serving.artifact import load_artifact

    return load_artifact(model_dir)


@pytest.fixture
def json_log():
    """The server's logger (named ``handbook.serve``, the service's name in its log lines)
    writing JSON lines into a StringIO; restored afterwards."""
    from handbook.serving.app import LOGGER, configure_json_logging

    saved = LOGGER.handlers[:], LOGGER.level, LOGGER.propagate, logging.Formatter.converter
    stream = io.StringIO()
    configure_json_logging("INFO", stream)
    yield stream
    LOGGER.handlers[:], level, LOGGER.propagate, logging.Formatter.converter = saved
    LOGGER.setLevel(level)
