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


def add_static_dir(app, config) -> None:
    """``config-inited`` handler: serve ``book_static/`` as part of the site's ``_static``."""
    config.html_static_path.append(str(STATIC_DIR))


def setup(app) -> dict:
    app.connect("config-inited", add_static_dir)
    app.add_css_file(STYLESHEET)
    # after every extension that adds page scripts (their handlers use the default priority 500)
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    app.connect("html-page-context", add_edition_switch)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
