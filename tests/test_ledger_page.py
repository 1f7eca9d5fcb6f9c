"""The ledger page of the book: one narrow row per claim, coloured verdicts, details on demand."""

import dataclasses
from html.parser import HTMLParser

import pytest

from handbook import claims, ledger_page, plots


def _record(claim_id="C11", **overrides):
    arguments = dict(
        claim="INT8 quantization makes inference 3x faster; the article measures it on a GPU "
        "server with batch 64 and reports the median of many runs",
        article_value="3x",
        measured=2.4,
        unit="x",
        verdict="partly reproduced",
        note="measured on a linear model <b>not</b> a transformer",
        chapter="04_compression",
        seed=0,
    )
    arguments.update(overrides)
    return claims.record(claim_id, **arguments)


class _Cells(HTMLParser):
    """Collects every table row's cells as text, and every <details> element's text."""

    def __init__(self):
        super().__init__()
        self.rows, self.details, self._in_details = [], [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")
        elif tag == "details":
            self._in_details += 1
            self.details.append("")

    def handle_endtag(self, tag):
        if tag == "details":
            self._in_details -= 1

    def handle_data(self, data):
        if self.rows and self.rows[-1] and not self._in_details:
            self.rows[-1][-1] += data
        if self._in_details:
            self.details[-1] += data


def _parse(page: str) -> _Cells:
    parser = _Cells()
    parser.feed(page)
    return parser


def test_one_row_of_five_cells_per_claim_with_the_verdict_as_a_coloured_word():
    _record()
    page = ledger_page.render_page(claims.load_records(), figure=None)
    parsed = _parse(page)
    header, *rows = parsed.rows
    assert [cell.strip() for cell in header] == [
        "claim",
        "the article says",
        "article",
        "measured here",
        "verdict",
    ]
    assert len(rows) == len(claims.CLAIM_IDS) and all(len(row) == 5 for row in rows)
    c11 = next(row for row in rows if row[0] == "C11")
    assert c11[1] == "INT8 quantization makes inference 3x faster"
    assert [cell.strip() for cell in c11[2:]] == ["3x", "2.4x", "partly reproduced"]
    assert 'style="color: var(--pst-color-warning)">partly reproduced</span>' in page
    assert sum("not yet measured" in row[4] for row in rows) == 23


def test_note_chapter_and_machine_unfold_on_demand_and_are_escaped():
    _record()
    page = ledger_page.render_page(claims.load_records(), figure=None)
    (details,) = _parse(page).details
    assert "the article measures it on a GPU server" in details  # the long claim
    assert "measured on a linear model <b>not</b> a transformer" in details  # escaped, as text
    assert "04_compression" in details and "cores" in details and "full mode" in details
    assert 'href="../notebooks/04_compression.html"' in page
    assert "<b>not</b>" not in page


def test_the_html_block_has_no_blank_line_so_myst_keeps_it_whole():
    _record()
    table = ledger_page.render_table(claims.load_records(), chapter_link_prefix="../notebooks/")
    assert "\n\n" not in table and table.count("<tr") == 25


def test_a_timing_shows_its_interval_and_an_inconclusive_verdict_its_colour():
    record = dataclasses.replace(
        _record(verdict="inconclusive on this machine"), measured_low=2.1, measured_high=2.7
    )
    page = ledger_page.render_page([record], figure=None)
    assert "2.4 (2.1–2.7)" in page
    assert 'var(--pst-color-info)">inconclusive on this machine</span>' in page
    unknown = dataclasses.replace(_record(), verdict="a verdict added later")
    assert "a verdict added later" in ledger_page.render_page([unknown], figure=None)


def test_short_claim_keeps_the_first_clause_and_cuts_long_ones():
    assert ledger_page.short_claim("One idea. More detail") == "One idea."
    cut = ledger_page.short_claim("x" * 300)
    assert len(cut) == ledger_page.SHORT_CLAIM_CHARS and cut.endswith("…")


def test_write_page_draws_the_summary_figure_beside_the_page(tmp_path):
    _record()
    _record("C1", chapter="01_attention", verdict="reproduced")
    include = ledger_page.write_page(claims.load_records(), tmp_path / "ledger_table.inc")
    text = include.read_text()
    assert text.startswith("```{figure} ledger_verdicts.svg")
    assert "2 of 24 claims recorded" in text
    svg = (tmp_path / ledger_page.FIGURE_NAME).read_text()
    assert "01_attention" in svg and "04_compression" in svg


def test_an_empty_ledger_says_so_and_draws_no_figure(tmp_path):
    include = ledger_page.write_page([], tmp_path / "ledger_table.inc")
    assert "No claim has been measured" in include.read_text()
    assert not (tmp_path / ledger_page.FIGURE_NAME).exists()


def test_verdict_figure_stacks_one_bar_per_chapter():
    records = [
        _record("C1", chapter="01_attention", verdict="reproduced"),
        _record("C2", chapter="01_attention", verdict="not reproduced"),
        _record("C11"),
    ]
    figure = plots.verdicts_by_chapter(records)
    axis = figure.axes[0]
    widths = sorted(patch.get_width() for patch in axis.patches if patch.get_width())
    assert widths == [1, 1, 1]
    labels = {text.get_text() for text in axis.get_yticklabels()}
    assert labels == {"01_attention", "04_compression"}
    with pytest.raises(ValueError, match="at least one claim record"):
        plots.verdicts_by_chapter([])


def test_writing_the_same_records_again_leaves_the_files_alone(tmp_path):
    """An incremental site build then skips the ledger page."""
    _record()
    include = ledger_page.write_page(claims.load_records(), tmp_path / "ledger_table.inc")
    figure = tmp_path / ledger_page.FIGURE_NAME
    stamps = (include.stat().st_mtime_ns, figure.stat().st_mtime_ns)
    ledger_page.write_page(claims.load_records(), include)
    assert (include.stat().st_mtime_ns, figure.stat().st_mtime_ns) == stamps
