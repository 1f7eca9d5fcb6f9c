"""handbook.book_site: the Sphinx extension that keeps each page script once and adds the CSS;
the concept diagrams reach a site built with the book's configuration."""

import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import nbformat
from nbformat.v4 import new_markdown_cell, new_notebook
from sphinx.builders.html._assets import _JavaScript

from handbook import book_site, diagrams

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>figures/[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _plain(text: str) -> str:
    """Alt text without markdown's emphasis and code marks, which the <img> alt drops."""
    return re.sub(r"[*_`\\]", "", text).strip()


def jupyter_book() -> str:
    return str(Path(sys.executable).parent / "jupyter-book")


def test_a_body_script_added_twice_is_kept_once():
    body = 'const THEBE_JS_URL = "thebe.js"'
    scripts = [
        _JavaScript("_static/doctools.js", priority=200),
        _JavaScript(None, body=body),  # as the extension added it
        _JavaScript("", body=body),  # as the registry added it again
        _JavaScript("", body="var other = 1"),
    ]
    context = {"script_files": scripts}
    book_site.drop_repeated_scripts(None, "intro", "page.html", context, None)
    assert [script.attributes.get("body") for script in context["script_files"]] == [
        None,
        body,
        "var other = 1",
    ]
    assert context["script_files"] is scripts  # the builder's own list, changed in place


def test_the_stylesheet_ships_with_the_package():
    assert (book_site.STATIC_DIR / book_site.STYLESHEET).is_file()


def _diagram_images() -> list[tuple[str, str]]:
    """``(alt, target)`` of every concept diagram (``figures/*.svg``) a chapter's markdown shows."""
    images = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                images += [
                    (m["alt"].strip(), m["src"]) for m in MARKDOWN_IMAGE.finditer(cell.source)
                ]
    return images


def test_the_diagrams_reach_the_built_site_with_their_alt_text(tmp_path):
    """Jupyter Book, with the book's own configuration, builds a page showing every diagram the
    chapters show, as the chapters write it, from a folder staged as `handbook book` stages one:
    each diagram is copied into the site and shown by an <img> with the notebook's alt text."""
    site = tmp_path / "site"
    (site / "notebooks").mkdir(parents=True)
    for name in ("_config.yml", "references.bib"):
        shutil.copy2(ROOT / name, site / name)
    diagrams.copy_figures(site / "notebooks")
    images = _diagram_images()
    assert images, "no chapter shows a diagram yet (figures/NAME.svg in a markdown cell)"
    cells = [new_markdown_cell("# Every diagram")]
    cells += [new_markdown_cell(f"![{alt}]({target})") for alt, target in images]
    page = new_notebook(cells=cells)
    nbformat.write(page, site / "notebooks" / "diagrams.ipynb")
    (site / "_toc.yml").write_text("format: jb-book\nroot: notebooks/diagrams\n")
    result = subprocess.run(
        [
            jupyter_book(),
            "build",
            str(site),
            "--path-output",
            str(tmp_path / "out"),
            "--warningiserror",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html_dir = tmp_path / "out" / "_build" / "html"
    html = (html_dir / "notebooks" / "diagrams.html").read_text(encoding="utf-8")
    shown = {
        (_plain(unescape(alt)), Path(src).name)
        for src, alt in (
            (re.search(r'src="([^"]+)"', tag).group(1), re.search(r'alt="([^"]*)"', tag).group(1))
            for tag in re.findall(r"<img\s[^>]*>", html)
        )
    }
    missing = [
        f"{target}: {alt}"
        for alt, target in images
        if (_plain(alt), Path(target).name) not in shown
        or not (html_dir / "_images" / Path(target).name).is_file()
    ]
    assert not missing, "not on the built page with its alt text:\n" + "\n".join(missing)
