"""Chapter 0's claim (``00_digits``): C24, start with handwritten digits."""

from __future__ import annotations

from handbook.claims import Finding
from handbook.i18n import N_

C24_CLAIM = N_("Start with MNIST handwritten digits: a simple task a first model learns quickly")
C24_ARTICLE = N_("advice, no figure")
#: "Learns": the CNN classifies at least 97 of 100 unseen digits, what a working digit
#: classifier is expected to reach (the note prints logistic regression's accuracy beside it).
C24_LEARNED_ACCURACY = 0.97
#: "Quickly": trained within a minute on the reader's CPU, a wait that keeps a learner in the
#: notebook.
C24_QUICK_SECONDS = 60.0


def c24(
    *,
    cnn_accuracy: float,
    cnn_seconds: float,
    parameters: int,
    threads: int,
    baseline_accuracy: float,
) -> Finding:
    """C24 from the SmallCNN's test accuracy (a fraction), its training time in seconds, its
    parameter count, the CPU threads it used and the logistic-regression baseline's accuracy."""
    quick_and_accurate = cnn_accuracy >= C24_LEARNED_ACCURACY and cnn_seconds <= C24_QUICK_SECONDS
    return Finding(
        "C24",
        claim=C24_CLAIM,
        article_value=C24_ARTICLE,
        measured=100 * cnn_accuracy,
        unit=N_("% test accuracy"),
        verdict="reproduced" if quick_and_accurate else "partly reproduced",
        note=N_(
            "8x8 scikit-learn digits stand in for MNIST (no download); "
            "a {parameters:,}-parameter CNN trained in {seconds:.1f} s on {threads} CPU threads; "
            "logistic regression {baseline_percent:.1f}%"
        ).format(
            parameters=parameters,
            seconds=cnn_seconds,
            threads=threads,
            baseline_percent=100 * baseline_accuracy,
        ),
    )
