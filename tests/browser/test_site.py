"""The site as a learner meets it: every page reachable from the index, in Chromium, offline.

One crawl visits every page once (one browser context, 1280 px wide) and records what it saw;
each test below then asserts one property over all pages, naming the pages that break it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import nbformat
import pytest
import yaml
from conftest import ROOT, SITE_DIR
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
#: Pages a reviewer gets screenshots of (light and dark at 1280 px, light at 390 px).
SCREENSHOT_PAGES = (
    "book/intro.html",
    "notebooks/00_digits.html",
    "notebooks/01_attention.html",
    "book/ledger.html",
    "zh/notebooks/01_attention.html",
    "zh/book/ledger.html",
)
#: The Chinese edition's folder in the site (handbook.book_site.EDITIONS).
CHINESE = "zh/"
#: The chapter whose first concept diagram is also shot alone (issue 23: chapter 1's screenshots).
DIAGRAM_SCREENSHOT_PAGE = "notebooks/01_attention.html"
#: The lowest contrast ratio text may have against its background (WCAG's floor for large text;
#: syntax-highlighting colours sit between it and the 4.5 of body text).
MINIMUM_CONTRAST = 3.0

_NO_TRANSITIONS = "*, *::before, *::after { transition: none !important; }"

_CONTRAST_SCRIPT = """() => {
  const parse = (text) => {
    const match = text.match(/rgba?\\(([^)]+)\\)/);
    if (!match) return null;
    const parts = match[1].split(',').map(Number);
    return {r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1};
  };
  const channel = (value) => {
    value /= 255;
    return value <= 0.03928 ? value / 12.92 : Math.pow((value + 0.055) / 1.055, 2.4);
  };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const background = (element) => {
    for (let node = element; node; node = node.parentElement) {
      const colour = parse(getComputedStyle(node).backgroundColor);
      if (colour && colour.a > 0.5) return colour;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const selector = 'main p, main li, main td, main th, main h1, main h2, main h3, main pre, ' +
    'main .verdict, main .handbook-check, main summary, main a, main dt, main dd';
  const low = [];
  let checked = 0;
  for (const element of document.querySelectorAll(selector)) {
    if (!element.offsetParent || !element.textContent.trim()) continue;
    if (element.closest('.headerlink')) continue;  // transparent until hovered
    const colour = parse(getComputedStyle(element).color);
    if (!colour) continue;
    const [front, back] = [luminance(colour), luminance(background(element))];
    const ratio = (Math.max(front, back) + 0.05) / (Math.min(front, back) + 0.05);
    checked += 1;
    const text = element.textContent.trim().slice(0, 60);
    if (ratio < MINIMUM_CONTRAST) low.push(`${ratio.toFixed(2)}: ${text}`);
  }
  return {checked, low: low.slice(0, 5)};
}""".replace("MINIMUM_CONTRAST", str(MINIMUM_CONTRAST))

_PAGE_FACTS_SCRIPT = """() => {
  const urls = (selector, attribute) =>
    Array.from(document.querySelectorAll(selector)).map((node) => node[attribute]);
  const main = document.querySelector('main') || document.body;
  return {
    links: urls('a[href]', 'href'),
    assets: urls('img[src]', 'src').concat(urls('script[src]', 'src'), urls('link[href]', 'href')),
    brokenImages: Array.from(document.images)
      .filter((image) => !image.complete || image.naturalWidth === 0).map((image) => image.src),
    images: Array.from(main.querySelectorAll('img')).map((image) => ({
      src: image.src, alt: (image.getAttribute('alt') || '').trim(),
      loaded: image.complete && image.naturalWidth > 0})),
    mathElements: document.querySelectorAll('main .math').length,
    typeset: document.querySelectorAll('main mjx-container').length,
    rawTex: (main.innerText.match(/\\\\\\(|\\\\\\[|\\$\\$/g) || []).length,
    lang: document.documentElement.lang,
    cjk: (main.innerText.match(/[\\u4e00-\\u9fff]/g) || []).length,
    edition: (document.querySelector('.handbook-edition-switch a') || {}).href || null,
  };
}"""

_SET_MODE_SCRIPT = """(mode) => {
  document.documentElement.dataset.theme = mode;
  document.documentElement.dataset.mode = mode;
}"""

#: A concept diagram as the site shows it: Sphinx copies figures/chNN-topic.svg to _images/.
_DIAGRAM_SELECTOR = "main img[src*='_images/ch'][src$='.svg']"

_OVERFLOW_SCRIPT = "() => document.documentElement.scrollWidth - window.innerWidth"


@dataclass
class PageFacts:
    """What the crawl saw on one page."""

    path: str
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    assets: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    math_elements: int = 0
    typeset: int = 0
    raw_tex: int = 0
    overflow: dict[int, int] = field(default_factory=dict)
    contrast: dict[str, dict] = field(default_factory=dict)
    solutions: list[tuple[bool, bool]] = field(default_factory=list)
    lang: str = ""
    cjk: int = 0  # Chinese characters in the page's main text
    edition: str | None = None  # the link to the same page in the other edition


def _site_path(url: str, site_url: str) -> str | None:
    """The page's path inside the site (``book/intro.html``), None for another origin."""
    if not url.startswith(site_url):
        return None
    path = unquote(urlparse(url).path).lstrip("/")
    return path or "index.html"


def _wait_for_math(page) -> None:
    """Wait until MathJax has typeset the page; return at once when it never loaded (its script
    is deferred, so it has run by the load event): the page's math then stays raw, which
    test_math_is_typeset_from_the_site_itself reports."""
    if not page.locator("main .math").count():
        return
    try:
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=3_000
        )
    except PlaywrightTimeoutError:
        return
    page.evaluate("() => MathJax.startup.promise")


#: For each solution cell: [its code hidden before a click on its summary, shown after it].
_SOLUTIONS_SCRIPT = """() => Array.from(document.querySelectorAll('.cell.tag_solution')).map(
(cell) => {
  const code = cell.querySelector('.cell_input');
  const shown = () => code !== null && code.checkVisibility({visibilityProperty: true}) &&
    code.getBoundingClientRect().height > 0;
  const before = shown();
  cell.querySelector('summary').click();
  return [!before, shown()];
})"""


def _redirect_target(path: str) -> str | None:
    """Where a page that only redirects (the site's index.html) sends the browser."""
    text = (SITE_DIR / path).read_text()
    match = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', text, re.IGNORECASE)
    return match and str(Path(path).parent / match.group(1)).removeprefix("./")


def _listen(page, current: list[PageFacts]) -> None:
    """Record the page's errors and failed responses on the facts of the page being visited."""

    def console(message) -> None:
        if message.type == "error":
            current[0].errors.append(message.text)

    def response(answer) -> None:
        if answer.status >= 400:
            current[0].failed_responses.append(f"{answer.status} {answer.url}")

    page.on("pageerror", lambda error: current[0].errors.append(str(error)))
    page.on("console", console)
    page.on("response", response)


def _visit(page, site_url: str, facts: PageFacts, blocked, screenshots: Path) -> PageFacts:
    path = facts.path
    if target := _redirect_target(path):
        facts.links = [f"{site_url}/{target}"]
        return facts
    page.goto(f"{site_url}/{path}", wait_until="load")
    page.evaluate("async () => { await document.fonts.ready; }")  # the Chinese web font too
    _wait_for_math(page)
    page.add_style_tag(content=_NO_TRANSITIONS)
    seen = page.evaluate(_PAGE_FACTS_SCRIPT)
    facts.links, facts.assets = seen["links"], seen["assets"]
    facts.broken_images, facts.images = seen["brokenImages"], seen["images"]
    facts.math_elements, facts.typeset, facts.raw_tex = (
        seen["mathElements"],
        seen["typeset"],
        seen["rawTex"],
    )
    facts.lang, facts.cjk, facts.edition = seen["lang"], seen["cjk"], seen["edition"]
    name = path.replace("/", "_").removesuffix(".html")
    shoot = path in SCREENSHOT_PAGES
    facts.overflow[DESKTOP["width"]] = page.evaluate(_OVERFLOW_SCRIPT)
    for mode in ("light", "dark"):  # set as the theme's own button sets it
        page.evaluate(_SET_MODE_SCRIPT, mode)
        facts.contrast[mode] = page.evaluate(_CONTRAST_SCRIPT)
        if shoot:
            page.screenshot(path=screenshots / f"{name}-{mode}.png")
    page.evaluate(_SET_MODE_SCRIPT, "light")
    page.set_viewport_size(PHONE)
    facts.overflow[PHONE["width"]] = page.evaluate(_OVERFLOW_SCRIPT)
    if shoot:
        page.screenshot(path=screenshots / f"{name}-phone.png")
    page.set_viewport_size(DESKTOP)
    if path == DIAGRAM_SCREENSHOT_PAGE and page.locator(_DIAGRAM_SELECTOR).count():
        diagram = page.locator(_DIAGRAM_SELECTOR).first
        diagram.scroll_into_view_if_needed()
        diagram.screenshot(path=screenshots / f"{name}-diagram.png")
    if path.removeprefix(CHINESE) == "book/ledger.html":
        page.locator("table.claims-ledger").screenshot(path=screenshots / f"{name}-table.png")
    facts.solutions = [tuple(pair) for pair in page.evaluate(_SOLUTIONS_SCRIPT)]
    facts.blocked = blocked.take()
    return facts


@pytest.fixture(scope="session")
def crawl(browser, site_url, blocked, screenshots) -> dict[str, PageFacts]:
    """Every page reachable from the index, visited once; ``{path: PageFacts}``."""
    context = browser.new_context(viewport=DESKTOP)
    context.route("**/*", blocked.route)
    page = context.new_page()
    current: list[PageFacts] = [PageFacts("")]
    _listen(page, current)
    pages: dict[str, PageFacts] = {}
    queue = ["index.html"]
    while queue:
        path = queue.pop(0)
        if path in pages:
            continue
        current[0] = pages[path] = PageFacts(path)
        _visit(page, site_url, pages[path], blocked, screenshots)
        for link in pages[path].links:
            target = _site_path(urldefrag(link).url, site_url)
            if (
                target
                and target.endswith(".html")
                and target not in pages
                and target != "search.html"
            ):
                queue.append(target)
    context.close()
    return pages


def _problems(crawl: dict[str, PageFacts], attribute: str) -> dict[str, list]:
    return {
        path: getattr(facts, attribute)
        for path, facts in crawl.items()
        if getattr(facts, attribute)
    }


def test_every_chapter_and_page_of_the_table_of_contents_is_reachable(crawl):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    expected = {
        f"{entry}.html" for entry in re.findall(r"(?:file|root): (\S+)", yaml.safe_dump(toc))
    }
    assert expected <= set(crawl), f"not reachable from the index: {sorted(expected - set(crawl))}"


def test_no_page_throws_a_javascript_error(crawl):
    assert not _problems(crawl, "errors")


def test_no_page_asks_for_anything_outside_the_site(crawl):
    assert not _problems(crawl, "blocked"), "the site must work offline"


def test_no_request_of_any_page_fails(crawl):
    assert not _problems(crawl, "failed_responses")


def test_every_image_loads(crawl):
    assert not _problems(crawl, "broken_images")


def _anchors(path: Path, cache: dict[Path, set[str]]) -> set[str]:
    if path not in cache:
        cache[path] = set(re.findall(r'\sid="([^"]+)"', path.read_text(encoding="utf-8")))
    return cache[path]


def test_every_local_link_asset_and_anchor_exists(crawl, site_url):
    broken, cache = [], {}
    for path, facts in crawl.items():
        for url in facts.links + facts.assets:
            address, fragment = urldefrag(url)
            target = _site_path(address, site_url)
            if target is None:
                continue
            file = SITE_DIR / target
            if not file.is_file():
                broken.append(f"{path}: {url} (no such file)")
            elif (
                fragment
                and file.suffix == ".html"
                and unquote(fragment) not in _anchors(file, cache)
            ):
                broken.append(f"{path}: {url} (no such anchor)")
    assert not broken, "\n".join(sorted(set(broken))[:20])


def test_math_is_typeset_from_the_site_itself(crawl):
    pages_with_math = {path: facts for path, facts in crawl.items() if facts.math_elements}
    chapters = [path for path in crawl if path.startswith("notebooks/")]
    assert sum(path in pages_with_math for path in chapters) >= len(chapters) // 2
    untypeset = {
        path: f"{facts.typeset} of {facts.math_elements} typeset, {facts.raw_tex} raw TeX"
        for path, facts in pages_with_math.items()
        if facts.typeset < facts.math_elements or facts.raw_tex
    }
    assert not untypeset
    assert (SITE_DIR / "_static" / "mathjax" / "tex-chtml.js").is_file()


@pytest.mark.parametrize("width", [DESKTOP["width"], PHONE["width"]])
def test_no_page_overflows_horizontally(crawl, width):
    wider = {
        path: f"{facts.overflow[width]} px"
        for path, facts in crawl.items()
        if facts.overflow.get(width, 0) > 1
    }
    assert not wider


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_text_is_readable_in_light_and_dark_mode(crawl, mode):
    low = {
        path: facts.contrast[mode]["low"]
        for path, facts in crawl.items()
        if facts.contrast.get(mode, {}).get("low")
    }
    assert not low, f"text below contrast {MINIMUM_CONTRAST}:1 in {mode} mode"
    assert crawl["book/intro.html"].contrast[mode]["checked"] > 5


def test_every_solution_is_hidden_until_clicked_then_shown(crawl):
    chapters = {
        path: facts.solutions for path, facts in crawl.items() if path.startswith("notebooks/")
    }
    assert all(len(solutions) >= 3 for solutions in chapters.values()), chapters
    wrong = {path: s for path, s in chapters.items() if not all(a and b for a, b in s)}
    assert not wrong, "(hidden before the click, shown after it) per solution"


def test_screenshots_are_written_for_a_reviewer(crawl, screenshots):
    for path in SCREENSHOT_PAGES:
        name = path.replace("/", "_").removesuffix(".html")
        for variant in ("light", "dark", "phone"):
            assert (screenshots / f"{name}-{variant}.png").stat().st_size > 10_000
    diagram = DIAGRAM_SCREENSHOT_PAGE.replace("/", "_").removesuffix(".html")
    assert (screenshots / f"{diagram}-diagram.png").stat().st_size > 2_000


def test_every_image_of_every_chapter_loads_and_has_alt_text(crawl):
    chapters = {path: facts for path, facts in crawl.items() if path.startswith("notebooks/")}
    unloaded = {
        path: [image["src"] for image in facts.images if not image["loaded"]]
        for path, facts in chapters.items()
        if any(not image["loaded"] for image in facts.images)
    }
    assert not unloaded, "images that did not load (naturalWidth 0)"
    without_alt = {
        path: [image["src"] for image in facts.images if not image["alt"]]
        for path, facts in chapters.items()
        if any(not image["alt"] for image in facts.images)
    }
    assert not without_alt, "images without alt text"


def _diagrams_of(chapter_file: Path) -> dict[str, str]:
    """``{NAME.svg: alt text}`` of the concept diagrams a chapter's markdown shows."""
    notebook = nbformat.read(chapter_file, 4)
    pattern = re.compile(r"!\[([^\]]*)\]\(figures/([^)\s]+\.svg)")
    return {
        match.group(2): match.group(1).strip()
        for cell in notebook.cells
        if cell.cell_type == "markdown"
        for match in pattern.finditer(cell.source)
    }


def test_every_chapter_shows_its_concept_diagrams_on_the_site(crawl):
    missing = {}
    for path in _chapter_pages(crawl):
        expected = _diagrams_of(ROOT / "notebooks" / Path(path).with_suffix(".ipynb").name)
        shown = {
            Path(urlparse(image["src"]).path).name
            for image in crawl[path].images
            if image["loaded"] and image["alt"]
        }
        if not expected or set(expected) - shown:
            missing[path] = sorted(set(expected) - shown) or "no diagram in the notebook"
    assert not missing, "diagrams not shown (loaded, with alt text) on the chapter pages"


def _chapter_pages(crawl) -> list[str]:
    return sorted(path for path in crawl if path.startswith("notebooks/"))


def _code_sources(notebook: nbformat.NotebookNode) -> list[str]:
    return [
        cell.source.strip()
        for cell in notebook.cells
        if cell.cell_type == "code" and "injected-parameters" not in cell.metadata.get("tags", [])
    ]


def test_the_ipynb_download_gives_the_source_notebook(crawl, site_url, browser):
    for path in _chapter_pages(crawl):
        downloads = [
            link for link in crawl[path].links if link.endswith(".ipynb") and "/_sources/" in link
        ]
        assert downloads, f"{path}: no .ipynb download button"
        notebook = nbformat.reads((SITE_DIR / _site_path(downloads[0], site_url)).read_text(), 4)
        source = nbformat.read(ROOT / "notebooks" / Path(path).with_suffix(".ipynb").name, 4)
        assert _code_sources(notebook) == _code_sources(source), path


def test_repository_binder_and_colab_buttons_use_the_configured_repository(crawl):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repository = config["repository"]["url"].rstrip("/")
    owner_and_name = urlparse(repository).path.strip("/")
    branch = config["repository"]["branch"]
    for path in _chapter_pages(crawl):
        links = crawl[path].links
        notebook = f"notebooks/{Path(path).stem}.ipynb"
        assert repository in links, path
        assert any(link.startswith(f"{repository}/issues/new") for link in links), path
        assert (
            f"https://mybinder.org/v2/gh/{owner_and_name}/{branch}?urlpath=lab/tree/{notebook}"
            in links
        )
        assert (
            f"https://colab.research.google.com/github/{owner_and_name}/blob/{branch}/{notebook}"
            in links
        )


def _search_term(chapter_file: Path) -> str:
    """The longest word of the chapter's title: a term a learner would search for."""
    notebook = nbformat.read(chapter_file, 4)
    title = notebook.cells[0].source.splitlines()[0]
    return max(re.findall(r"[A-Za-z]{5,}", title), key=len)


#: The search page has answered: its summary is written and its progress line emptied (the
#: summary's words are the theme's, in the page's language).
_SEARCH_DONE = (
    "() => { const s = document.querySelector('.search-summary');"
    " return s && s.textContent.trim().length > 0 && "
    "!document.querySelector('#search-progress:not(:empty)'); }"
)


def _search_misses(browser, site_url, blocked, chapters, edition: str, term_of) -> dict:
    """Each chapter page (``notebooks/NN.html``) whose term (``term_of(notebook file)``) the
    search page of ``edition`` ("" or ``zh/``) does not find: ``{page: (term, first hits)}``.
    Fails on a JavaScript error or a request leaving the site."""
    context = browser.new_context(viewport=DESKTOP)
    context.route("**/*", blocked.route)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    missed = {}
    for path in chapters:
        term = term_of(ROOT / "notebooks" / Path(path).with_suffix(".ipynb").name)
        page.goto(f"{site_url}/{edition}search.html?q={term}")
        page.wait_for_function(_SEARCH_DONE)
        hits = page.eval_on_selector_all("ul.search li a", "links => links.map(a => a.href)")
        if not any(urldefrag(hit).url.endswith(edition + path) for hit in hits):
            missed[path] = (term, hits[:5])
    context.close()
    assert not errors and not blocked.take()
    return missed


def test_search_finds_a_term_from_every_chapter(crawl, browser, site_url, blocked):
    chapters = _chapter_pages(crawl)
    assert not _search_misses(browser, site_url, blocked, chapters, "", _search_term)


def test_the_ledger_page_has_its_figure_and_one_row_per_claim(crawl, browser, site_url):
    from handbook import claims

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{site_url}/book/ledger.html")
    rows = page.locator("table.claims-ledger tbody tr")
    assert rows.count() == len(claims.CLAIM_IDS)
    assert page.locator("img[src*='ledger_verdicts']").count() == 1
    first = rows.first.locator("details")
    assert not first.locator("p").first.is_visible()
    first.locator("summary").click()
    assert first.locator("p").first.is_visible()
    widths = page.eval_on_selector_all(
        "table.claims-ledger tbody tr", "rows => rows.map(row => row.scrollWidth - row.clientWidth)"
    )
    context.close()
    assert max(widths) <= 1, "a ledger row is wider than the page"


# The Chinese edition (issue 25) -------------------------------------------------------------------


def _pages(crawl) -> list[str]:
    """The crawled pages that are pages (not the index's redirect)."""
    return [path for path, facts in crawl.items() if not _redirect_target(path)]


def test_every_page_links_to_the_same_page_in_the_other_edition(crawl, site_url):
    wrong = {}
    for path in _pages(crawl):
        other = path.removeprefix(CHINESE) if path.startswith(CHINESE) else CHINESE + path
        target = _site_path(crawl[path].edition or "", site_url)
        if target != other or not (SITE_DIR / other).is_file():
            wrong[path] = crawl[path].edition
    assert not wrong, "pages whose edition link is missing or goes elsewhere"


def test_every_english_page_has_its_chinese_page_in_chinese(crawl):
    english = [path for path in _pages(crawl) if not path.startswith(CHINESE)]
    assert english and all(crawl[path].lang == "en" for path in english)
    missing = [path for path in english if CHINESE + path not in crawl]
    assert not missing, "English pages whose Chinese page the crawl did not reach"
    not_chinese = {
        CHINESE + path: (crawl[CHINESE + path].lang, crawl[CHINESE + path].cjk)
        for path in english
        if crawl[CHINESE + path].lang != "zh-CN"
        or crawl[CHINESE + path].cjk < (200 if path.startswith("notebooks/") else 20)
    }
    assert not not_chinese, "Chinese pages without <html lang=zh-CN> or without Chinese text"


def _chinese_search_term(chapter_file: Path) -> str:
    """The longest Chinese word (jieba's) of the chapter's Chinese title."""
    import jieba

    from handbook import i18n

    notebook = nbformat.read(chapter_file, 4)
    title = notebook.cells[0].source.splitlines()[0]
    translated = i18n.translations("zh_CN", f"notebooks/{chapter_file.stem}").get(title, "")
    words = [
        word
        for word in jieba.cut_for_search(translated)
        if re.fullmatch(r"[\u4e00-\u9fff]{2,}", word)
    ]
    assert words, f"{chapter_file.name}: its title has no Chinese translation: {translated!r}"
    return max(words, key=len)


def test_the_chinese_search_finds_a_chinese_word_of_every_chapter(
    crawl, browser, site_url, blocked
):
    chapters = _chapter_pages(crawl)
    term = _chinese_search_term
    assert not _search_misses(browser, site_url, blocked, chapters, CHINESE, term)


def test_the_chinese_ledger_has_one_row_per_claim_and_chinese_verdicts(crawl, browser, site_url):
    from handbook import claims

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{site_url}/{CHINESE}book/ledger.html")
    rows = page.locator("table.claims-ledger tbody tr")
    assert rows.count() == len(claims.CLAIM_IDS)
    verdicts = page.locator("table.claims-ledger tbody tr .verdict").all_inner_texts()
    context.close()
    assert verdicts and all(re.search(r"[\u4e00-\u9fff]", verdict) for verdict in verdicts), (
        verdicts
    )


def test_chinese_pages_draw_their_glyphs_from_a_font_the_site_brings(browser, site_url, blocked):
    """The site is offline and a reader's system may lack a CJK font (this CI's Chromium does):
    the Chinese edition brings the glyphs its pages use (handbook.book_site.write_cjk_webfont),
    which the browser loads and can draw the chapter's title with."""
    context = browser.new_context(viewport=DESKTOP)
    context.route("**/*", blocked.route)
    page = context.new_page()
    page.goto(f"{site_url}/{CHINESE}notebooks/01_attention.html", wait_until="load")
    title = page.locator("main h1").first.inner_text()
    loaded = page.evaluate(
        """async (title) => {
          await document.fonts.load(`16px "Handbook CJK"`, title);
          await document.fonts.ready;
          return document.fonts.check(`16px "Handbook CJK"`, title);
        }""",
        title,
    )
    context.close()
    assert re.search(r"[\u4e00-\u9fff]", title), title
    assert loaded, f"the site's CJK font cannot draw {title!r}"
    assert not blocked.take()
