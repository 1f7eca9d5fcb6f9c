"""Importing a translation worksheet (``handbook translations --import-worksheet``)."""

from babel.messages.catalog import Catalog

from handbook import i18n, worksheets


def test_import_keeps_indentation_and_reads_the_fuzzy_mark(tmp_path, monkeypatch):
    """A list item's continuation paragraph is indented in the English; its translation must
    stay indented, or the Chinese page ends the list there. Only ``(fuzzy)``'s space goes."""
    monkeypatch.setattr(i18n, "catalog_dir", lambda language: tmp_path)
    continuation, plain = "   Then run the check cell below it.", "Plain text."
    catalog = Catalog(locale="zh_CN")
    catalog.add(continuation)
    catalog.add(plain)
    i18n.write_catalog(catalog, tmp_path / "page.po")
    mark = worksheets._translation_mark("zh_CN")
    sheet = "\n".join(
        ["# page (zh_CN)", "# catalog: page"]
        + ["<<<< 1 >>>>", continuation, mark, "   然后运行它下面的检查单元格。"]
        + ["<<<< 2 >>>>", plain, mark, "(fuzzy) 普通文本。"]
    )
    assert worksheets.import_into_catalog("zh_CN", sheet) == ("page", 2)
    imported = i18n.read_catalog(tmp_path / "page.po")
    assert imported.get(continuation).string == "   然后运行它下面的检查单元格。"
    assert not imported.get(continuation).fuzzy
    assert imported.get(plain).string == "普通文本。"
    assert imported.get(plain).fuzzy
