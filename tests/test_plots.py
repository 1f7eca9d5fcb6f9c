import numpy as np
import pytest
from matplotlib.figure import Figure

from handbook import plots
from handbook.train import History


@pytest.fixture(autouse=True)
def close_figures():
    """Every test draws figures; close them so that pyplot does not keep dozens alive."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


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


def _load_rows():
    return [
        {"server": server, "clients": clients, "req/s": rate, "p99 ms": p99}
        for server, scale in (("naive", 1.0), ("batched", 4.0))
        for clients, rate, p99 in ((1, 100.0 * scale, 10.0), (64, 110.0 * scale, 600.0 / scale))
    ]


def test_throughput_and_latency_draws_one_line_per_server_in_each_panel():
    figure = plots.throughput_and_latency(_load_rows())
    throughput, latency = figure.axes
    assert [line.get_label() for line in throughput.lines] == ["naive", "batched"]
    assert list(throughput.lines[1].get_ydata()) == [400.0, 440.0]
    assert latency.get_yscale() == "log" and len(latency.lines) == 2
    with pytest.raises(ValueError, match="at least one load-test row"):
        plots.throughput_and_latency([])


def test_latency_distributions_is_a_cdf_ending_at_one():
    figure = plots.latency_distributions({"a": np.array([3.0, 1.0, 2.0]), "b": np.arange(1, 101)})
    cdf = figure.axes[0].lines[0]
    assert list(cdf.get_xdata()) == [1.0, 2.0, 3.0] and cdf.get_ydata()[-1] == 1.0
    with pytest.raises(ValueError, match="no latencies for 'c'"):
        plots.latency_distributions({"c": np.array([])})


def test_serving_dashboard_has_the_four_grafana_panels():
    series = {name: np.arange(3.0) for name in ("time", "qps", "p50_ms", "p99_ms", "error_rate")}
    with pytest.raises(ValueError, match="batch_size"):
        plots.serving_dashboard(series)
    figure = plots.serving_dashboard({**series, "batch_size": np.ones(3)})
    assert [axis.get_title() for axis in figure.axes] == [
        "QPS",
        "latency (from histogram buckets)",
        "error rate",
        "batch size",
    ]


def test_autoscaling_plots_traffic_and_each_fleets_capacity():
    traffic = np.array([10.0, 50.0, 100.0])
    figure = plots.autoscaling(traffic, {"static": np.array([3, 3, 3])}, capacity_rps=40.0)
    axis = figure.axes[0]
    assert list(axis.lines[1].get_ydata()) == [120.0, 120.0, 120.0]
    assert figure.axes[1].get_ylabel() == "replicas"
