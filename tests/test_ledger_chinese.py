"""The claims ledger in Chinese (issue 25): records stay English, the page shows them translated.

Records come from real verdict functions (:mod:`handbook.verdicts`) through
:func:`handbook.claims.record`; the page is rendered twice from the same records, in English and
inside ``i18n.language_of("zh_CN")``, as the book writes its two editions."""

import html
import re
import string

import pytest

from handbook import claims, i18n, ledger_page, plots, verdicts

ZH = "zh_CN"
CJK = re.compile(r"[\u4e00-\u9fff]")


def _findings():
    """Four verdicts: reproduced, partly reproduced, not reproduced (with an optional clause
    left empty), not measurable here (with a clause of its own in the note)."""
    c1 = verdicts.attention.c1(max_difference=2e-7, float16_overflows=True)
    c24 = verdicts.digits.c24(
        cnn_accuracy=0.95, cnn_seconds=12.0, parameters=12345, threads=2, baseline_accuracy=0.961
    )
    c22 = verdicts.ethics.c22(
        gap_before=28.4,
        gap_after=8.0,
        gap_after_error=1.2,
        test_applicants=1000,
        fairlearn_gap=2.5,
        accuracy_cost=3.1,
        truth_change=0.4,
        epsilon=0.2,
        fgsm_plain=10.0,
        fgsm_trained=20.0,
        fgsm_gain=10.0,
        fgsm_gain_std=float("nan"),
        cnn_seeds=1,
        pgd_steps=10,
        pgd_gain=7.5,
        clean_cost=1.5,
    )
    from handbook.toolchain import IterationLoop, Step

    c23 = verdicts.toolchain.c23(
        with_toolchain=IterationLoop("with", [Step("focused test", 6.2, "pytest")]),
        without_toolchain=IterationLoop("without", [Step("01_x", 30.0, "papermill")]),
        missing=["03_data"],
        nested_chapter_run=False,
    )
    verdicts_seen = [finding.verdict for finding in (c1, c24, c22, c23)]
    assert verdicts_seen == [
        "reproduced",
        "partly reproduced",
        "not reproduced",
        "not measurable here",
    ]
    return {"C1": c1, "C24": c24, "C22": c22, "C23": c23}


@pytest.fixture
def records():
    chapters = {"C1": "01_attention", "C24": "00_digits", "C22": "09_ethics", "C23": "10_toolchain"}
    for claim_id, finding in _findings().items():
        claims.record(finding, chapter=chapters[claim_id], seed=0)
    return claims.load_records()


def _row(page: str, claim_id: str) -> str:
    start = page.index(f'<tr id="ledger-{claim_id.lower()}">')
    return page[start : page.index("</tr>", start)]


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+(?:[.,]\d+)*", text)


def test_the_chinese_page_shows_claims_notes_and_verdicts_in_chinese(records):
    with i18n.language_of(ZH):
        page = ledger_page.render_page(records, figure=None)
    for entry in records:
        row = _row(page, entry.claim_id)
        claim = i18n.translate_text(entry.claim, ZH)
        note = i18n.translate_text(entry.note, ZH)
        assert CJK.search(claim) and CJK.search(note), entry.claim_id
        assert html.escape(ledger_page.short_claim(claim)) in row
        assert html.escape(note) in row and html.escape(entry.note) not in row
        assert _numbers(note) and sorted(_numbers(note)) == sorted(_numbers(entry.note)), (
            entry.claim_id
        )
    colours = {
        "C1": ("--pst-color-success", "已复现"),
        "C24": ("--pst-color-warning", "部分复现"),
        "C22": ("--pst-color-danger", "未能复现"),
        "C23": ("--pst-color-text-muted", "本机无法测量"),
    }
    for claim_id, (variable, word) in colours.items():
        assert f'style="color: var({variable})">{word}</span>' in _row(page, claim_id)
    assert page.count(">尚未测量</span>") == len(claims.CLAIM_IDS) - len(records)
    for heading in ("论断", "原文称", "原文数值", "本机实测", "判定"):
        assert f">{heading}</th>" in page
    assert "1条已复现" in page and "1条本机无法测量" in page
    assert "reproduced" not in re.sub(r'class="[^"]*"', "", page)  # only the CSS class


def test_an_optional_clause_is_translated_or_left_out_with_the_rest(records):
    by_id = {entry.claim_id: entry for entry in records}
    c22 = i18n.translate_text(by_id["C22"].note, ZH)  # one seed: no spread clause
    assert "1个随机种子的均值；PGD-10下为+7.5 pp" in c22
    c23 = i18n.translate_text(by_id["C23"].note, ZH)  # "Not measured: ..." is a field's text
    assert "未测量：本次构建没有执行03_data" in c23 and "Not measured" not in c23


def test_the_english_page_is_the_records_as_they_are(records):
    page = ledger_page.render_page(records, figure=None)
    assert not CJK.search(page)
    for entry in records:
        row = _row(page, entry.claim_id)
        assert html.escape(entry.note) in row and html.escape(entry.article_value) in row
        assert f">{entry.verdict}</span>" in row
    assert page.endswith(claims._provenance(records) + "\n")
    assert ledger_page.provenance(records) == claims._provenance(records)


def test_the_summary_figure_in_chinese_names_verdicts_as_the_page_does(records):
    import matplotlib

    with matplotlib.rc_context(), i18n.language_of(ZH):  # the CJK font leaves no trace
        figure = plots.verdicts_by_chapter(records)
        assert "Noto Sans CJK SC" in matplotlib.rcParams["font.family"]
    axis = figure.axes[0]
    legend = {text.get_text() for text in axis.get_legend().get_texts()}
    assert legend == {"已复现", "部分复现", "未能复现", "本机无法测量"}
    assert axis.get_xlabel() == "论断数"


def _verdict_messages():
    """(catalog, message) for every message with ``{fields}`` of the verdict modules."""
    templates = i18n.runtime_templates()
    catalogs = sorted(name for name in templates if name.startswith("handbook/verdicts/"))
    assert len(catalogs) == len(verdicts.__all__), catalogs
    return [
        (name, message.id)
        for name in catalogs
        for message in templates[name]
        if message.id and "{" in message.id
    ]


@pytest.mark.parametrize("catalog, template", _verdict_messages())
def test_every_verdict_template_round_trips_with_its_numbers(catalog, template):
    """The English a verdict function writes (here with a distinct number in each field) comes
    back in Chinese with each number where its field is."""
    fields = [name for _, name, spec, _ in string.Formatter().parse(template) if name]
    values = {name: 1000 + 11 * index + 0.375 for index, name in enumerate(dict.fromkeys(fields))}
    english = template.format(**values)
    chinese = i18n.translate_text(english, ZH)
    assert chinese != english and CJK.search(chinese), (catalog, english)
    for _, name, spec, _ in string.Formatter().parse(template):
        if name:
            assert format(values[name], spec) in chinese, (catalog, name, chinese)


def test_the_learning_path_in_chinese_takes_titles_from_the_chapters_catalogs():
    from handbook import config, learning_path

    chapters = [learning_path.read_chapter(path) for path in config.chapter_notebooks()[:2]]
    edges = learning_path.dependencies(chapters)
    english = learning_path.render_markdown(chapters, edges, {}, figure="x.svg")
    with i18n.language_of(ZH):
        chinese = learning_path.render_markdown(chapters, edges, {}, figure="x.svg")
    assert not CJK.search(english) and "not run yet / not run yet" in english
    assert "| 章节 | 前置章节 | 上次运行：冒烟 / 完整 | 练习 |" in chinese
    assert "尚未运行 / 尚未运行" in chinese and "not run yet" not in chinese
    for chapter in chapters:
        assert learning_path.display_title(chapter) == chapter.title
        with i18n.language_of(ZH):
            title = learning_path.display_title(chapter)
        assert title != chapter.title and CJK.search(title)
        assert f"{{doc}}`{chapter.number}. {title} <../notebooks/{chapter.stem}>`" in chinese
