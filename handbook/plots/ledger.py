"""The claims ledger's summary figure: how many claims of each verdict every chapter recorded.

Drawn in the current language (:func:`handbook.i18n.current_language`): the legend names each
verdict as the ledger page does (:func:`handbook.claims.verdict_word`) and the axis label
goes through ``_()``; in Chinese :func:`handbook.plots.style.pyplot` puts the bundled CJK font in
use, so no glyph is an empty box."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from handbook.i18n import _
from handbook.plots.style import finish, pyplot

#: One colour per verdict, the same hues as the ledger page's coloured words; a verdict not
#: listed here (a newer one) is drawn in grey.
VERDICT_COLORS = {
    "reproduced": "#2e7d32",
    "partly reproduced": "#e0a100",
    "not reproduced": "#c62828",
    "inconclusive on this machine": "#5c7fa3",
    "not measurable here": "#9e9e9e",
}
_OTHER_COLOR = "#757575"


def verdicts_by_chapter(records: Sequence[object], *, title: str | None = None):
    """A horizontal stacked bar per chapter: the number of claims of each verdict it recorded.

    ``records`` are :class:`handbook.claims.ClaimRecord` (only ``chapter`` and ``verdict`` are
    read). Raises ``ValueError`` when there is no record: an empty ledger has nothing to draw.
    """
    if not records:
        raise ValueError("expected at least one claim record to draw, got none")
    counts = Counter((entry.chapter, entry.verdict) for entry in records)
    chapters = sorted({entry.chapter for entry in records}, reverse=True)  # first chapter on top
    verdicts = [verdict for verdict in VERDICT_COLORS if any(v == verdict for _, v in counts)]
    verdicts += sorted({verdict for _, verdict in counts} - set(VERDICT_COLORS))
    from handbook.claims import verdict_word

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 0.26 * len(chapters) + 1.1))
    left = [0] * len(chapters)
    for verdict in verdicts:
        widths = [counts[(chapter, verdict)] for chapter in chapters]
        axis.barh(
            chapters,
            widths,
            left=left,
            color=VERDICT_COLORS.get(verdict, _OTHER_COLOR),
            label=verdict_word(verdict),
            edgecolor="white",
        )
        left = [start + width for start, width in zip(left, widths, strict=True)]
    axis.set_xlabel(_("claims"))
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.spines[["top", "right"]].set_visible(False)
    axis.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False, fontsize=9)
    return finish(figure, axis, title)
