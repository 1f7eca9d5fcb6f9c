"""handbook.book_site: the Sphinx extension that keeps each page script once and adds the CSS;
the concept diagrams reach a site built with the book's configuration."""

import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
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


HIDDEN_GUARD = "assert 'a guard the site hides' != ''"
VISIBLE_CODE = "shown_on_the_site = 'a code cell the site shows'"


@pytest.fixture(scope="module")
def built_page(tmp_path_factory) -> tuple[Path, str]:
    """Jupyter Book, with the book's own configuration, builds one page from a folder staged as
    `handbook book` stages one: every diagram the chapters show, as the chapters write it, and two
    code cells, one of them a build guard tagged ``remove-cell``. ``(html folder, page's HTML)``."""
    folder = tmp_path_factory.mktemp("site")
    site = folder / "site"
    (site / "notebooks").mkdir(parents=True)
    for name in ("_config.yml", "references.bib"):
        shutil.copy2(ROOT / name, site / name)
    diagrams.copy_figures(site / "notebooks")
    cells = [new_markdown_cell("# Every diagram")]
    cells += [new_markdown_cell(f"![{alt}]({target})") for alt, target in _diagram_images()]
    guard = new_code_cell(HIDDEN_GUARD, metadata={"tags": ["remove-cell"]})
    cells += [new_code_cell(VISIBLE_CODE), guard]
    language = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    page = new_notebook(cells=cells, metadata=language)
    nbformat.write(page, site / "notebooks" / "diagrams.ipynb")
    (site / "_toc.yml").write_text("format: jb-book\nroot: notebooks/diagrams\n")
    output = folder / "out"
    command = [jupyter_book(), "build", str(site), "--path-output", str(output)]
    result = subprocess.run(
        command + ["--warningiserror", "--quiet"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html_dir = output / "_build" / "html"
    return html_dir, (html_dir / "notebooks" / "diagrams.html").read_text(encoding="utf-8")


def test_the_diagrams_reach_the_built_site_with_their_alt_text(built_page):
    html_dir, html = built_page
    images = _diagram_images()
    assert images, "no chapter shows a diagram yet (figures/NAME.svg in a markdown cell)"
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


def test_a_cell_tagged_remove_cell_is_left_off_the_site(built_page):
    _html_dir, html = built_page
    text = unescape(re.sub(r"<[^>]+>", "", html))
    assert "a code cell the site shows" in text, "the page's visible code cell is missing"
    assert "a guard the site hides" not in text, "Jupyter Book showed a cell tagged remove-cell"
