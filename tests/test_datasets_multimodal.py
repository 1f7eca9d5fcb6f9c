"""The chapter-8 generator: paired digits and captions whose attributes are measured, balanced
and named in the caption."""

import numpy as np
import pytest

from handbook import datasets
from handbook.datasets import captions


@pytest.fixture(scope="module")
def data():
    return datasets.digit_captions(seed=0)


def test_splits_columns_and_sizes(data):
    assert set(data) == {"train", "test"}
    assert len(data["train"]) + len(data["test"]) == 1797
    assert data["train"].column_names == [
        "image",
        "label",
        "weight",
        "slant",
        "ink",
        "slant_value",
        "caption",
    ]


def test_the_caption_names_the_digit_weight_and_slant(data):
    words = {"weight": captions._WEIGHT_WORDS, "slant": ("left", "right")}
    for row in data["test"].select(range(100)):
        caption = row["caption"].split()
        digit = row["label"]
        assert str(digit) in caption or captions._DIGIT_WORDS[digit] in caption
        assert any(word in caption for word in words["weight"][row["weight"]])
        assert not any(word in caption for word in words["weight"][1 - row["weight"]])
        assert words["slant"][row["slant"]] in caption
        assert words["slant"][1 - row["slant"]] not in caption


def test_attributes_are_balanced_within_each_digit(data):
    labels = np.concatenate([data[name]["label"] for name in data])
    for column in ("weight", "slant"):
        values = np.concatenate([data[name][column] for name in data])
        for digit in range(10):
            assert abs(values[labels == digit].mean() - 0.5) < 0.02


def test_attributes_follow_the_measurements(data):
    split = data["train"]
    labels, ink, weight = (np.asarray(split[c]) for c in ("label", "ink", "weight"))
    for digit in range(10):
        mine = labels == digit
        assert ink[mine & (weight == 1)].min() >= ink[mine & (weight == 0)].max()
    slant, slant_value = np.asarray(split["slant"]), np.asarray(split["slant_value"])
    for digit in range(10):
        mine = labels == digit
        assert slant_value[mine & (slant == 1)].min() >= slant_value[mine & (slant == 0)].max()


def test_stroke_measures_on_drawn_images():
    upright = np.zeros((8, 8))
    upright[:, 3] = 16
    leaning_right = np.zeros((8, 8))
    for row in range(8):
        leaning_right[row, 7 - row] = 16
    ink, slant = datasets.digit_stroke_measures(np.stack([upright, leaning_right]).reshape(2, 64))
    assert ink.tolist() == [128, 128]
    assert slant[0] == pytest.approx(0.0)
    assert slant[1] == pytest.approx(1.0)
    _, mirrored = datasets.digit_stroke_measures(leaning_right[:, ::-1].reshape(1, 64))
    assert mirrored[0] == pytest.approx(-1.0)


def test_seeded_and_varied(data):
    again = datasets.digit_captions(seed=0)
    assert again["test"]["caption"] == data["test"]["caption"]
    other = datasets.digit_captions(seed=1)
    assert other["test"]["caption"] != data["test"]["caption"]
    assert len({caption.split()[0] for caption in data["train"]["caption"]}) >= 4
