"""Chapter 0 - Start here: handwritten digits.

Three models of increasing capacity for the 8x8 digits of :func:`handbook.datasets.digits`
(or 28x28 MNIST): a logistic-regression baseline from scikit-learn, a multilayer perceptron and
a small convolutional network in torch (:class:`~handbook.models.cnn.SmallCNN`, from the model
library because chapters 4 and 9 use it too), plus the chapter's benchmark for ``make bench``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from handbook import bench
from handbook.models import SmallCNN


class MLP(nn.Module):
    """A two-hidden-layer perceptron: ``(batch, 1, side, side) -> (batch, classes)`` logits."""

    def __init__(self, side: int = 8, hidden: int = 128, classes: int = 10, dropout: float = 0.1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(side * side, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def logistic_regression_baseline(
    train_images: np.ndarray, train_labels: np.ndarray, seed: int = 0, max_iter: int = 2000
):
    """A fitted scikit-learn pipeline (standardise, multinomial logistic regression).

    ``train_images``: ``(n, pixels)``; ``train_labels``: ``(n,)``. Fitted on one BLAS/OpenMP
    thread: on a problem this small, threads waiting for each other cost far more than they
    bring (on two shared cores a fit took seconds with two threads, a tenth of a second with one,
    to the same weights).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    model = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed)
    )
    with threadpool_limits(limits=1):
        return model.fit(train_images, train_labels)


def benchmarks(smoke: bool = False) -> list[bench.Measurement]:
    """Inference time of the three chapter-0 models on one batch of 256 digits, side by side."""
    from handbook.datasets import digits, image_tensors

    data = digits()
    images, labels = image_tensors(data["train"])
    batch = images[:256]
    flat = batch.reshape(len(batch), -1).numpy() * 16.0
    baseline = logistic_regression_baseline(
        images.reshape(len(images), -1).numpy() * 16, labels.numpy()
    )
    mlp, cnn = MLP().eval(), SmallCNN().eval()
    repeats = 3 if smoke else 20

    def torch_inference(model):
        def run():
            with torch.inference_mode():
                model(batch)

        return run

    return bench.compare(
        "ch00 digits: inference, 256 images",
        {
            "logistic regression (sklearn)": lambda: baseline.predict(flat),
            "MLP": torch_inference(mlp),
            "SmallCNN": torch_inference(cnn),
        },
        baseline="logistic regression (sklearn)",
        repeats=repeats,
        budget_s=0.5 if smoke else None,  # smoke: the code runs; the interval is not read
        details={
            "MLP": f"{bench.count_parameters(mlp):,} parameters",
            "SmallCNN": f"{bench.count_parameters(cnn):,} parameters",
        },
    )
