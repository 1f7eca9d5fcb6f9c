"""handbook.book_site: the Sphinx extension that keeps each page script once and adds the CSS."""

from sphinx.builders.html._assets import _JavaScript

from handbook import book_site


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
