"""The claims ledger as a web page: one narrow row per claim, details that unfold, a summary figure.

:func:`handbook.claims.render_markdown` is the terminal's table (``handbook ledger``); this module
renders the same records for the book: claim id, a short form of the claim, the article's figure
beside the measured value, and the verdict as a coloured word. The long claim, the note, the
chapter that measured it and the machine unfold on demand (``<details>``). A figure of verdicts
per chapter (:func:`handbook.plots.verdicts_by_chapter`) heads the page. Everything comes from the
records of the last run; nothing is typed by hand.

Records may carry attributes added after this module was written (a timing ``interval``); they
are read with ``getattr`` and a default, so an older or newer record renders either way.

The page is written in the current language (:func:`handbook.i18n.current_language`; the book
writes the Chinese edition's inside ``i18n.language_of("zh_CN")``). Records stay English: the
page's own words go through ``_()``, each record's text through
:func:`handbook.i18n.translate_text` (its ``N_`` message in ``handbook/verdicts``, the numbers
kept), and a verdict through :func:`handbook.claims.verdict_word`; the colour stays keyed by the
English verdict.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

from handbook import claims, i18n
from handbook.i18n import _

#: How many characters of a claim the row shows before the rest moves into the details.
SHORT_CLAIM_CHARS = 110
#: The file name of the summary figure, written beside the page.
FIGURE_NAME = "ledger_verdicts.svg"

#: Verdict -> the pydata-sphinx-theme colour variable its word is written in (readable in light
#: and dark mode, the theme switches the variable); a verdict not listed is muted.
_VERDICT_COLOR_VARIABLES = {
    "reproduced": "--pst-color-success",
    "partly reproduced": "--pst-color-warning",
    "not reproduced": "--pst-color-danger",
    "inconclusive on this machine": "--pst-color-info",
    "not measurable here": "--pst-color-text-muted",
}

_STYLE = """<style>
.claims-ledger { width: 100%; table-layout: fixed; border-collapse: collapse; font-size: 0.9rem; }
.claims-ledger th, .claims-ledger td { vertical-align: top; padding: 0.4rem 0.5rem;
  border-bottom: 1px solid var(--pst-color-border); overflow-wrap: anywhere; }
.claims-ledger th { text-align: left; }
.claims-ledger .ledger-id { width: 4.5rem; }
.claims-ledger .ledger-article { width: 22%; }
.claims-ledger .ledger-measured { width: 18%; }
.claims-ledger .ledger-verdict { width: 8.5rem; }
.claims-ledger .ledger-unit { display: block; color: var(--pst-color-text-muted);
  font-size: 0.8rem; }
.claims-ledger details { margin-top: 0.3rem; color: var(--pst-color-text-muted); }
.claims-ledger details p { margin: 0.3rem 0; color: var(--pst-color-text-base); }
.claims-ledger .verdict { font-weight: 700; }
@media (max-width: 700px) {
  .claims-ledger, .claims-ledger tbody, .claims-ledger tr, .claims-ledger td { display: block;
    width: 100% !important; }
  .claims-ledger thead { display: none; }
  .claims-ledger tr { border-bottom: 2px solid var(--pst-color-border); padding: 0.3rem 0; }
  .claims-ledger td { border: none; padding: 0.15rem 0.3rem; }
  .claims-ledger td[data-label]::before { content: attr(data-label) ": ";
    color: var(--pst-color-text-muted); }
}
</style>"""


def short_claim(text: str, limit: int = SHORT_CLAIM_CHARS) -> str:
    """The claim's first clause (up to ``;`` or the first sentence, or a Chinese ``；`` or
    ``。``), cut at ``limit`` characters."""
    first = re.split(r";\s|(?<=[.!?])\s|(?<=[；。])", text.strip(), maxsplit=1)[0]
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def verdict_html(verdict: str) -> str:
    """The verdict as a coloured, bold word (``<span class="verdict ...">``) in the current
    language; its class and colour come from the English verdict."""
    variable = _VERDICT_COLOR_VARIABLES.get(verdict, "--pst-color-text-muted")
    slug = re.sub(r"[^a-z]+", "-", verdict.lower()).strip("-")
    return (
        f'<span class="verdict verdict-{slug}" style="color: var({variable})">'
        f"{html.escape(claims.verdict_word(verdict))}</span>"
    )


def measured_html(entry: claims.ClaimRecord) -> str:
    """The measured value (4 significant digits), its interval when the record has one, its unit."""
    if entry.measured is None:
        return "—"
    value = f"{entry.measured:.4g}"
    interval = getattr(entry, "interval", None)
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        value += f" ({interval[0]:.3g}–{interval[1]:.3g})"
    unit = (
        f'<span class="ledger-unit">{html.escape(i18n.translate_text(entry.unit))}</span>'
        if entry.unit
        else ""
    )
    return html.escape(value) + unit


def _list_separator() -> str:
    # Translators: between the items of a list (the machine's parts, the tally of verdicts).
    return _(", ")


def mode_text(mode: str) -> str:
    """``smoke`` or ``full`` (a record's mode) as the page names it."""
    return {"smoke": _("smoke"), "full": _("full")}.get(mode, mode)


def machine_text(machine: dict, *, unknown: bool = True) -> str:
    """The CPU and its cores, the GPU, torch's and Python's versions of one record's machine
    (``unknown``: a CPU or core count the record lacks is named so, else shown as ``None``, as
    the terminal's ledger does)."""
    cpu = _("{cpu} ({cores} cores)").format(
        cpu=machine.get("cpu", _("unknown CPU") if unknown else None),
        cores=machine.get("cores", "?" if unknown else None),
    )
    return _list_separator().join(
        [
            cpu,
            machine.get("gpu") or _("no GPU"),
            f"torch {machine.get('torch')}",
            f"Python {machine.get('python')}",
        ]
    )


def hardware_text(entry: claims.ClaimRecord) -> str:
    """One line naming the machine, mode, seed and time of the measurement."""
    parts = [
        machine_text(entry.hardware or {}),
        {"smoke": _("smoke mode"), "full": _("full mode")}.get(entry.mode, f"{entry.mode} mode"),
    ]
    if entry.seed is not None:
        parts.append(_("seed {seed}").format(seed=entry.seed))
    if entry.recorded_at:
        parts.append(_("recorded {time}").format(time=entry.recorded_at))
    return _list_separator().join(parts)


def provenance(records: Sequence[claims.ClaimRecord]) -> str:
    """Where the records were measured and how many of each verdict, in the current language
    (in English the terminal ledger's sentence, :func:`handbook.claims._provenance`)."""
    if not records:
        return _("No claim has been measured in this build.")
    machines = sorted({json.dumps(entry.hardware, sort_keys=True) for entry in records})
    modes = "/".join(mode_text(mode) for mode in sorted({entry.mode for entry in records}))
    counts = {
        verdict: sum(entry.verdict == verdict for entry in records) for verdict in claims.VERDICTS
    }
    tally = _list_separator().join(
        _tally(verdict, count) for verdict, count in counts.items() if count
    )
    return _(
        "Measured in {modes} mode on: {machines}. {recorded} of {claims} claims recorded: {tally}."
    ).format(
        modes=modes,
        machines=_("; ").join(
            machine_text(json.loads(machine), unknown=False) for machine in machines
        ),
        recorded=len(records),
        claims=len(claims.CLAIM_IDS),
        tally=tally,
    )


def _tally(verdict: str, count: int) -> str:
    """``3 reproduced``: one message per verdict, so that a translation can put the number
    where its language does."""
    messages = {
        "reproduced": _("{count} reproduced"),
        "partly reproduced": _("{count} partly reproduced"),
        "not reproduced": _("{count} not reproduced"),
        "inconclusive on this machine": _("{count} inconclusive on this machine"),
        "not measurable here": _("{count} not measurable here"),
    }
    return messages.get(verdict, f"{{count}} {verdict}").format(count=count)


def _row(entry: claims.ClaimRecord, chapter_href: str) -> str:
    chapter = html.escape(entry.chapter)
    claim = i18n.translate_text(entry.claim)
    measured_in = _("Measured in {chapter} on {machine}.").format(
        chapter=f'<a href="{chapter_href}">{chapter}</a>',
        machine=html.escape(hardware_text(entry)),
    )
    summary = _("note, chapter and machine")
    details = (
        f"<details><summary>{html.escape(summary)}</summary>"
        f"<p>{html.escape(claim)}</p>"
        f"<p>{html.escape(i18n.translate_text(entry.note))}</p>"
        f"<p>{measured_in}</p>"
        "</details>"
    )
    labels = _labels()
    return (
        f'<tr id="ledger-{entry.claim_id.lower()}">'
        f'<td data-label="{labels["claim"]}"><strong>{entry.claim_id}</strong></td>'
        f'<td data-label="{labels["says"]}">{html.escape(short_claim(claim))}{details}</td>'
        f'<td data-label="{labels["article"]}">'
        f"{html.escape(i18n.translate_text(entry.article_value))}</td>"
        f'<td data-label="{labels["measured"]}">{measured_html(entry)}</td>'
        f'<td data-label="{labels["verdict"]}">{verdict_html(entry.verdict)}</td>'
        "</tr>"
    )


def _labels() -> dict[str, str]:
    """The table's column names in the current language, escaped for HTML (also the labels a
    narrow screen shows before each cell)."""
    names = {
        "claim": _("claim"),
        "says": _("the article says"),
        "article": _("article"),
        "measured": _("measured here"),
        "verdict": _("verdict"),
    }
    return {key: html.escape(name) for key, name in names.items()}


def _missing_row(claim_id: str) -> str:
    labels, missing = _labels(), _("no chapter records it yet")
    return (
        f'<tr id="ledger-{claim_id.lower()}">'
        f'<td data-label="{labels["claim"]}"><strong>{claim_id}</strong></td>'
        f'<td data-label="{labels["says"]}">{html.escape(missing)}</td>'
        "<td></td><td></td>"
        f'<td data-label="{labels["verdict"]}">{verdict_html("not yet measured")}</td></tr>'
    )


def render_table(records: Sequence[claims.ClaimRecord], *, chapter_link_prefix: str) -> str:
    """The ledger as one HTML block (no blank line inside, so MyST keeps it whole).

    ``chapter_link_prefix`` + ``<chapter>.html`` is each chapter's address from the page.
    """
    by_id = {entry.claim_id: entry for entry in records}
    rows = [
        _row(by_id[claim_id], f"{chapter_link_prefix}{by_id[claim_id].chapter}.html")
        if claim_id in by_id
        else _missing_row(claim_id)
        for claim_id in claims.CLAIM_IDS
    ]
    labels = _labels()
    header = (
        '<table class="claims-ledger"><thead><tr>'
        f'<th class="ledger-id">{labels["claim"]}</th><th>{labels["says"]}</th>'
        f'<th class="ledger-article">{labels["article"]}</th>'
        f'<th class="ledger-measured">{labels["measured"]}</th>'
        f'<th class="ledger-verdict">{labels["verdict"]}</th></tr></thead><tbody>'
    )
    return "\n".join([_STYLE, header, *rows, "</tbody></table>"])


def render_page(
    records: Sequence[claims.ClaimRecord],
    *,
    figure: str | None = FIGURE_NAME,
    chapter_link_prefix: str = "../notebooks/",
) -> str:
    """The ledger page's generated part (MyST): figure, table, then where it was measured.

    ``figure`` is the summary figure's path relative to the page (``None``: no figure, as when
    nothing was recorded).
    """
    parts = []
    if figure and records:
        alt = _("Number of claims per verdict for every chapter")
        caption = _("Verdicts per chapter in this build (from the same records as the table).")
        parts.append(f"```{{figure}} {figure}\n:alt: {alt}\n:width: 85%\n\n{caption}\n```")
    parts.append(render_table(records, chapter_link_prefix=chapter_link_prefix))
    parts.append(provenance(records))
    return "\n\n".join(parts) + "\n"


def write_page(records: Sequence[claims.ClaimRecord], include: Path) -> Path:
    """Write the page's generated part to ``include``, its figure beside it; return ``include``.

    A file whose content would not change is left alone, so that an incremental site build
    (nothing re-executed) does not rebuild the ledger page."""
    figure = None
    if records:
        import io

        import matplotlib

        from handbook import plots
        from handbook.plots.style import pyplot

        drawn = plots.verdicts_by_chapter(records)
        image = io.BytesIO()
        with matplotlib.rc_context({"svg.hashsalt": "handbook-ledger"}):  # stable element ids
            drawn.savefig(
                image,
                format=Path(FIGURE_NAME).suffix[1:],
                bbox_inches="tight",
                facecolor="white",
                metadata={"Date": None},  # the same records draw the same file
            )
        pyplot().close(drawn)
        _write_if_changed(include.parent / FIGURE_NAME, image.getvalue())
        figure = FIGURE_NAME
    _write_if_changed(include, render_page(records, figure=figure).encode("utf-8"))
    return include


def _write_if_changed(path: Path, content: bytes) -> None:
    if not path.is_file() or path.read_bytes() != content:
        path.write_bytes(content)
