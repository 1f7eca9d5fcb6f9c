"""Shared service: the Chinese edition's catalogs, from one English source (issue 25).

Every learner-facing English text has an entry in a gettext catalog under
``locales/<language>/LC_MESSAGES/``; its ``msgid`` is the English source itself, so an edited
English paragraph no longer has an entry, and :func:`check` (``handbook translations --check``,
run by ``make test``) fails naming the file and the paragraph. The catalogs are read and written
with Babel (:mod:`babel.messages`), the library Sphinx's own translations use.

- **Markdown** (the notebooks' markdown cells, ``book/*.md``): :func:`segments` cuts a text into
  paragraphs; a paragraph with words in it is one catalog entry, and code blocks, display math,
  labels and blank lines are kept as they are. One catalog per source file:
  ``notebooks/01_attention.po``, ``book/intro.po``. :func:`translate_markdown` puts a text
  together again from its translated paragraphs.
- **Messages the code prints or draws** (check messages, figure labels, the ledger page's
  words, the command line): written ``_("... {name} ...").format(name=...)`` in ``handbook``
  and extracted by Babel into one catalog per module (``handbook/exercises/ch03.po``);
  :func:`gettext` (imported as ``_``) returns the translation for the language of
  ``HANDBOOK_LANG``.

A translation must keep what is not prose as it is: :func:`kept_tokens` lists a paragraph's
inline code, math, link targets and claim ids, and :func:`check` fails when a translation lost
or changed one.

Shapes: a *segment* is ``(text, translatable)``; ``"".join`` of a text's segments is the text.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from handbook import config

#: The environment variable choosing the language of messages and figures (``LANG`` is the
#: process locale, which a learner's system sets for other reasons).
LANG_ENV = "HANDBOOK_LANG"
ENGLISH = "en"
#: The languages the book has catalogs for, besides English, the source.
TRANSLATIONS = ("zh_CN",)
LANGUAGES = (ENGLISH, *TRANSLATIONS)
#: The catalogs of the code's own messages (check messages, figures, ledger, command line) are
#: ``handbook/<module>.po``, one per module with messages.
RUNTIME_DOMAIN = "handbook"


class TranslationError(Exception):
    """A language that has no catalogs, or a catalog that cannot be used; the message says which."""


def normalize_language(language: str | None) -> str:
    """``zh_CN`` from ``zh_CN``, ``zh-CN``, ``zh-cn`` or ``zh``; ``en`` from ``en``, ``en_US``,
    ``""`` or None. Raises :class:`TranslationError` naming the languages there are."""
    text = (language or ENGLISH).strip().replace("-", "_")
    if text.lower() in ("", "c", "posix") or text.lower().split("_")[0] == "en":
        return ENGLISH
    for known in TRANSLATIONS:
        if text.lower() == known.lower() or text.lower() == known.split("_")[0].lower():
            return known
    raise TranslationError(
        f"no translation into {language!r}: the book has {', '.join(LANGUAGES)} "
        f"(set {LANG_ENV} to one of them, or leave it unset for English)"
    )


_LANGUAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar("language", default=None)


def current_language() -> str:
    """The language of ``HANDBOOK_LANG`` (default English), or the one :func:`language_of` set."""
    return _LANGUAGE.get() or normalize_language(os.environ.get(LANG_ENV))


@contextlib.contextmanager
def language_of(language: str) -> Iterator[None]:
    """Messages in ``language`` inside the block (the book writes each edition's pages so)."""
    token = _LANGUAGE.set(normalize_language(language))
    try:
        yield
    finally:
        _LANGUAGE.reset(token)


def locales_dir() -> Path:
    """``<checkout>/locales``: every catalog, one folder per language."""
    return config.project_root() / "locales"


def catalog_dir(language: str) -> Path:
    """``locales/<language>/LC_MESSAGES``."""
    return locales_dir() / language / "LC_MESSAGES"


# Paragraphs of markdown ---------------------------------------------------------------------------

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,}|:{3,})(.*)$")
_MATH_BLOCK = re.compile(r"^\s{0,3}\$\$")
_LABEL = re.compile(r"^\s*\([\w.:-]+\)=\s*$")
_COMMENT = re.compile(r"^\s*<!--.*-->\s*$", re.S)
_INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<!\\)\$", re.S)
_LINK_TARGET = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_ROLE = re.compile(r"\{([\w:-]+)\}`([^`]*)`")
_ROLE_TITLE = re.compile(r"^(.*?)\s*<([^<>]+)>$", re.S)
_URL = re.compile(r"https?://\S+")
_HTML_TAG = re.compile(r"<[^>]+>")
_CLAIM_ID = re.compile(r"(?<![A-Za-z0-9_])C\d{1,2}(?![0-9])")
_WORD = re.compile(r"[A-Za-z]{2,}")


def _is_code_fence(opening: str) -> bool:
    """A fence of code (```python, ~~~) rather than a directive whose body is prose
    (```{note}, :::{figure}); ```{code-cell} and ```{math} hold no prose either."""
    marker, info = opening
    info = info.strip()
    if marker.startswith(":"):
        return False
    if info.startswith("{"):
        return info.split("}")[0].strip("{ ") in ("code-cell", "code-block", "code", "math")
    return True


def _blocks(text: str) -> Iterator[tuple[str, bool]]:
    """The lines of ``text`` grouped into blocks: ``(lines, is_blank_run)``; a fenced block or a
    display-math block is one block, blank lines and all."""
    lines = text.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            end = index
            while end < len(lines) and not lines[end].strip():
                end += 1
            yield "".join(lines[index:end]), True
            index = end
            continue
        fence = _FENCE.match(line)
        if fence or _MATH_BLOCK.match(line):
            marker = fence.group(1) if fence else "$$"
            end = index + 1
            one_line_math = not fence and line.strip() != "$$" and line.strip().endswith("$$")
            if not one_line_math:
                while end < len(lines):
                    closing = lines[end].strip()
                    end += 1
                    if (
                        fence
                        and closing.startswith(marker[0] * len(marker))
                        and not closing.strip(marker[0])
                    ) or (not fence and closing.endswith("$$")):
                        break
            yield "".join(lines[index:end]), False
            index = end
            continue
        end = index
        while end < len(lines) and lines[end].strip():
            if end > index and (_FENCE.match(lines[end]) or _MATH_BLOCK.match(lines[end])):
                break
            end += 1
        yield "".join(lines[index:end]), False
        index = end


def prose_of(text: str) -> str:
    """``text`` without what is not prose: inline code, math, roles, link targets, URLs, tags."""
    for pattern in (_ROLE, _INLINE_CODE, _INLINE_MATH, _LINK_TARGET, _URL, _HTML_TAG):
        text = pattern.sub(" ", text)
    return text


def needs_translation(block: str) -> bool:
    """A block a reader reads as words: not a code fence, display math, a ``(label)=`` line or
    an HTML comment, and with at least one word left outside code and math."""
    stripped = block.strip()
    if not stripped or _LABEL.match(stripped) or _COMMENT.match(stripped):
        return False
    fence = _FENCE.match(stripped.splitlines()[0])
    if fence and _is_code_fence(fence.groups()):
        return False
    if _MATH_BLOCK.match(stripped):
        return False
    return bool(_WORD.search(prose_of(stripped)))


def segments(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into ``(segment, translatable)``: each paragraph (without its final newline)
    translatable when :func:`needs_translation`; ``"".join`` of the segments is ``text``."""
    out: list[tuple[str, bool]] = []
    for block, blank in _blocks(text):
        if blank or not needs_translation(block):
            out.append((block, False))
            continue
        body = block.rstrip("\n")
        out.append((body, True))
        if len(body) < len(block):
            out.append((block[len(body) :], False))
    return out


def paragraphs(text: str) -> list[str]:
    """The translatable paragraphs of a markdown text, in order."""
    return [segment for segment, translatable in segments(text) if translatable]


def translate_markdown(text: str, translations: dict[str, str]) -> str:
    """``text`` with each paragraph replaced by its translation (a paragraph with none stays
    English: :func:`check` is what refuses that)."""
    return "".join(
        translations.get(segment) or segment if translatable else segment
        for segment, translatable in segments(text)
    )


def _role_token(match: re.Match) -> str:
    """A role as a translation must keep it: ``{doc}`<../notebooks/01_attention>``` for
    ``{doc}`1 — Attention <../notebooks/01_attention>``` (its title is prose, translated), the
    whole role otherwise."""
    titled = _ROLE_TITLE.match(match.group(2))
    return f"{{{match.group(1)}}}`<{titled.group(2)}>`" if titled else match.group(0)


@functools.lru_cache(maxsize=1)
def _markdown_parser():
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    return MarkdownIt("commonmark").enable("table").use(dollarmath_plugin)


def emphasis_of(text: str) -> tuple[int, list[str]]:
    """How many bold and italic spans CommonMark finds in ``text``, and the text runs that still
    hold ``**`` or ``*`` (emphasis it left open: after full-width punctuation, ``**加粗。**字`
    does not close, and the reader sees the asterisks)."""
    spans, literal = 0, []
    for token in _markdown_parser().parse(text):
        for child in token.children or []:
            if child.type in ("strong_open", "em_open"):
                spans += 1
            elif child.type == "text" and "*" in child.content:
                literal.append(child.content.strip()[:40])
    return spans, literal


def kept_tokens(paragraph: str) -> list[str]:
    """What a translation keeps exactly as it is: inline code, inline math, roles (a titled
    role's target, its title being prose), link and image targets, claim ids (C7); sorted, with
    repeats."""
    tokens = [_role_token(match) for match in _ROLE.finditer(paragraph)]
    rest = _ROLE.sub(" ", paragraph)
    tokens += [match.group(0) for match in _INLINE_CODE.finditer(rest)]
    rest = _INLINE_CODE.sub(" ", rest)
    tokens += [match.group(0) for match in _INLINE_MATH.finditer(rest)]
    rest = _INLINE_MATH.sub(" ", rest)
    tokens += [match.group(1) for match in _LINK_TARGET.finditer(rest)]
    tokens += _CLAIM_ID.findall(_LINK_TARGET.sub(" ", rest))
    # a line break inside a code span reads as a space: the translation need not copy the wrap
    return sorted(" ".join(token.split()) for token in tokens)


# Sources and their catalogs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Paragraph:
    """One translatable paragraph of a source file: where it is and its English text."""

    source: str  # the file, relative to the checkout: notebooks/01_attention.ipynb
    where: str  # "cell 3, paragraph 2" or "line 14"
    text: str


def markdown_sources() -> list[Path]:
    """Every markdown source a reader reads: the chapters and ``book/*.md`` (and the tables the
    pages include, ``book/*.inc``, except the ledger's, which is generated in each language)."""
    root = config.project_root()
    pages = sorted((root / "book").glob("*.md"))
    includes = [
        path for path in sorted((root / "book").glob("*.inc")) if path.name != "ledger_table.inc"
    ]
    return [*config.chapter_notebooks(), *pages, *includes]


def catalog_name(source: Path) -> str:
    """``notebooks/01_attention`` for ``notebooks/01_attention.ipynb``: the catalog's path under
    ``LC_MESSAGES`` without ``.po``."""
    relative = source.resolve().relative_to(config.project_root())
    return str(relative.with_suffix("")) if relative.suffix != ".inc" else str(relative)


def source_paragraphs(source: Path) -> list[Paragraph]:
    """The translatable paragraphs of a notebook's markdown cells or of a markdown page."""
    relative = str(source.resolve().relative_to(config.project_root()))
    if source.suffix == ".ipynb":
        import json

        cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
        found = []
        for index, cell in enumerate(cells):
            if cell["cell_type"] != "markdown":
                continue
            text = "".join(cell["source"])
            for number, paragraph in enumerate(paragraphs(text), start=1):
                found.append(Paragraph(relative, f"cell {index}, paragraph {number}", paragraph))
        return found
    text = source.read_text(encoding="utf-8")
    found, line = [], 1
    for segment, translatable in segments(text):
        if translatable:
            found.append(Paragraph(relative, f"line {line}", segment))
        line += segment.count("\n")
    return found


#: The catalog of the site's own words: the book's title and footer (``_config.yml``) and the
#: captions of the table of contents (``_toc.yml``).
SITE_CATALOG = "book/_site"
SITE_KEYS = (("title",), ("html", "extra_footer"))


def site_paragraphs() -> list[Paragraph]:
    """The title, the footer and every caption of the table of contents."""
    import yaml

    root = config.project_root()
    settings = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    found = []
    for keys in SITE_KEYS:
        value = settings
        for key in keys:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        if isinstance(value, str) and value:
            found.append(Paragraph("_config.yml", ".".join(keys), value))
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    for number, part in enumerate(toc.get("parts", []), start=1):
        if part.get("caption"):
            found.append(Paragraph("_toc.yml", f"part {number} caption", part["caption"]))
    return found


def catalog_path(language: str, name: str) -> Path:
    return catalog_dir(language) / f"{name}.po"


def read_catalog(path: Path):
    """The Babel catalog in ``path`` (raises :class:`TranslationError` naming a broken one)."""
    from babel.messages.pofile import read_po

    try:
        with path.open("rb") as handle:
            return read_po(handle, abort_invalid=True)
    except Exception as error:  # babel raises PoFileError and friends
        raise TranslationError(f"{path}: cannot read this catalog: {error}") from error


@contextlib.contextmanager
def catalogs_locked() -> Iterator[None]:
    """Hold ``locales/.lock`` while catalogs are read and written again (``--update`` and
    ``--import-worksheet`` at once would lose one's writes); no lock where ``fcntl`` is
    missing (Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    locales_dir().mkdir(parents=True, exist_ok=True)
    with (locales_dir() / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_catalog(catalog, path: Path) -> None:
    from babel.messages.pofile import write_po

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(
            handle, catalog, width=0, sort_output=False, include_previous=True, include_lineno=False
        )


def template_for(found: Sequence[Paragraph], *, project: str):
    """A Babel catalog with one message per distinct paragraph, its locations as comments."""

    template = _new_catalog(project)
    for paragraph in found:
        template.add(
            paragraph.text, locations=[(paragraph.source, None)], auto_comments=[paragraph.where]
        )
    return template


def _new_catalog(project: str, language: str | None = None):
    from babel.messages.catalog import Catalog

    return Catalog(
        locale=language,
        project=project,
        version="main",
        copyright_holder="The From Theory to Practice authors",
        msgid_bugs_address="the book's issue tracker (repository.url in _config.yml)",
        last_translator="The From Theory to Practice authors",
        language_team="From Theory to Practice, Chinese edition",
        fuzzy=False,
    )


def update_catalog(path: Path, template, language: str) -> tuple[int, int]:
    """Merge ``template`` into the catalog at ``path`` (created if missing) the way ``msgmerge``
    does: new paragraphs added, a changed paragraph matched to its old translation and marked
    fuzzy, removed ones made obsolete. Returns (entries, entries needing work)."""

    if path.is_file():
        catalog = read_catalog(path)
        created = catalog.creation_date
        catalog.update(template, no_fuzzy_matching=False, update_header_comment=False)
        catalog.obsolete.clear()
        catalog.creation_date = created  # no change of date alone: a catalog changes with its text
    else:
        catalog = _new_catalog(template.project, language)
        for message in template:
            if message.id:
                catalog.add(
                    message.id, locations=message.locations, auto_comments=message.auto_comments
                )
    write_catalog(catalog, path)
    entries = [message for message in catalog if message.id]
    return len(entries), sum(1 for message in entries if message.fuzzy or not message.string)


@functools.lru_cache(maxsize=64)
def _translations(path: Path, mtime_ns: int) -> dict[str, str]:
    catalog = read_catalog(path)
    return {
        message.id: message.string
        for message in catalog
        if message.id and message.string and not message.fuzzy
    }


def translations(language: str, name: str) -> dict[str, str]:
    """English -> translation for the catalog ``name`` (fuzzy and empty entries left out); an
    empty mapping when there is no such catalog."""
    path = catalog_path(language, name)
    if not path.is_file():
        return {}
    return _translations(path, path.stat().st_mtime_ns)


# The code's own messages --------------------------------------------------------------------------


def is_runtime(name: str) -> bool:
    """A catalog of the code's messages (``handbook/...``) rather than of a markdown source."""
    return name.startswith(RUNTIME_DOMAIN + "/")


#: The catalogs a figure's texts are translated from (:mod:`handbook.editions`): the figures'
#: own words and those the chapters' code cells give them, not the check messages.
FIGURE_CATALOGS = ("plots/", "notebooks/")
#: The catalogs a printed line is translated from: the chapters' code cells, the ledger's line
#: (``claims``) and the verdicts' texts it quotes.
PRINTED_CATALOGS = ("notebooks/", "claims", "verdicts/")
#: The catalogs an HTML output is translated from: a check's verdict box, a cell's table.
HTML_CATALOGS = ("exercises/", "notebooks/")


def _runtime_catalogs(language: str, within: Sequence[str] = ()) -> list[Path]:
    """The code's catalogs of ``language`` (``handbook/**.po``); with ``within``, only those
    whose name under ``handbook/`` starts with one of its prefixes."""
    return list(_catalogs_in(catalog_dir(language) / RUNTIME_DOMAIN, tuple(within)))


@functools.lru_cache(maxsize=32)
def _catalogs_in(folder: Path, within: tuple[str, ...]) -> tuple[Path, ...]:
    """The catalogs under ``folder`` (looked for once per process: translating a site asks for
    them for every printed line; :func:`update` clears this when it writes new ones)."""
    paths = sorted(folder.rglob("*.po")) if folder.is_dir() else []
    if within:
        paths = [p for p in paths if p.relative_to(folder).as_posix().startswith(within)]
    return tuple(paths)


def runtime_translations(language: str, within: Sequence[str] = ()) -> dict[str, str]:
    """English -> translation of every message of the code (all ``handbook/**.po`` together,
    or those ``within`` names: :func:`_runtime_catalogs`)."""
    merged: dict[str, str] = {}
    for path in _runtime_catalogs(language, within):
        merged.update(_translations(path, path.stat().st_mtime_ns))
    return merged


def runtime_catalogs_digest(languages: Sequence[str], within: Sequence[str] = ()) -> str:
    """A digest of the code's catalogs of ``languages`` (those ``within`` names): what a figure
    drawn in them depends on."""
    import hashlib

    digest = hashlib.sha256()
    for language in languages:
        for path in _runtime_catalogs(normalize_language(language), within):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def gettext(message: str) -> str:
    """``message`` in the language of ``HANDBOOK_LANG``: its translation from the code's
    catalogs, or ``message`` itself (English, or no translation yet)."""
    language = current_language()
    if language == ENGLISH:
        return message
    return runtime_translations(language).get(message, message)


_ = gettext


def N_(message: str) -> str:  # noqa: N802 (gettext's name for it)
    """``message`` unchanged, marked for the catalogs: for text that is stored in English (a
    ledger record's claim and note) and translated where it is shown (:func:`translate_text`)."""
    return message


def runtime_templates() -> dict[str, object]:
    """The code's messages: every ``_("...")`` in ``handbook/``, extracted by Babel; one template
    per module that has any, named as its catalog (``handbook/exercises/ch03``); and the words
    of the chapters' code cells (:func:`notebook_code_templates`)."""
    from babel.messages.extract import extract_from_dir

    root = config.project_root()
    templates: dict[str, object] = {}
    for filename, line, message, comments, _context in extract_from_dir(
        str(root / "handbook"),
        method_map=[("**.py", "python")],
        keywords={"_": None, "gettext": None, "N_": None},
        comment_tags=("Translators:",),
    ):
        if isinstance(message, str) and message:
            name = f"{RUNTIME_DOMAIN}/{Path(filename).with_suffix('').as_posix()}"
            template = templates.setdefault(name, _new_catalog(name))
            template.add(
                message, locations=[(f"handbook/{filename}", line)], auto_comments=comments
            )
    templates.update(notebook_code_templates())
    if labels := figure_labels():
        templates[FIGURE_LABELS_CATALOG] = template_for(labels, project=FIGURE_LABELS_CATALOG)
    return templates


def _has_words(message: str) -> bool:
    """A message with words outside its ``{fields}``, code and math: one worth translating."""
    return bool(_WORD.search(prose_of(_FIELD.sub(" ", message))))


def notebook_code_messages(notebook: Path) -> list[Paragraph]:
    """The words a chapter's code cells show (:func:`handbook.code_text.shown_strings`: strings
    given to figures, printed lines, f-strings as messages with ``{fields}``), those with words."""
    import json

    from handbook import code_text

    relative = str(notebook.resolve().relative_to(config.project_root()))
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return [
        Paragraph(relative, f"cell {index}", message)
        for index, cell in enumerate(cells)
        if cell["cell_type"] == "code"
        for message in code_text.shown_strings("".join(cell["source"]))
        if _has_words(message) and " " in message.strip()
    ]


def notebook_code_templates() -> dict[str, object]:
    """:func:`notebook_code_messages` of every chapter, one catalog per chapter
    (``handbook/notebooks/01_attention``), merged with the code's own at translation time."""
    templates = {}
    for notebook in config.chapter_notebooks():
        name = f"{RUNTIME_DOMAIN}/notebooks/{notebook.stem}"
        found = notebook_code_messages(notebook)
        if found:
            templates[name] = template_for(found, project=name)
    return templates


#: Labels a figure draws that no message of the code produces (variant names a lesson puts in
#: its results, a chapter's dictionary keys): English, one per line, collected from a build's
#: figures by ``handbook translations --collect-figure-labels`` (:func:`add_figure_labels`)
#: and translated in the catalog ``handbook/notebooks/figure-labels`` like any other message.
FIGURE_LABELS = "figure-labels.txt"
#: The mime type of a figure drawn again for another edition
#: (:data:`handbook.editions.EDITION_MIME`).
EDITION_MIME = "application/vnd.handbook.edition+json"
FIGURE_LABELS_CATALOG = f"{RUNTIME_DOMAIN}/notebooks/figure-labels"


def figure_labels() -> list[Paragraph]:
    """The collected figure labels (``locales/figure-labels.txt``), in order."""
    path = locales_dir() / FIGURE_LABELS
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        Paragraph(f"locales/{FIGURE_LABELS}", f"line {number}", line)
        for number, line in enumerate(lines, start=1)
        if line.strip() and not line.startswith("#")
    ]


def add_figure_labels(texts: Iterable[str], language: str) -> list[str]:
    """Add to ``locales/figure-labels.txt`` each line of ``texts`` (figure texts drawn without
    a translation: :func:`handbook.editions.untranslated_figure_texts`) that has words, no
    translation into ``language`` from the figures' catalogs, and no line there yet; returns
    the labels added."""
    known = {paragraph.text for paragraph in figure_labels()}
    found = [
        line
        for text in texts
        for line in text.split("\n")
        if _WORD.search(prose_of(line))
        and translation_of(line, language, within=FIGURE_CATALOGS) is None
    ]
    added = sorted(set(found) - known)
    if added:
        path = locales_dir() / FIGURE_LABELS
        header = (
            "# Labels figures draw that no message of the code produces, collected from a "
            "build\n# (python -m handbook translations --collect-figure-labels); translated in "
            f"the catalog {FIGURE_LABELS_CATALOG}.\n"
        )
        labels = sorted(known | set(added))
        path.write_text(header + "\n".join(labels) + "\n", encoding="utf-8")
    return added


def runtime_messages(template) -> list[Paragraph]:
    """A runtime template's messages as :class:`Paragraph` (file, line, English)."""
    return [
        Paragraph(
            filename, f"line {line}" if line else ", ".join(message.auto_comments), message.id
        )
        for message in template
        if message.id
        for filename, line in message.locations[:1]
    ]


# Update and check ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A paragraph or message the translation of ``language`` lacks, or got wrong."""

    language: str
    paragraph: Paragraph
    what: str  # "no entry", "fuzzy", "untranslated", "changed `x`"

    def line(self) -> str:
        english = " ".join(self.paragraph.text.split())
        english = english if len(english) <= 70 else english[:67] + "..."
        return f"{self.paragraph.source} {self.paragraph.where}: {self.what}: {english!r}"


def sources_by_catalog() -> dict[str, list[Paragraph]]:
    """Catalog name -> the English paragraphs it must translate, every catalog of the book."""
    found = {catalog_name(source): source_paragraphs(source) for source in markdown_sources()}
    found[SITE_CATALOG] = site_paragraphs()
    for name, template in runtime_templates().items():
        found[name] = runtime_messages(template)
    return found


def update(language: str) -> dict[str, tuple[int, int]]:
    """Bring every catalog of ``language`` up to date with the English sources (``handbook
    translations --update``); returns catalog name -> (entries, entries needing work)."""
    templates = runtime_templates()
    for source in markdown_sources():
        name = catalog_name(source)
        templates[name] = template_for(source_paragraphs(source), project=name)
    templates[SITE_CATALOG] = template_for(site_paragraphs(), project=SITE_CATALOG)
    with catalogs_locked():
        results = {
            name: update_catalog(catalog_path(language, name), template, language)
            for name, template in templates.items()
        }
    # a catalog whose source is gone (a page removed, a module without messages) goes too
    for path in catalog_dir(language).rglob("*.po"):
        if str(path.relative_to(catalog_dir(language)).with_suffix("")) not in templates:
            path.unlink()
    _catalogs_in.cache_clear()
    return results


_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _lost_tokens(english: str, translation: str, *, runtime: bool) -> list[str]:
    if runtime:
        wanted, got = (
            sorted(_PLACEHOLDER.findall(english)),
            sorted(_PLACEHOLDER.findall(translation)),
        )
    else:
        wanted, got = kept_tokens(english), kept_tokens(translation)
    remaining = list(got)
    lost = []
    for token in wanted:
        if token in remaining:
            remaining.remove(token)
        else:
            lost.append(token)
    return lost


def _emphasis_problem(english: str, translation: str) -> str:
    """What is wrong with a translation's bold and italics, or ``""``: asterisks CommonMark
    leaves as they are, or fewer spans than the English has."""
    wanted, _ = emphasis_of(english)
    spans, literal = emphasis_of(translation)
    if literal and not emphasis_of(english)[1]:
        return (
            "bold or italics that will not render, the reader sees the asterisks (put full-width "
            f"punctuation outside them): {' | '.join(literal)}"
        )
    if spans < wanted:
        return f"{wanted} bold or italic span(s) in the English, {spans} in the translation"
    return ""


def check(language: str) -> list[Problem]:
    """Every paragraph and message of the English sources against the catalogs of ``language``:
    a problem for each one with no entry, a fuzzy or empty entry, or a translation that lost
    inline code, math, a link target, a claim id or a ``{placeholder}``."""
    problems = []
    for name, found in sources_by_catalog().items():
        path = catalog_path(language, name)
        catalog = read_catalog(path) if path.is_file() else None
        seen = set()
        for paragraph in found:
            if paragraph.text in seen:
                continue
            seen.add(paragraph.text)
            message = catalog.get(paragraph.text) if catalog is not None else None
            if message is None:
                what = (
                    "no entry (new or edited English: `python -m handbook translations --update`)"
                )
            elif message.fuzzy:
                what = "fuzzy (the English changed since it was translated)"
            elif not message.string:
                what = "untranslated"
            else:
                lost = _lost_tokens(paragraph.text, message.string, runtime=is_runtime(name))
                what = f"the translation lost or changed {', '.join(lost)}" if lost else ""
                if not what and not is_runtime(name):
                    what = _emphasis_problem(paragraph.text, message.string)
            if what:
                problems.append(Problem(language, paragraph, what))
    return problems


@dataclass(frozen=True)
class Counts:
    """A catalog's entries: how many, translated, fuzzy, untranslated."""

    name: str
    entries: int
    translated: int
    fuzzy: int
    untranslated: int


def counts(language: str) -> list[Counts]:
    """Per catalog of ``language``: its entries and their state (``translations --stats``)."""
    found = []
    for path in sorted(catalog_dir(language).rglob("*.po")):
        messages = [message for message in read_catalog(path) if message.id]
        fuzzy = sum(1 for message in messages if message.fuzzy)
        empty = sum(1 for message in messages if not message.string)
        name = str(path.relative_to(catalog_dir(language)).with_suffix(""))
        found.append(Counts(name, len(messages), len(messages) - fuzzy - empty, fuzzy, empty))
    return found


# Translating what a run printed or drew ----------------------------------------------------------

_FIELD = re.compile(r"\{([^{}:!]*)(?:![rsa])?(?::[^{}]*)?\}")


@dataclass(frozen=True)
class _Template:
    pattern: re.Pattern
    fields: tuple[str, ...]
    translation: str
    fixed: int  # characters of the message outside its fields
    literals: tuple[str, ...]  # its fixed pieces, in order: the first and last anchor the text

    def could_match(self, text: str) -> bool:
        """A cheap test before the regular expression: the text starts and ends with the fixed
        pieces that start and end the message, and holds every other piece."""
        return (
            text.startswith(self.literals[0])
            and text.endswith(self.literals[-1])
            and all(piece in text for piece in self.literals[1:-1])
        )


def _template(english: str, translation: str) -> _Template | None:
    """A msgid with ``{fields}`` as a regular expression capturing each field's text."""
    parts, fields, literals, position = [], [], [], 0
    for number, match in enumerate(_FIELD.finditer(english)):
        literals.append(english[position : match.start()].replace("{{", "{").replace("}}", "}"))
        parts.append(re.escape(literals[-1]))
        name = match.group(1) or str(number)
        fields.append(name)
        parts.append(f"(?P<f{len(fields) - 1}>.*?)")  # may be empty: an optional clause
        position = match.end()
    if not fields or not _WORD.search("".join(literals) + english[position:]):
        return None  # no fields, or no words around them: nothing to match a text by
    literals.append(english[position:].replace("{{", "{").replace("}}", "}"))
    parts.append(re.escape(literals[-1]))
    fixed = len(_FIELD.sub("", english))
    pattern = re.compile("".join(parts), re.S)
    return _Template(pattern, tuple(fields), translation, fixed, tuple(literals))


@functools.lru_cache(maxsize=8)
def _templates(
    language: str, within: tuple[str, ...], stamp: tuple
) -> tuple[dict[str, str], tuple[_Template, ...]]:
    exact = runtime_translations(language, within)
    templates = (_template(english, translation) for english, translation in exact.items())
    # the template with the most fixed text first: "article: {change:+g}%" before "{what}: {name}"
    ordered = sorted((t for t in templates if t), key=lambda t: -t.fixed)
    return exact, tuple(ordered)


def _catalogs_stamp(language: str, within: Sequence[str]) -> tuple:
    paths = _runtime_catalogs(language, within)
    return tuple((str(path), path.stat().st_mtime_ns) for path in paths)


def _fill(template: _Template, found: re.Match, language: str, within: tuple[str, ...]) -> str:
    """The translation of ``template`` with each field given the text it matched: by name, or
    by position for ``{}``. A field's text with words in it is translated too (a clause the
    code put together from another message, as a verdict note's optional sentence)."""
    captured = [
        translate_text(text, language, within=within)
        if text != found.string and _WORD.search(text)
        else text
        for text in (found.group(f"f{index}") for index in range(len(template.fields)))
    ]
    by_name = dict(zip(template.fields, captured, strict=True))
    order = iter(captured)

    def value(match: re.Match) -> str:
        name = match.group(1)
        return by_name.get(name, "") if name else next(order, "")

    return _FIELD.sub(value, template.translation).replace("{{", "{").replace("}}", "}")


def translate_text(text: str, language: str | None = None, *, within: Sequence[str] = ()) -> str:
    """A text the code produced in English (a figure's title, a verdict note, a printed line)
    in ``language``: the translation of its message, with each ``{field}`` filled by the text
    it had in the English; ``text`` itself when no message produces it. ``within``: only the
    catalogs it names (:func:`runtime_translations`)."""
    translated = translation_of(text, language, within=within)
    return text if translated is None else translated


def translation_of(
    text: str, language: str | None = None, *, within: Sequence[str] = ()
) -> str | None:
    """:func:`translate_text`, or None when no message produces ``text`` (a translation equal
    to the English, as a name kept in English, is a translation)."""
    language = normalize_language(language) if language else current_language()
    if language == ENGLISH or not text.strip():
        return text
    within = tuple(within)
    exact, templates = _templates(language, within, _catalogs_stamp(language, within))
    if text in exact:
        return exact[text]
    for template in templates:
        found = template.could_match(text) and template.pattern.fullmatch(text)
        if found:
            return _fill(template, found, language, within)
    return None


# Translated editions ----------------------------------------------------------------------------


def translate_notebook_cells(cells: list[dict], language: str, name: str) -> list[dict]:
    """The cells of a notebook (nbformat JSON) with each markdown cell's paragraphs translated
    from the catalog ``name``; other cells as they are."""
    table = translations(language, name)
    translated = []
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            cell = {**cell, "source": translate_markdown(source, table)}
        translated.append(cell)
    return translated
