"""Chapter 10's claim (``10_toolchain``): C23, a standardised toolchain shortens the iteration
loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from handbook.claims import Finding
from handbook.i18n import N_

if TYPE_CHECKING:
    from handbook.toolchain import IterationLoop

C23_CLAIM = N_(
    "A start-up cut its model iteration cycle from two weeks to three days with a "
    "standardised toolchain (CI, MLflow tracking, reproducible iterations)"
)
C23_ARTICLE = N_("2 weeks -> 3 days (4.7x)")
#: C23's figure: two weeks of iteration cut to three days.
C23_ARTICLE_RATIO = 14 / 3


def c23(
    *,
    with_toolchain: IterationLoop,
    without_toolchain: IterationLoop,
    missing: Sequence[str],
    nested_chapter_run: bool,
) -> Finding:
    """C23 from the two iteration loops (their steps and seconds) and ``missing``, the chapters
    before 10 with no executed copy in this build: the ratio of the loop without the toolchain
    over the loop with it, measured only when none is missing (no full build to compare with:
    "not measurable here"). Reproduced at the article's 4.7x or more, partly above 1x, not
    reproduced at 1x or less. A one-shot ratio of durations (``timing``)."""
    ratio = None if missing else without_toolchain.seconds / with_toolchain.seconds
    if ratio is None:
        verdict = "not measurable here"
    elif ratio >= C23_ARTICLE_RATIO:
        verdict = "reproduced"
    else:
        verdict = "partly reproduced" if ratio > 1 else "not reproduced"
    if missing:
        measured = N_(
            "Not measured: {missing} not executed in this build, so there is no "
            "full rebuild to compare with (run `make book`)"
        ).format(missing=", ".join(missing))
    else:
        steps = ", ".join(f"{s.name} {s.seconds:.0f} s" for s in with_toolchain.steps)
        skipped = "" if nested_chapter_run else N_("; smoke mode skips the nested chapter run")
        measured = N_(
            "With the toolchain: {steps} (total {with_seconds:.0f} s{skipped}). "
            "Without: re-executing every chapter before this one, {without_seconds:.0f} s "
            "of wall time as papermill timed them in this build (chapters run side by side "
            "counted once), plus a manual comparison counted as 0 s"
        ).format(
            steps=steps,
            with_seconds=with_toolchain.seconds,
            skipped=skipped,
            without_seconds=without_toolchain.seconds,
        )
    return Finding(
        "C23",
        claim=C23_CLAIM,
        article_value=C23_ARTICLE,
        measured=None if ratio is None else round(ratio, 1),
        unit=N_("x shorter loop"),
        verdict=verdict,
        note=N_(
            "proxy on this book: seconds from a one-line change to a verified result. {measured}. "
            "A business's calendar is not measurable here; the ratio depends on the book's size "
            "and on the machine (timings on a shared machine are noisy)"
        ).format(measured=measured),
        timing=True,  # a ratio of durations measured once: a re-run compares its verdict
    )
