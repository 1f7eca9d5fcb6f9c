import numpy as np
import pytest
import torch

from handbook import datasets, digits


@pytest.mark.parametrize("side", [8, 28])
@pytest.mark.parametrize("model_class", [digits.MLP, digits.SmallCNN])
def test_models_map_images_to_ten_logits(model_class, side):
    model = model_class(side=side).eval()
    assert model(torch.rand(5, 1, side, side)).shape == (5, 10)


def test_cnn_explains_bad_shapes():
    with pytest.raises(ValueError, match="divisible by 4, got 10"):
        digits.SmallCNN(side=10)
    with pytest.raises(ValueError, match=r"\(batch, 1, side, side\), got \(5, 64\)"):
        digits.SmallCNN()(torch.rand(5, 64))


def test_logistic_baseline_beats_chance_by_far():
    data = datasets.digits(seed=0)
    model = digits.logistic_regression_baseline(
        np.asarray(data["train"]["image"]), np.asarray(data["train"]["label"])
    )
    accuracy = (
        model.predict(np.asarray(data["test"]["image"])) == np.asarray(data["test"]["label"])
    ).mean()
    assert accuracy > 0.93


def test_benchmarks_compare_three_models_against_the_baseline():
    rows = digits.benchmarks(smoke=True)
    assert [row.variant for row in rows] == ["logistic regression (sklearn)", "MLP", "SmallCNN"]
    assert rows[0].ratio == pytest.approx(1.0)
    assert all(row.median_ms > 0 for row in rows)
    assert "parameters" in rows[2].detail
