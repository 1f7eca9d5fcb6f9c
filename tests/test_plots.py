import numpy as np
import pytest
from matplotlib.figure import Figure

from handbook import plots
from handbook.train import History


def test_image_grid_accepts_flat_and_channel_images():
    flat = plots.image_grid(np.random.rand(12, 64), list(range(12)), columns=5)
    assert isinstance(flat, Figure) and len(flat.axes) == 15
    chw = plots.image_grid(np.random.rand(3, 1, 8, 8), [1, 2, 3], predictions=[1, 0, 3], columns=3)
    titles = [axis.get_title() for axis in chw.axes]
    assert titles == ["1→1", "2→0", "3→3"]
    assert chw.axes[1].title.get_color() == "crimson"


def test_image_grid_needs_one_label_per_image():
    with pytest.raises(ValueError, match="one label per image, got 3 images, 2 labels"):
        plots.image_grid(np.zeros((3, 8, 8)), [0, 1])


def test_learning_curves_plot_train_and_validation():
    history = History(
        train_loss=[1.0, 0.5],
        train_accuracy=[0.5, 0.8],
        val_loss=[1.1, 0.7],
        val_accuracy=[0.4, 0.7],
    )
    figure = plots.learning_curves({"model": history})
    assert len(figure.axes) == 2
    assert len(figure.axes[0].lines) == 2


def test_confusion_matrix_checks_its_shape():
    figure = plots.confusion_matrix(np.eye(3, dtype=int) * 5, ["a", "b", "c"])
    assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="3x3 matrix for 3 classes, got \\(2, 2\\)"):
        plots.confusion_matrix(np.eye(2), ["a", "b", "c"])


def test_bar_comparison_labels_bars():
    figure = plots.bar_comparison(
        {"a": 0.9, "b": 0.95}, ylabel="accuracy", reference=0.97, reference_label="target"
    )
    assert len(figure.axes[0].patches) == 2
