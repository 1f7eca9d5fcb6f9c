"""A Sphinx extension for the book's site (listed in ``_config.yml``): the book's stylesheet
(``book_static/handbook-site.css``) on every page, and each page's scripts once.

Sphinx 7.4 adds a script that carries only a body (no file) twice when an extension registers it
after the builder has started: once as given (file ``None``) and once more from the registry
(file ``""``), which its de-duplication sees as different. sphinx-thebe does exactly that, and
the second ``const THEBE_JS_URL = ...`` stops every page with "Identifier 'THEBE_JS_URL' has
already been declared". This extension drops the repeats from each page's list of scripts.
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


def add_static_dir(app, config) -> None:
    """``config-inited`` handler: serve ``book_static/`` as part of the site's ``_static``."""
    config.html_static_path.append(str(STATIC_DIR))


def setup(app) -> dict:
    app.connect("config-inited", add_static_dir)
    app.add_css_file(STYLESHEET)
    # after every extension that adds page scripts (their handlers use the default priority 500)
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
