"""Chapter 8's claim (``08_multimodal``): C21, a multimodal search system's click-through rate."""

from __future__ import annotations

from collections.abc import Mapping

from handbook.claims import Finding
from handbook.i18n import N_

C21_CLAIM = N_(
    "A multimodal search system (InfoNCE alignment, cross-modal attention) raised "
    "click-through rate by 22% and average dwell time by 14 s"
)
C21_ARTICLE = N_("CTR +22%; dwell time +14 s")


def c21(
    *,
    queries: int,
    keyword_recall: Mapping[int, float],
    dual_encoder_recall: Mapping[int, float],
    relative_gain: Mapping[int, float],
) -> Finding:
    """C21, "not measurable here" whatever was measured: an online business metric of a real
    search system with real users. The note gives the nearest proxy, a simulated CTR: recall at
    1 and at 5 (fractions, by ``k``) of keyword search and of the contrastive dual encoder over
    ``queries`` synthetic caption queries, and the dual encoder's relative gain (percent)."""
    relative = relative_gain
    return Finding(
        "C21",
        claim=C21_CLAIM,
        article_value=C21_ARTICLE,
        measured=None,
        unit=N_("% relative CTR"),
        verdict="not measurable here",
        note=N_(
            "an online business metric of a real search system with real users; nearest proxy: "
            "simulated CTR (the user clicks if one of the top k results matches the caption's "
            "digit, weight and slant) on {queries} synthetic caption queries over 360 digits: "
            "contrastive dual encoder vs keyword search on digit tags, top 1 "
            "{keyword_1:.1%} -> {dual_1:.1%} ({relative_1:+.0f}%), "
            "top 5 {keyword_5:.1%} -> {dual_5:.1%} "
            "({relative_5:+.0f}%); the gain is set by how much the keyword baseline cannot see; "
            "dwell time has no proxy"
        ).format(
            queries=queries,
            keyword_1=keyword_recall[1],
            dual_1=dual_encoder_recall[1],
            relative_1=relative[1],
            keyword_5=keyword_recall[5],
            dual_5=dual_encoder_recall[5],
            relative_5=relative[5],
        ),
    )
