"""Shared service: the book's kernels draw every figure once per edition (issue 25).

A chapter runs once for both editions of the site: its measurements, and so its numbers, are the
same in English and in Chinese. A figure is the one output that cannot be translated after the
run (it is an image), so while the book executes (``HANDBOOK_EDITIONS=zh_CN``, set by
:func:`kernel_variables`) each figure a cell shows is drawn twice:

1. in English, as the notebook shows it anywhere else;
2. once more per edition, with every text of the figure (title, axis labels, legend, tick words,
   annotations) put through :func:`handbook.i18n.translate_text` and a CJK font to fall back on.
   That output has only the mime type :data:`handbook.EDITION_MIME`, which no front end
   renders; the Chinese site puts its image in place of the English one
   (:func:`outputs_in`).

A text with no translation stays English in the Chinese figure, and is listed in the output
(``untranslated``), so that the site build can say which.

The hook is installed by an IPython startup file (:func:`startup_folder`) in the kernel's
``IPYTHONDIR``: nothing in a notebook changes, and a learner's own kernel never draws twice.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from handbook import i18n

#: The languages, besides English, that the book's kernels draw figures for.
EDITIONS_ENV = "HANDBOOK_EDITIONS"
STARTUP_FILE = "00-handbook-editions.py"
_STARTUP_SOURCE = "from handbook import editions\n\neditions.register()\n"
#: The image formats a figure may be shown in (those the inline backend registered are used).
_FIGURE_MIME_TYPES = ("image/png", "image/svg+xml", "image/jpeg")
_WORDS = re.compile(r"[A-Za-z]{2,}")


def edition_languages() -> list[str]:
    """The languages of ``HANDBOOK_EDITIONS`` (none: the kernel draws each figure once)."""
    names = os.environ.get(EDITIONS_ENV, "").replace(",", " ").split()
    languages = [i18n.normalize_language(name) for name in names]
    return [language for language in dict.fromkeys(languages) if language != i18n.ENGLISH]


def startup_folder(build: Path) -> Path:
    """An ``IPYTHONDIR`` under ``build`` whose default profile installs the hook at start."""
    folder = Path(build) / "ipython"
    startup = folder / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    path = startup / STARTUP_FILE
    if not path.is_file() or path.read_text() != _STARTUP_SOURCE:
        path.write_text(_STARTUP_SOURCE)
    return folder


def kernel_variables(build: Path, languages: Sequence[str] = i18n.TRANSLATIONS) -> dict[str, str]:
    """The variables that make a kernel draw each figure for ``languages`` too."""
    return {
        EDITIONS_ENV: " ".join(languages),
        "IPYTHONDIR": str(startup_folder(build)),
    }


def register() -> bool:
    """Install the hook in the running IPython (a no-op outside IPython or without editions);
    returns whether it was installed."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not edition_languages():
        return False
    formatter = shell.display_formatter.ipython_display_formatter
    formatter.for_type_by_name("matplotlib.figure", "Figure", show_in_every_edition)
    return True


def _needs_words(text: str) -> bool:
    return bool(_WORDS.search(i18n.prose_of(text)))


def _translated_label(english: str, language: str) -> tuple[str, list[str]]:
    """A figure's text in ``language`` (from the figures' catalogs; a text of several lines
    that no message produces whole, line by line) and its lines with words that no message
    produces."""
    whole = i18n.translation_of(english, language, within=i18n.FIGURE_CATALOGS)
    if whole is not None:
        return whole, []
    lines, missing = [], []
    for line in english.split("\n"):
        translated = i18n.translation_of(line, language, within=i18n.FIGURE_CATALOGS)
        if translated is None and _needs_words(line):
            missing.append(line)
        lines.append(line if translated is None else translated)
    return "\n".join(lines), missing


@contextlib.contextmanager
def translated(figure, language: str) -> Iterator[list[str]]:
    """Inside the block, every text of ``figure`` is in ``language`` and may fall back on a CJK
    font; the list it yields holds the texts with words that had no translation. The figure is
    as it was after the block."""
    from matplotlib.text import Text

    from handbook.plots import style

    family = style.use_cjk_font()
    saved, untranslated = [], []
    for text in figure.findobj(Text):
        english = text.get_text()
        if not english.strip():
            continue
        translation, missing = _translated_label(english, language)
        untranslated += missing
        if translation == english:
            continue
        saved.append((text, english, text.get_fontfamily()))
        text.set_text(translation)
        text.set_fontfamily([*text.get_fontfamily(), family])
    try:
        yield sorted(set(untranslated))
    finally:
        for text, english, fonts in saved:
            text.set_text(english)
            text.set_fontfamily(fonts)


def _formats(shell, figure) -> dict[str, object]:
    """The figure in every image format the kernel's inline backend shows it in."""
    data = {}
    for mime in _FIGURE_MIME_TYPES:
        formatter = shell.display_formatter.formatters.get(mime)
        if formatter is None:
            continue
        try:
            formatter.lookup(figure)
        except KeyError:
            continue
        data[mime] = formatter(figure)
    data["text/plain"] = repr(figure)
    return data


def show_in_every_edition(figure) -> bool:
    """IPython's display hook for a matplotlib figure: the English figure, then the same
    figure once per edition (:data:`handbook.EDITION_MIME`). Returns True (shown)."""
    from IPython import get_ipython
    from IPython.display import publish_display_data

    shell = get_ipython()
    publish_display_data(_formats(shell, figure))
    for language in edition_languages():
        with translated(figure, language) as untranslated:
            data = _formats(shell, figure)
        edition = {"language": language, "data": data, "untranslated": untranslated}
        publish_display_data({EDITION_MIME: edition})
    return True


# What the editions show of a run's outputs -------------------------------------------------------

#: The mime type of an output drawn again for another edition while the book ran (a figure with
#: Chinese labels): ``{"language": "zh_CN", "data": {"image/png": ...}}``. No front end renders
#: it (the English site skips it, a learner never gets one); :func:`outputs_in` puts its data in
#: place of the output before it, in that language's edition.
EDITION_MIME = i18n.EDITION_MIME


def translate_lines(text: str, language: str) -> str:
    """Printed text in ``language``, line by line (:func:`translate_text`)."""
    return "".join(
        i18n.translate_text(line.rstrip("\n"), language, within=i18n.PRINTED_CATALOGS)
        + line[len(line.rstrip("\n")) :]
        for line in text.splitlines(keepends=True)
    )


_HTML_TEXT = re.compile(r">([^<>]+)<")


def translate_html(markup: str, language: str) -> str:
    """An HTML output (a check's verdict box) with each text between tags translated."""
    import html

    def text(match: re.Match) -> str:
        inner = html.unescape(match.group(1))
        stripped = inner.strip()
        translated = (
            i18n.translate_text(stripped, language, within=i18n.HTML_CATALOGS) if stripped else ""
        )
        if translated == stripped:
            return match.group(0)
        lead, tail = inner[: len(inner) - len(inner.lstrip())], inner[len(inner.rstrip()) :]
        return f">{lead}{html.escape(translated, quote=False)}{tail}<"

    return _HTML_TEXT.sub(text, markup)


def _translated_output(output: dict, language: str) -> dict:
    """A printed or displayed output with its words in ``language`` (values kept)."""
    if output.get("output_type") == "stream":
        text = output["text"] if isinstance(output["text"], str) else "".join(output["text"])
        return {**output, "text": translate_lines(text, language)}
    data = output.get("data", {})
    if "text/html" in data:
        markup = data["text/html"]
        markup = markup if isinstance(markup, str) else "".join(markup)
        return {**output, "data": {**data, "text/html": translate_html(markup, language)}}
    return output


def outputs_in(cell: dict, language: str) -> dict:
    """A code cell's outputs as the edition in ``language`` shows them: an output drawn again
    for this edition (:data:`EDITION_MIME`) takes the place of the one before it, those for
    other editions are dropped, and printed lines are translated."""
    if cell.get("cell_type") != "code" or not cell.get("outputs"):
        return cell
    kept: list[dict] = []
    for output in cell["outputs"]:
        edition = output.get("data", {}).get(EDITION_MIME)
        if edition is not None:
            if edition.get("language") == language and kept:
                kept[-1] = {**kept[-1], "data": edition.get("data", {})}
            continue
        if language != i18n.ENGLISH:
            output = _translated_output(output, language)
        kept.append(output)
    return {**cell, "outputs": kept}


def untranslated_figure_texts(cells: list[dict], language: str) -> set[str]:
    """The texts with words that the figures of ``cells`` drew in English for ``language``
    (the editions' outputs list them)."""
    found: set[str] = set()
    for cell in cells:
        for output in cell.get("outputs", []):
            edition = output.get("data", {}).get(EDITION_MIME) or {}
            if edition.get("language") == language:
                found.update(edition.get("untranslated", []))
    return found
