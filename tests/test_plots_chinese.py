"""Figures in Chinese (issue 25): every label ``handbook.plots`` draws is translated, the CJK font
the install provides has every glyph of the translations, and English figures are unchanged."""

from __future__ import annotations

import ast
import re
import unicodedata
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib import font_manager, ft2font

from handbook import i18n, plots
from handbook.plots import style

ROOT = Path(__file__).resolve().parent.parent
PLOTS = ROOT / "handbook" / "plots"
MISSING_GLYPH = re.compile(r"Glyph \d+ .*missing from font")


@pytest.fixture(autouse=True)
def own_rc_params():
    """Each test's font settings (and figures) go away with it."""
    import matplotlib.pyplot as plt

    with matplotlib.rc_context():
        yield
    plt.close("all")


def _is_cjk(character: str) -> bool:
    """A character the Latin font lacks and the CJK font must draw: Han ideographs, CJK and
    full-width punctuation (``（``, ``：``, ``，``)."""
    return unicodedata.east_asian_width(character) in ("W", "F")


def _figure_catalogs() -> list[Path]:
    return sorted((i18n.catalog_dir("zh_CN") / "handbook" / "plots").glob("*.po"))


def _words(figure) -> list[str]:
    """Every text of a figure that is words: suptitle, titles, axis labels, legend entries and
    titles, text boxes (tick labels left out: they are numbers or the caller's data)."""
    found = [figure.get_suptitle()]
    for axis in figure.axes:
        found += [axis.get_title(loc) for loc in ("left", "center", "right")]
        found += [axis.get_xlabel(), axis.get_ylabel()]
        found += [text.get_text() for text in axis.texts]
        legend = axis.get_legend()
        if legend is not None:
            found += [text.get_text() for text in legend.get_texts()]
            found.append(legend.get_title().get_text())
    return [text for text in found if text]


def _draw(figure) -> list[str]:
    """Draw ``figure``; the missing-glyph warnings the drawing raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.canvas.draw()
    return [
        str(warning.message) for warning in caught if MISSING_GLYPH.search(str(warning.message))
    ]


# (a) the font has every glyph -----------------------------------------------------------------


def test_the_cjk_font_has_every_character_of_the_figure_catalogs():
    catalogs = _figure_catalogs()
    assert catalogs, "no locales/zh_CN/LC_MESSAGES/handbook/plots/*.po: run translations --update"
    cjk = set(ft2font.FT2Font(str(style.cjk_font_path())).get_charmap())
    latin = set(ft2font.FT2Font(font_manager.findfont("DejaVu Sans")).get_charmap())
    checked, lacking = 0, []
    for path in catalogs:
        for message in i18n.read_catalog(path):
            for character in message.string if message.id else "":
                if _is_cjk(character):
                    checked += 1
                    if ord(character) not in cjk:
                        lacking.append(f"{path.name}: {character!r} in {message.string!r}")
                elif ord(character) not in cjk | latin:
                    lacking.append(f"{path.name}: {character!r} (in no font) in {message.string!r}")
    assert not lacking, "characters the figures' fonts cannot draw:\n" + "\n".join(lacking)
    assert checked > 200, f"only {checked} CJK characters in the figure catalogs: translated?"


def test_chinese_title_labels_and_legend_draw_without_missing_glyphs():
    import matplotlib.pyplot as plt

    def chinese_figure():
        figure, axis = plt.subplots()
        axis.plot([0, 1], [1, 0], label="验证准确率（%）")
        axis.set_title("注意力权重：源语言（英语）token")
        axis.set_xlabel("训练到的时期")
        axis.set_ylabel("损失 loss")
        axis.legend(title="时期的主题")
        return figure

    # without the CJK font the same figure shows boxes, and the warning says so
    matplotlib.rcParams["font.family"] = ["DejaVu Sans"]
    assert _draw(chinese_figure()), "expected missing-glyph warnings without a CJK font"
    family = style.use_cjk_font()
    assert family == "Noto Sans CJK SC"
    assert matplotlib.rcParams["font.family"] == ["DejaVu Sans", family]
    assert _draw(chinese_figure()) == []


def test_use_cjk_font_keeps_the_latin_font_first_and_adds_itself_once():
    before = list(matplotlib.rcParams["font.family"])
    family = style.use_cjk_font()
    assert style.use_cjk_font() == family
    assert matplotlib.rcParams["font.family"] == [*before, family]
    assert matplotlib.rcParams["font.sans-serif"].count(family) == 1
    assert matplotlib.rcParams["font.sans-serif"][0] == "DejaVu Sans"


def test_a_bold_chinese_label_draws_without_a_font_weight_warning(caplog):
    """The bundled CJK font has one weight: a bold Chinese label (chapter 9's highlighted
    features) is drawn in it regular, and matplotlib's "Failed to find font weight" warning for
    it is not printed into the executed chapter; other font warnings still are."""
    import logging

    family = style.use_cjk_font()
    logger = logging.getLogger("matplotlib.font_manager")
    ours = [kept for kept in logger.filters if getattr(kept, "family", None) == family]
    assert len(ours) == 1

    def weight_warnings(size: float) -> list[str]:
        """Look up the bold CJK font (a size not looked up before: matplotlib caches lookups)."""
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=logger.name):
            bold = font_manager.FontProperties(family=family, weight="bold", size=size)
            font_manager.fontManager.findfont(bold)
        return [record.getMessage() for record in caplog.records if "weight" in record.getMessage()]

    logger.removeFilter(ours[0])
    try:
        assert weight_warnings(13.37), "matplotlib no longer warns: the filter has nothing to do"
    finally:
        logger.addFilter(ours[0])
    assert weight_warnings(13.38) == []
    other = logging.LogRecord(
        logger.name, logging.WARNING, __file__, 1, "findfont: Font family %s not found.",
        ("Nope",), None,
    )  # fmt: skip
    assert ours[0].filter(other)


def test_without_mplfonts_the_error_names_the_package(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "mplfonts" else find_spec(name, *args),
    )
    with pytest.raises(RuntimeError, match=r"mplfonts .*: pip install mplfonts"):
        style.cjk_font_path()


# (b) real figures in Chinese, (c) the same figures in English ------------------------------------


def _padding():
    return plots.padding_per_batch({"random": [[3, 5], [2, 2]], "bucketed": [[2, 2], [3, 5]]})


def _dashboard():
    series = {
        name: np.arange(3.0)
        for name in ("time", "qps", "p50_ms", "p99_ms", "error_rate", "batch_size")
    }
    return plots.serving_dashboard(series)


def _loss_curves():
    return plots.loss_curves({"a": [3.0, 2.0], "b": [3.0, 2.9]}, reference=2.7)


def _loops():
    return plots.iteration_loops(
        {"by hand": [("edit", 20.0), ("train", 60.0)], "toolchain": [("edit", 20.0)]},
        claimed_ratio=4.7,
    )


def _gain_by_mix():
    return plots.gain_by_mix([0.0, 0.5], {"x": [0, -50]}, {"x": [0, 20]}, article=(-35, 18))


def _sweep():
    return plots.sweep_comparison(
        {"lr 1e-3": ([1, 2], [0.5, 0.6]), "lr 1e-2": ([1, 2], [0.4, 0.7])}
    )


#: Figures of chapters 3, 5, 1, 6 and 10 drawn from small synthetic data, with the words their
#: English edition shows (the strategy, server and step names are the caller's data).
FIGURES = {
    "padding_per_batch (ch. 3)": (
        _padding,
        [
            "random: 14.3% padding",
            "batch",
            "positions in the batch",
            "real tokens",
            "padding",
            "bucketed: 14.3% padding",
            "batch",
        ],
    ),
    "serving_dashboard (ch. 5)": (
        _dashboard,
        [
            "QPS",
            "seconds",
            "requests/s",
            "latency (from histogram buckets)",
            "seconds",
            "ms",
            "p50",
            "p99",
            "error rate",
            "seconds",
            "% not 2xx",
            "batch size",
            "seconds",
            "texts per model call",
        ],
    ),
    "loss_curves (ch. 1)": (_loss_curves, ["step", "loss", "a", "b"]),
    "gain_by_mix (ch. 6)": (
        _gain_by_mix,
        [
            "share of the frauds visible only in the order of events (%)",
            "change of false positives at equal recall (%)",
            "x",
            "article: -35%",
            "share of the frauds visible only in the order of events (%)",
            "recall gain at equal false-positive rate (pp)",
            "x",
            "article: +18",
        ],
    ),
    "sweep_comparison (ch. 10)": (
        _sweep,
        [
            "epoch",
            "validation accuracy (%)",
            "lr 1e-3",
            "lr 1e-2",
            "final validation accuracy (%)",
            "60.0",
            "70.0",
        ],
    ),
    "iteration_loops (ch. 10)": (
        _loops,
        [
            "measured ratio 4.0x; the article: 4.7x (two weeks to three days)",
            "seconds from a one-line change to a verified result",
            "  80 s",
            "  20 s",
            "edit",
            "train",
        ],
    ),
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_english_figures_keep_their_english_words(name, monkeypatch):
    monkeypatch.delenv(i18n.LANG_ENV, raising=False)
    draw, english = FIGURES[name]
    assert _words(draw()) == english


@pytest.mark.parametrize("name", list(FIGURES))
def test_figures_drawn_in_chinese_have_chinese_words_and_every_glyph(name, monkeypatch):
    draw, english = FIGURES[name]
    monkeypatch.setenv(i18n.LANG_ENV, "zh_CN")
    figure = draw()
    words = _words(figure)
    assert _draw(figure) == []
    chinese = [text for text in words if any(_is_cjk(character) for character in text)]
    assert len(chinese) >= 2, f"expected Chinese titles and labels, got {words}"
    assert len(words) == len(english)
    assert "Noto Sans CJK SC" in matplotlib.rcParams["font.family"]


@pytest.mark.parametrize("name", list(FIGURES))
def test_translating_an_english_figure_gives_the_figure_drawn_in_chinese(name, monkeypatch):
    """The book draws each figure in English and translates its texts
    (:func:`handbook.i18n.translate_text`); a learner with ``HANDBOOK_LANG=zh_CN`` draws it in
    Chinese: both must read the same."""
    draw, english = FIGURES[name]
    monkeypatch.setenv(i18n.LANG_ENV, "zh_CN")
    assert _words(draw()) == [i18n.translate_text(text, "zh_CN") for text in english]


def test_every_word_of_the_figures_has_a_translation(monkeypatch):
    """No English word left in the Chinese figures above, other than the caller's data and
    what the glossary keeps in English (QPS, epoch, token, p50/p99, units)."""
    monkeypatch.setenv(i18n.LANG_ENV, "zh_CN")
    kept = {"QPS", "ms", "s", "p", "token", "epoch"}  # the glossary keeps them in English
    kept |= {"a", "b", "x", "lr", "edit", "train", "random", "bucketed"}  # the caller's names
    for draw, _english in FIGURES.values():
        for text in _words(draw()):
            english_words = set(re.findall(r"(?<![0-9A-Za-z])[A-Za-z]+(?![A-Za-z])", text)) - kept
            assert not english_words, f"English left in {text!r}: {sorted(english_words)}"


# _() runs when a figure is drawn, never when a module is imported -------------------------------


def _gettext_calls(node: ast.AST) -> list[int]:
    return [
        inner.lineno
        for inner in ast.walk(node)
        if isinstance(inner, ast.Call)
        and isinstance(inner.func, ast.Name)
        and inner.func.id in ("_", "gettext")
    ]


def test_no_figure_module_translates_at_import():
    """A ``_()`` at a module's top level or in a default argument would freeze the language of
    the first import; defaults are marked with ``N_`` and translated in the function."""
    frozen = []
    for path in sorted(PLOTS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                evaluated_at_import = [
                    *node.decorator_list,
                    *node.args.defaults,
                    *(default for default in node.args.kw_defaults if default is not None),
                ]
                lines = [line for part in evaluated_at_import for line in _gettext_calls(part)]
            else:
                lines = _gettext_calls(node)
            frozen += [f"{path.name}:{line}" for line in lines]
    assert not frozen, f"_() evaluated at import: {frozen}"
