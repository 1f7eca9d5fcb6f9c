"""Every figure the chapters draw, so that notebooks stay narrative.

Each function returns a matplotlib ``Figure``; matplotlib is imported when a figure is drawn,
never when ``handbook`` is imported.

One module per chapter's figures, named by the chapter's topic (``attention``, ``optimization``,
``data``, ...), plus ``common`` (figures several chapters draw) and ``style`` (shared); the
functions are re-exported, so ``handbook.plots.learning_curves`` works as before. A module's top
level only defines names (a test checks it), so that the execution cache of :mod:`handbook.cache`
can tell which chapter uses which figures from the imports alone.
"""

from handbook.plots.attention import (
    attention_heatmap,
    layer_gradient_norms,
    loss_curves,
    scaling_plot,
)
from handbook.plots.cases import (
    accuracy_by_class,
    detection_curves,
    diagnosis_examples,
    event_timelines,
    gain_by_mix,
)
from handbook.plots.common import bar_comparison, confusion_matrix, image_grid, learning_curves
from handbook.plots.compression import compression_tradeoff, onnx_byte_breakdown, pareto_front
from handbook.plots.continual import (
    accuracy_through_stream,
    compute_and_accuracy,
    compute_savings,
    stability_plasticity,
)
from handbook.plots.data import detection_quality_bars, padding_per_batch
from handbook.plots.ethics import (
    accuracy_under_attack,
    feature_attributions,
    group_selection_rates,
    saliency_maps,
)
from handbook.plots.ledger import verdicts_by_chapter
from handbook.plots.multimodal import retrieval_results, similarity_matrices
from handbook.plots.optimization import learning_rate_schedules, seed_comparison
from handbook.plots.serving import (
    autoscaling,
    latency_distributions,
    open_loop_latency,
    serving_dashboard,
    throughput_and_latency,
)
from handbook.plots.toolchain import iteration_loops, side_by_side, sweep_comparison

__all__ = [
    "accuracy_by_class",
    "accuracy_through_stream",
    "accuracy_under_attack",
    "attention_heatmap",
    "autoscaling",
    "bar_comparison",
    "compression_tradeoff",
    "compute_and_accuracy",
    "compute_savings",
    "confusion_matrix",
    "detection_curves",
    "detection_quality_bars",
    "diagnosis_examples",
    "event_timelines",
    "feature_attributions",
    "gain_by_mix",
    "group_selection_rates",
    "image_grid",
    "iteration_loops",
    "latency_distributions",
    "layer_gradient_norms",
    "learning_curves",
    "learning_rate_schedules",
    "loss_curves",
    "onnx_byte_breakdown",
    "open_loop_latency",
    "padding_per_batch",
    "pareto_front",
    "retrieval_results",
    "saliency_maps",
    "scaling_plot",
    "seed_comparison",
    "serving_dashboard",
    "side_by_side",
    "similarity_matrices",
    "stability_plasticity",
    "sweep_comparison",
    "throughput_and_latency",
    "verdicts_by_chapter",
]
