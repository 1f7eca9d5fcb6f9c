"""Shared service: a translation catalog as a plain-text worksheet, and back (issue 25).

A PO file escapes quotes, backslashes and line breaks, which a translator writing markdown with
formulas gets wrong; a worksheet (``handbook translations --export-worksheet CATALOG``) holds
each entry as an ``<<<< n >>>>`` line, the English, a ``---- zh_CN ----`` line and the
translation, nothing escaped. :func:`import_worksheet` writes the translations back into the
catalog (:mod:`handbook.i18n`), refusing an entry whose English is no longer the catalog's.
"""

from __future__ import annotations

import re

from handbook import i18n

_ENTRY_MARK = re.compile(r"^<<<< (\d+) >>>>$")


def _translation_mark(language: str) -> str:
    return f"---- {language} ----"


def export_worksheet(language: str, name: str) -> str:
    """The catalog ``name`` of ``language`` as plain text: each entry an ``<<<< n >>>>`` line,
    the English, a ``---- zh_CN ----`` line and the translation (empty, or the current one; a
    fuzzy one follows ``(fuzzy)``). Nothing is escaped, unlike a PO file."""
    catalog = i18n.read_catalog(i18n.catalog_path(language, name))
    lines = [
        f"# {name} ({language}): write each translation below its '{_translation_mark(language)}'"
        " line; keep every other line as it is. Import with `python -m handbook translations"
        f" --import-worksheet FILE --lang {language}`.",
        f"# catalog: {name}",
    ]
    number = 0
    for message in catalog:
        if not message.id:
            continue
        number += 1
        where = f" ({'; '.join(message.auto_comments)})" if message.auto_comments else ""
        lines += [f"<<<< {number} >>>>", message.id, _translation_mark(language) + where]
        if message.string:
            lines.append(("(fuzzy) " if message.fuzzy else "") + message.string)
    return "\n".join(lines) + "\n"


def import_worksheet(language: str, text: str) -> tuple[str, int]:
    """:func:`import_into_catalog` while holding :func:`catalogs_locked`."""
    with i18n.catalogs_locked():
        return import_into_catalog(language, text)


def import_into_catalog(language: str, text: str) -> tuple[str, int]:
    """Write the translations of a worksheet (:func:`export_worksheet`) into its catalog: the
    English of each entry must still be the catalog's; an empty translation is left empty, one
    starting ``(fuzzy)`` stays fuzzy. Returns (catalog name, translations written). Raises
    :class:`i18n.TranslationError` naming the entry that does not fit."""
    lines = text.splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines[:3] if line.startswith("# catalog:")]
    if not names:
        raise i18n.TranslationError("not a worksheet: its second line must be '# catalog: NAME'")
    name = names[0]
    path = i18n.catalog_path(language, name)
    if not path.is_file():
        raise i18n.TranslationError(
            f"no catalog {path}: run `python -m handbook translations --update`"
        )
    catalog = i18n.read_catalog(path)
    mark = _translation_mark(language)
    entries: list[tuple[int, list[str], list[str] | None]] = []  # (n, English, translation)
    for line in lines:
        found = _ENTRY_MARK.match(line)
        if found:
            entries.append((int(found.group(1)), [], None))
        elif entries and entries[-1][2] is None and line.startswith(mark):
            entries[-1] = (entries[-1][0], entries[-1][1], [])
        elif entries:
            number, english_lines, translation_lines = entries[-1]
            (english_lines if translation_lines is None else translation_lines).append(line)
    written = 0
    for number, english_lines, translation_lines in entries:
        english = "\n".join(english_lines)
        if translation_lines is None:
            raise i18n.TranslationError(
                f"{name} entry {number}: no '{mark}' line after its English"
            )
        message = catalog.get(english)
        if message is None:
            raise i18n.TranslationError(
                f"{name} entry {number}: its English is not in the catalog (was it edited, or "
                f"the source changed?): {' '.join(english.split())[:70]!r}"
            )
        translation = "\n".join(translation_lines).strip("\n")
        fuzzy = translation.startswith("(fuzzy)")
        if fuzzy:  # only the mark's space goes: a continuation paragraph keeps its indentation
            translation = translation.removeprefix("(fuzzy)").lstrip(" ")
        if translation:
            message.string = translation
            if fuzzy:
                message.flags.add("fuzzy")
            else:
                message.flags.discard("fuzzy")
                message.previous_id = []
            written += 1
    i18n.write_catalog(catalog, path)
    return name, written
