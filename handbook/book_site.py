"""A Sphinx extension for the book's site (listed in ``_config.yml``): the book's stylesheet
(``book_static/handbook-site.css``) on every page, and each page's scripts once.

Sphinx 7.4 adds a script that carries only a body (no file) twice when an extension registers it
after the builder has started: once as given (file ``None``) and once more from the registry
(file ``""``), which its de-duplication sees as different. sphinx-thebe does exactly that, and
the second ``const THEBE_JS_URL = ...`` stops every page with "Identifier 'THEBE_JS_URL' has
already been declared". This extension drops the repeats from each page's list of scripts.

It also links every page to the same page in the other edition (issue 25): the English site is
``_build/html``, the Chinese one ``_build/html/zh``, so page ``notebooks/01_attention`` of one is
``zh/notebooks/01_attention.html`` or ``../notebooks/01_attention.html`` from the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).parent / "book_static"
STYLESHEET = "handbook-site.css"


def _script_key(script: Any) -> tuple:
    """What makes two scripts the same: their file (``None`` and ``""`` alike) and attributes."""
    attributes = getattr(script, "attributes", {})
    return (getattr(script, "filename", script) or "", tuple(sorted(attributes.items())))


def drop_repeated_scripts(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context`` handler: keep the first of each of the page's scripts."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique  # the builder restores its own list after each page


#: Each edition: its Sphinx ``language``, the folder of the site it lives in (relative to the
#: English site), and how its link reads.
EDITIONS = {"en": ("", "English", "en"), "zh_CN": ("zh/", "中文", "zh-CN")}


def other_edition(language: str | None) -> str:
    """The edition a page links to: Chinese from English, English from Chinese."""
    return "en" if (language or "en") == "zh_CN" else "zh_CN"


def edition_link(pagename: str, language: str | None) -> str:
    """The relative address of ``pagename`` in the other edition, from this page."""
    here = EDITIONS.get(language or "en", EDITIONS["en"])[0]
    there = EDITIONS[other_edition(language)][0]
    up_to_site = "../" * pagename.count("/")
    up_to_english = "../" * here.count("/")
    return f"{up_to_site}{up_to_english}{there}{pagename}.html"


def add_edition_switch(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context`` handler: a link to this page in the other edition, at the top of
    the page, and as ``<link rel="alternate" hreflang>`` for search engines."""
    if "body" not in context:
        return
    other = other_edition(app.config.language)
    _folder, label, hreflang = EDITIONS[other]
    href = edition_link(pagename, app.config.language)
    context["body"] = (
        f'<p class="handbook-edition-switch"><a href="{href}" hreflang="{hreflang}" '
        f'lang="{hreflang}">{label}</a></p>\n' + context["body"]
    )
    context["metatags"] = (
        context.get("metatags", "")
        + f'\n<link rel="alternate" hreflang="{hreflang}" href="{href}" />'
    )


#: The Chinese edition's web font: the glyphs its pages use, cut from the CJK font the install
#: provides (mplfonts' Noto Sans CJK SC), served only to a browser without a CJK font of its own.
WEBFONT_DIR = "_handbook_webfont"
WEBFONT = "handbook-cjk.woff"
WEBFONT_CSS = "handbook-cjk.css"
_WEBFONT_RULES = """/* The Chinese edition's glyphs (handbook.book_site.write_cjk_webfont): a system
   CJK font is used when there is one (local()); the subset bundled with the site only where
   none is. */
@font-face {
  font-family: "Handbook CJK";
  src: local("Noto Sans CJK SC"), local("Noto Sans SC"), local("Source Han Sans SC"),
    local("PingFang SC"), local("Microsoft YaHei"), url("WEBFONT_FILE") format("woff");
  unicode-range: U+2E80-33FF, U+3400-4DBF, U+4E00-9FFF, U+F900-FAFF, U+FE30-FE4F, U+FF00-FFEF;
  font-display: swap;
}
:root {
  --pst-font-family-base: system-ui, "Handbook CJK", sans-serif;
  --pst-font-family-heading: system-ui, "Handbook CJK", sans-serif;
}
""".replace("WEBFONT_FILE", WEBFONT)


def _common_chinese() -> str:
    """The 3,755 characters of GB 2312's first level (the common ones): the theme's own Chinese
    words, which the staged pages do not hold, are among them."""
    characters = []
    for row in range(0xB0, 0xD8):
        for cell in range(0xA1, 0xFF):
            try:
                characters.append(bytes([row, cell]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return "".join(characters)


def write_cjk_webfont(site_dir: Path, font: Path) -> Path:
    """``site_dir/_handbook_webfont/``: the subset of ``font`` holding every non-ASCII character of
    the staged pages and the common Chinese characters (WOFF), and the stylesheet declaring it;
    the Chinese build serves both (:func:`add_static_dir`). Returns the font file."""
    from fontTools import subset

    text = "".join(
        path.read_text(encoding="utf-8", errors="ignore")
        for path in sorted(site_dir.rglob("*"))
        if path.suffix in (".md", ".inc", ".ipynb", ".yml") and path.is_file()
    )
    wanted = {character for character in text if ord(character) > 0x2000}
    wanted |= set(_common_chinese()) | set("，。：；！？（）、“”‘’《》…—")
    options = subset.Options()
    options.flavor = "woff"
    options.layout_features = ["*"]
    face = subset.load_font(str(font), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(wanted)))
    subsetter.subset(face)
    folder = site_dir / WEBFONT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    subset.save_font(face, str(folder / WEBFONT), options)
    (folder / WEBFONT_CSS).write_text(_WEBFONT_RULES, encoding="utf-8")
    return folder / WEBFONT


def add_static_dir(app, config) -> None:
    """``config-inited`` handler: serve ``book_static/`` as part of the site's ``_static``, and
    in a build that has one (the Chinese edition's) the web font of :func:`write_cjk_webfont`."""
    config.html_static_path.append(str(STATIC_DIR))
    webfont = Path(app.srcdir) / WEBFONT_DIR
    if (webfont / WEBFONT_CSS).is_file():
        config.html_static_path.append(str(webfont))
        app.add_css_file(WEBFONT_CSS)


def setup(app) -> dict:
    app.connect("config-inited", add_static_dir)
    app.add_css_file(STYLESHEET)
    # after every extension that adds page scripts (their handlers use the default priority 500)
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    app.connect("html-page-context", add_edition_switch)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
