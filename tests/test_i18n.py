"""The Chinese edition's machinery (handbook.i18n, handbook.editions, the site's edition links):
paragraphs, catalogs, the check that fails on stale English, worksheets, translated outputs."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from handbook import book_site, config, editions, i18n, worksheets

ROOT = config.project_root()


# Paragraphs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", i18n.markdown_sources(), ids=lambda path: path.name)
def test_every_source_is_cut_into_segments_that_join_back_to_it(source):
    if source.suffix == ".ipynb":
        cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
        texts = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"]
    else:
        texts = [source.read_text(encoding="utf-8")]
    for text in texts:
        assert "".join(segment for segment, _ in i18n.segments(text)) == text


def test_code_math_and_labels_are_kept_and_prose_is_translated():
    text = (
        "(sec-attention)=\n## 1. Attention\n\nSome *prose* with `code` and $x^2$.\n\n"
        "```python\nprint('not prose')\n```\n\n$$\na = b\n\nc = d\n$$\n\n"
        ":::{note}\nA note is prose.\n:::\n\n<!-- a comment -->\n"
    )
    assert i18n.paragraphs(text) == [
        "(sec-attention)=\n## 1. Attention",
        "Some *prose* with `code` and $x^2$.",
        ":::{note}\nA note is prose.\n:::",
    ]
    # a label line alone is not prose
    assert not i18n.needs_translation("(sec-attention)=")
    translated = i18n.translate_markdown(
        text, {"Some *prose* with `code` and $x^2$.": "一些*文字*"}
    )
    assert "一些*文字*" in translated and "print('not prose')" in translated


def test_kept_tokens_read_a_titled_role_by_its_target_and_find_claim_ids_beside_chinese():
    english = "See {doc}`chapter 1 <../notebooks/01_attention>`, claim C24 and `f(x)`."
    chinese = "见{doc}`第1章 <../notebooks/01_attention>`，论断C24的`f(x)`。"
    assert i18n.kept_tokens(english) == i18n.kept_tokens(chinese)
    assert "C24" in i18n.kept_tokens(chinese)


def test_unclosed_bold_after_full_width_punctuation_is_found():
    spans, literal = i18n.emphasis_of("**本章检验的论断：**C11")
    assert spans == 0 and literal
    assert i18n.emphasis_of("**本章检验的论断**：C11") == (1, [])


# Catalogs: update, check, worksheets -------------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the book's sources and catalogs that a test may edit."""
    for name in ("notebooks", "book", "locales", "handbook"):
        shutil.copytree(
            ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)
    return tmp_path


def _edit_first_paragraph(notebook: Path, new_text: str) -> tuple[int, str]:
    content = json.loads(notebook.read_text(encoding="utf-8"))
    for index, cell in enumerate(content["cells"]):
        if cell["cell_type"] == "markdown" and len(i18n.paragraphs("".join(cell["source"]))) > 1:
            old = i18n.paragraphs("".join(cell["source"]))[1]
            cell["source"] = "".join(cell["source"]).replace(old, new_text)
            notebook.write_text(json.dumps(content, indent=1, ensure_ascii=False), encoding="utf-8")
            return index, old
    raise AssertionError(f"{notebook} has no markdown cell with two paragraphs")


def test_an_edited_english_paragraph_fails_the_check_naming_file_and_paragraph(project):
    notebook = project / "notebooks" / "01_attention.ipynb"
    before = {problem.line() for problem in i18n.check("zh_CN")}
    index, old = _edit_first_paragraph(notebook, "A new English paragraph, never translated.")
    problems = [problem for problem in i18n.check("zh_CN") if problem.line() not in before]
    assert [problem.paragraph.source for problem in problems] == ["notebooks/01_attention.ipynb"]
    assert problems[0].paragraph.where == f"cell {index}, paragraph 2"
    assert problems[0].what.startswith("no entry")

    # --update carries the old translation over, marked fuzzy, and the check still fails
    old_translation = i18n.translations("zh_CN", "notebooks/01_attention").get(old)
    i18n.update("zh_CN")
    catalog = i18n.read_catalog(i18n.catalog_path("zh_CN", "notebooks/01_attention"))
    message = catalog.get("A new English paragraph, never translated.")
    assert message is not None
    if old_translation:  # a close match: msgmerge's fuzzy entry
        assert message.fuzzy or not message.string
    after = [problem for problem in i18n.check("zh_CN") if problem.line() not in before]
    assert after and after[0].what in (
        "untranslated",
        "fuzzy (the English changed since it was translated)",
    )


def test_the_command_exits_1_on_a_stale_paragraph_and_names_it(project, capsys):
    from handbook import cli

    clean = cli.main(["translations", "--check"])
    _edit_first_paragraph(project / "notebooks" / "02_optimization.ipynb", "Edited English.")
    assert cli.main(["translations", "--check"]) == 1
    error = capsys.readouterr().err
    assert "notebooks/02_optimization.ipynb cell" in error and "'Edited English.'" in error
    assert clean in (0, 1)  # the copy's state before the edit: whatever the catalogs hold


def test_a_worksheet_goes_out_and_comes_back_into_its_catalog(project):
    name = "book/part1"
    sheet = worksheets.export_worksheet("zh_CN", name)
    english = i18n.source_paragraphs(project / "book" / "part1.md")[0].text
    lines = sheet.splitlines()
    start = lines.index(english.splitlines()[0])
    mark = next(i for i in range(start, len(lines)) if lines[i].startswith("---- zh_CN ----"))
    end = next((i for i in range(mark + 1, len(lines)) if lines[i].startswith("<<<< ")), len(lines))
    lines[mark + 1 : end] = ["第一部分（worksheet test）"]
    written_name, written = worksheets.import_worksheet("zh_CN", "\n".join(lines) + "\n")
    assert written_name == name and written >= 1
    assert i18n.translations("zh_CN", name)[english] == "第一部分（worksheet test）"


def test_a_worksheet_whose_english_was_altered_is_refused(project):
    sheet = worksheets.export_worksheet("zh_CN", "book/part1")
    english = i18n.source_paragraphs(project / "book" / "part1.md")[0].text.splitlines()[0]
    with pytest.raises(i18n.TranslationError, match="not in the catalog"):
        worksheets.import_worksheet("zh_CN", sheet.replace(english, english + " (edited)", 1))


def test_an_unknown_language_is_refused_naming_the_known_ones():
    with pytest.raises(i18n.TranslationError, match="en, zh_CN"):
        i18n.normalize_language("fr")
    assert i18n.normalize_language("zh-cn") == "zh_CN"
    assert i18n.normalize_language(None) == "en"


# What a run printed or drew ----------------------------------------------------------------------


def test_a_formatted_english_text_is_translated_with_its_values(monkeypatch):
    table = {
        "accuracy {value:.2f} after {epochs} epochs": "{epochs} 轮后准确率 {value:.2f}",
        "Reference": "参考",
    }
    monkeypatch.setattr(i18n, "runtime_translations", lambda language, within=(): table)
    i18n._templates.cache_clear()
    assert i18n.translate_text("accuracy 0.93 after 5 epochs", "zh_CN") == "5 轮后准确率 0.93"
    assert i18n.translate_text("Reference", "zh_CN") == "参考"
    assert i18n.translate_text("no message makes this", "zh_CN") == "no message makes this"
    assert i18n.translate_text("Reference", "en") == "Reference"
    i18n._templates.cache_clear()


def test_an_edition_s_figure_takes_the_place_of_the_english_one(monkeypatch):
    monkeypatch.setattr(
        i18n, "runtime_translations", lambda language, within=(): {"epoch {n}": "第{n}轮"}
    )
    i18n._templates.cache_clear()
    cell = {
        "cell_type": "code",
        "outputs": [
            {"output_type": "display_data", "data": {"image/png": "ENGLISH"}, "metadata": {}},
            {
                "output_type": "display_data",
                "data": {
                    editions.EDITION_MIME: {"language": "zh_CN", "data": {"image/png": "CHINESE"}}
                },
                "metadata": {},
            },
            {"output_type": "stream", "name": "stdout", "text": "epoch 3\nloss 0.5\n"},
        ],
    }
    chinese = editions.outputs_in(cell, "zh_CN")["outputs"]
    assert [output.get("data", {}).get("image/png") for output in chinese[:1]] == ["CHINESE"]
    assert chinese[1]["text"] == "第3轮\nloss 0.5\n"
    english = editions.outputs_in(cell, "en")["outputs"]
    assert english[0]["data"]["image/png"] == "ENGLISH" and len(english) == 2
    i18n._templates.cache_clear()


def test_a_figure_is_translated_in_place_and_restored_with_a_cjk_font(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(
        i18n,
        "runtime_translations",
        lambda language, within=(): {"Loss per epoch": "每轮的损失", "loss": "损失"},
    )
    i18n._templates.cache_clear()
    with matplotlib.rc_context():  # the CJK font it adds to the settings goes with the test
        figure, axis = plt.subplots()
        axis.plot([0, 1], [1, 0], label="loss")
        axis.set_title("Loss per epoch")
        axis.set_xlabel("an unknown label")
        axis.legend()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "Glyph ... missing from font(s)" would raise
            with editions.translated(figure, "zh_CN") as untranslated:
                assert axis.get_title() == "每轮的损失"
                assert axis.get_legend().get_texts()[0].get_text() == "损失"
                figure.canvas.draw()
        plt.close(figure)
    assert untranslated == ["an unknown label"]
    assert axis.get_title() == "Loss per epoch"
    i18n._templates.cache_clear()


def test_the_kernel_hook_is_installed_only_with_editions(tmp_path, monkeypatch):
    folder = editions.startup_folder(tmp_path)
    assert (folder / "profile_default" / "startup" / editions.STARTUP_FILE).is_file()
    monkeypatch.delenv(editions.EDITIONS_ENV, raising=False)
    assert editions.edition_languages() == []
    assert editions.register() is False  # outside IPython, and without editions
    variables = editions.kernel_variables(tmp_path)
    assert variables[editions.EDITIONS_ENV] == "zh_CN" and variables["IPYTHONDIR"] == str(folder)


# The site's links between editions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("pagename", "language", "link"),
    [
        ("notebooks/01_attention", "en", "../zh/notebooks/01_attention.html"),
        ("notebooks/01_attention", "zh_CN", "../../notebooks/01_attention.html"),
        ("search", "en", "zh/search.html"),
        ("search", "zh_CN", "../search.html"),
    ],
)
def test_each_page_links_to_the_same_page_in_the_other_edition(pagename, language, link):
    assert book_site.edition_link(pagename, language) == link


def test_figure_labels_no_message_produces_are_collected_and_then_must_be_translated(project):
    cells = [
        {
            "cell_type": "code",
            "outputs": [
                {
                    "output_type": "display_data",
                    "data": {
                        editions.EDITION_MIME: {
                            "language": "zh_CN",
                            "data": {},
                            "untranslated": ["teacher fp32 eager", "a label never seen"],
                        }
                    },
                }
            ],
        }
    ]
    texts = editions.untranslated_figure_texts(cells, "zh_CN")
    assert texts == {"teacher fp32 eager", "a label never seen"}
    added = i18n.add_figure_labels(texts, "zh_CN")
    assert "a label never seen" in added
    assert "teacher fp32 eager" not in added  # it has a translation already
    assert i18n.add_figure_labels(texts, "zh_CN") == []  # collected once
    i18n.update("zh_CN")
    problems = [p for p in i18n.check("zh_CN") if p.paragraph.text == "a label never seen"]
    assert problems and problems[0].paragraph.source == "locales/figure-labels.txt"
