import numpy as np
import pytest
import torch

from handbook import datasets


@pytest.fixture(scope="module")
def digits():
    return datasets.digits(seed=0)


def test_digits_has_every_image_once(digits):
    assert len(digits["train"]) + len(digits["test"]) == 1797
    assert len(digits["test"]) == 360
    assert digits["train"].features["label"].names == datasets.DIGIT_CLASSES


def test_split_is_stratified(digits):
    train = np.bincount(digits["train"]["label"], minlength=10) / len(digits["train"])
    test = np.bincount(digits["test"]["label"], minlength=10) / len(digits["test"])
    assert np.abs(train - test).max() < 0.01


def test_split_depends_only_on_the_seed(digits):
    again = datasets.digits(seed=0)
    other = datasets.digits(seed=1)
    assert again["test"]["label"] == digits["test"]["label"]
    assert other["test"]["image"] != digits["test"]["image"]


def test_bad_test_size_is_rejected():
    with pytest.raises(ValueError, match="test_size must be a fraction"):
        datasets.digits(test_size=1.5)


def test_image_tensors(digits):
    images, labels = datasets.image_tensors(digits["test"])
    assert images.shape == (360, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (360,) and labels.dtype == torch.int64
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0


def test_mnist_without_files_names_the_offline_alternative(tmp_path):
    with pytest.raises(datasets.OfflineDataError, match=r"handbook\.datasets\.digits\(\)"):
        datasets.mnist(tmp_path, download=False)


def test_load_by_name(tmp_path):
    assert len(datasets.load("digits")["test"]) == 360
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        datasets.load("imagenet")


def test_number_words_split_never_shares_a_number():
    data = datasets.number_words(max_number=500, test_size=0.2, seed=0)
    train, test = set(data["train"]["number"]), set(data["test"]["number"])
    assert not train & test
    assert train | test == set(range(1, 501))
    row = (
        next(row for row in data["train"] if row["number"] == 21)
        if 21 in train
        else next(row for row in data["test"] if row["number"] == 21)
    )
    assert row["english"] == "twenty-one" and row["german"] == "einundzwanzig"


@pytest.mark.parametrize("max_number", [5, 1_000_000])
def test_number_words_rejects_sizes_out_of_range(max_number):
    with pytest.raises(ValueError, match="max_number must be"):
        datasets.number_words(max_number=max_number)


def test_wmt14_names_the_offline_alternative():
    with pytest.raises(datasets.OfflineDataError, match=r"number_words\(\)"):
        datasets.load("wmt14")
