"""The learning-path page: which chapter needs which, how long each runs, what its exercises ask.

Nothing on the generated part of the page is typed in:

- **Dependencies** come from the chapter notebooks themselves. A ``handbook`` module that several
  chapters import links the chapter that introduces it (the first to import it) to every later
  one that uses it; a markdown cell that refers to an earlier chapter ("as chapter 2 showed",
  a ``{doc}`` link to it) links that chapter to this one. Shared services that every chapter
  uses (the claims ledger, the exercises' checks, plots, datasets, timing) link nothing.
- **Time per chapter**, in smoke and in full mode, is papermill's duration in the executed copies
  of the last run of each mode, as :func:`handbook.book.chapter_timings` reads them (``not run
  yet`` where there is none).
- **Exercises** are counted by kind from their solution cells' tags (``kind-predict``, ...; no
  kind tag: write a function).

``handbook book`` writes the page's generated part (``book/learning_path.inc``) and the graph
(``book/learning-path.svg``, drawn by Graphviz) into the staged site, so the page reflects the
run the site shows. Each edition writes its own, in the current language
(:func:`handbook.i18n.current_language`): the page's words through ``_()``, a chapter's title
from its notebook's catalog (:func:`display_title`); module names and times stay as they are.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from handbook import config, i18n
from handbook.i18n import _

INCLUDE_NAME = "learning_path.inc"
#: The reason of a link that comes from the later chapter's text, not from an import.
REFERS_BACK = "its text refers back"
FIGURE_NAME = "learning-path.svg"
#: ``handbook`` modules every chapter may use without depending on the chapter that used it first.
SHARED_MODULES = frozenset(
    {
        "bench",
        "book",
        "book_site",
        "cache",
        "claims",
        "cli",
        "config",
        "datasets",
        "diagrams",
        "exercises",
        "learning_path",
        "ledger_page",
        "plots",
        "runner",
    }
)
#: Exercise kind tag -> how the page names it (no kind tag: write a function).
EXERCISE_KINDS = {
    None: "write a function",
    "kind-predict": "predict, then run",
    "kind-derive": "derive",
    "kind-bug": "find the bug",
    "kind-open": "open investigation",
}
_CHAPTER_REFERENCE = re.compile(
    r"\bchapters?\s+(\d{1,2}(?:\s*(?:,|and|or|to|-|–)\s*\d{1,2})*)", re.IGNORECASE
)
_DOC_REFERENCE = re.compile(r"notebooks/(\d{2})_[A-Za-z0-9_]+|\]\((\d{2})_[A-Za-z0-9_]+\.ipynb")


@dataclass
class Chapter:
    number: int
    stem: str
    title: str
    modules: set[str] = field(default_factory=set)
    references: set[int] = field(default_factory=set)
    exercises: dict[str, int] = field(default_factory=dict)
    #: The notebook's first ``# `` heading line as written (its catalog entry), "" if none.
    heading: str = ""


@dataclass(frozen=True)
class Edge:
    """``before`` is needed by ``after``; ``reasons``: the modules, and/or :data:`REFERS_BACK`."""

    before: int
    after: int
    reasons: tuple[str, ...]


def _tags(cell: Mapping) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _source(cell: Mapping) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def handbook_modules(code_cells: Iterable[str]) -> set[str]:
    """The ``handbook`` modules (first name below ``handbook``) the code imports."""
    from handbook import cache

    modules = set()
    for node in ast.walk(cache.parse_notebook_code(list(code_cells))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "handbook":
                names = [f"handbook.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "handbook" and len(parts) > 1:
                modules.add(parts[1])
    return modules


def referenced_chapters(markdown: str) -> set[int]:
    """Chapter numbers a markdown text refers to: "chapter 4", "chapters 1 and 2", "chapters
    1-3", a link to ``notebooks/04_compression``."""
    found = set()
    for match in _CHAPTER_REFERENCE.finditer(markdown):
        numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
        ranged = re.search(r"\d\s*(?:to|-|–)\s*\d", match.group(1))
        if ranged and len(numbers) == 2 and numbers[0] < numbers[1]:
            numbers = list(range(numbers[0], numbers[1] + 1))
        found.update(numbers)
    for match in _DOC_REFERENCE.finditer(markdown):
        found.add(int(match.group(1) or match.group(2)))
    return found


def read_chapter(path: Path) -> Chapter:
    """What one chapter notebook uses, refers to and asks (read as JSON: no kernel, no nbformat)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = notebook.get("cells", [])
    number = int(path.stem[:2])
    markdown = [_source(cell) for cell in cells if cell.get("cell_type") == "markdown"]
    heading = next(
        (line for text in markdown for line in text.splitlines() if line.startswith("# ")), None
    )
    title = heading[2:].strip() if heading else path.stem
    title = re.sub(r"^\d+\s*[.—–-]\s*", "", title)
    code = [_source(cell) for cell in cells if cell.get("cell_type") == "code"]
    exercises: dict[str, int] = {}
    for cell in cells:
        tags = _tags(cell)
        if "solution" in tags:
            kind = next((tag for tag in tags if tag in EXERCISE_KINDS), None)
            name = EXERCISE_KINDS[kind]
            exercises[name] = exercises.get(name, 0) + 1
    references = referenced_chapters("\n".join(markdown)) - {number}
    return Chapter(
        number, path.stem, title, handbook_modules(code), references, exercises, heading or ""
    )


def display_title(chapter: Chapter) -> str:
    """The chapter's title in the current language: its heading's translation in the notebook's
    catalog (``notebooks/01_attention``), without the ``#`` and the number; the English title
    in English or where there is no translation."""
    language = i18n.current_language()
    if language == i18n.ENGLISH or not chapter.heading:
        return chapter.title
    translated = i18n.translations(language, f"notebooks/{chapter.stem}").get(chapter.heading)
    if not translated or not translated.startswith("# "):
        return chapter.title
    return re.sub(r"^\d+\s*[.—–-]\s*", "", translated[2:].strip())


def _kind_text(kind: str, count: int) -> str:
    """``2 predict, then run``: one message per exercise kind, so that a translation can put the
    number where its language does."""
    messages = {
        "write a function": _("{count} write a function"),
        "predict, then run": _("{count} predict, then run"),
        "derive": _("{count} derive"),
        "find the bug": _("{count} find the bug"),
        "open investigation": _("{count} open investigation"),
    }
    return messages.get(kind, f"{{count}} {kind}").format(count=count)


def _list_separator() -> str:
    # Translators: between the items of a list (a dependency's reasons, exercises by kind).
    return _(", ")


def _reason_text(reason: str) -> str:
    """A dependency's reason as the page shows it: a module as code, :data:`REFERS_BACK` in
    words of the current language."""
    return _("its text refers back") if reason == REFERS_BACK else f"`{reason}`"


def dependencies(chapters: Iterable[Chapter]) -> list[Edge]:
    """Every ``before -> after`` link the chapters show (see the module's docstring), sorted."""
    chapters = sorted(chapters, key=lambda chapter: chapter.number)
    numbers = {chapter.number for chapter in chapters}
    reasons: dict[tuple[int, int], list[str]] = {}
    introduced: dict[str, int] = {}
    for chapter in chapters:
        for module in sorted(chapter.modules - SHARED_MODULES):
            first = introduced.setdefault(module, chapter.number)
            if first != chapter.number:
                reasons.setdefault((first, chapter.number), []).append(module)
    for chapter in chapters:
        for earlier in sorted(chapter.references):
            if earlier < chapter.number and earlier in numbers:
                reasons.setdefault((earlier, chapter.number), []).append(REFERS_BACK)
    return [Edge(before, after, tuple(why)) for (before, after), why in sorted(reasons.items())]


def transitive_reduction(edges: Iterable[Edge]) -> list[Edge]:
    """The edges not implied by a longer path (a -> c goes when a -> b -> c exists): the graph
    the reader needs to see, with the same chapters reachable from each chapter."""
    edges = list(edges)
    after: dict[int, set[int]] = {}
    for edge in edges:
        after.setdefault(edge.before, set()).add(edge.after)

    def reachable_without(start: int, skip: int) -> set[int]:
        seen, stack = set(), [n for n in after.get(start, ()) if n != skip]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(after.get(node, ()))
        return seen

    return [edge for edge in edges if edge.after not in reachable_without(edge.before, edge.after)]


def format_seconds(seconds: float | None) -> str:
    """``42 s``, ``3 min 05 s`` (unit symbols, the same in every language), or "not run yet"."""
    if seconds is None:
        return _("not run yet")
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def graph_source(chapters: Iterable[Chapter], edges: Iterable[Edge]) -> str:
    """The dependency graph in Graphviz's language: one box per chapter, the reduced edges."""
    lines = [
        "digraph learning_path {",
        '  rankdir=TB; nodesep=0.3; ranksep=0.35; bgcolor="white";',
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#4a5d7e",'
        ' fontname="Helvetica", fontsize=12, margin="0.12,0.05"];',
        '  edge [color="#4a5d7e", fontname="Helvetica", fontsize=10, fontcolor="#33415c"];',
    ]
    for chapter in sorted(chapters, key=lambda c: c.number):
        title = _wrap(display_title(chapter), 28).replace('"', '\\"')
        lines.append(f'  c{chapter.number} [label="{chapter.number}. {title}"];')
    for edge in edges:
        modules = [reason for reason in edge.reasons if reason != REFERS_BACK]
        label = ", ".join(modules[:2]) + (", ..." if len(modules) > 2 else "")
        attributes = f' [label="{label}"]' if label else ""
        lines.append(f"  c{edge.before} -> c{edge.after}{attributes};")
    lines.append("}")
    return "\n".join(lines) + "\n"


_WIDE = re.compile(r"[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]")


def _wrap(text: str, width: int) -> str:
    """``text`` in lines of at most ``width`` columns (Graphviz's ``\\n``), broken between words;
    a Chinese character is two columns wide, and a line may break after any of them."""
    if _WIDE.search(text):
        lines, line, used = [], "", 0
        for character in text:
            size = 2 if _WIDE.match(character) else 1
            if line and used + size > width:
                lines.append(line.strip())
                line, used = "", 0
            line, used = line + character, used + size
        lines.append(line.strip())
        return "\\n".join(lines)
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\\n".join(lines)


def render_markdown(
    chapters: list[Chapter],
    edges: list[Edge],
    seconds: Mapping[str, Mapping[str, float]],
    *,
    figure: str | None,
) -> str:
    """The page's generated part: the graph (when drawn) and one table row per chapter."""
    chapters = sorted(chapters, key=lambda c: c.number)
    needs: dict[int, list[str]] = {}
    for edge in edges:
        why = _list_separator().join(_reason_text(reason) for reason in edge.reasons)
        needs.setdefault(edge.after, []).append(f"{edge.before} ({why})")
    out = []
    if figure:
        alt = _(
            "Each box is a chapter; an arrow goes from a chapter to a later one that uses a "
            "handbook module it introduced or refers back to it"
        )
        out += [
            f"![{alt}]({figure})",
            "",
            _(
                "An arrow means *read this one first*. Arrows implied by a longer path are left "
                "out of the drawing; the table lists every dependency."
            ),
            "",
        ]
    else:
        out += [_("(Graphviz's `dot` was not installed when this page was built: no drawing.)"), ""]
    header = _("| chapter | needs | last run: smoke / full | exercises |")
    out += [header, "|---|---|---|---|"]
    for chapter in chapters:
        title = display_title(chapter)
        link = f"{{doc}}`{chapter.number}. {title} <../notebooks/{chapter.stem}>`"
        needed = "<br>".join(needs.get(chapter.number, [])) or _("nothing before it")
        times = [
            format_seconds(seconds.get(mode, {}).get(chapter.stem)) for mode in ("smoke", "full")
        ]
        total = sum(chapter.exercises.values())
        kinds = _list_separator().join(
            _kind_text(kind, chapter.exercises[kind])
            for kind in EXERCISE_KINDS.values()
            if kind in chapter.exercises
        )
        exercises = f"{total}: {kinds}" if total else _("none")
        out.append(f"| {link} | {needed} | {times[0]} / {times[1]} | {exercises} |")
    return "\n".join(out) + "\n"


def draw(source: str) -> str | None:
    """SVG of a Graphviz source, or None without ``dot`` (apt install graphviz)."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    result = subprocess.run(
        [dot, "-Tsvg"], input=source, capture_output=True, text=True, check=True
    )
    from handbook import diagrams

    return diagrams.clean_svg(result.stdout)


def write_page(
    target: Path,
    seconds: Mapping[str, Mapping[str, float]],
    notebooks: Iterable[Path] | None = None,
) -> Path:
    """Write the generated part (``target/learning_path.inc``) and its graph
    (``target/learning-path.svg``) for ``notebooks`` (default: the book's chapters), timed by
    ``seconds`` (mode -> chapter -> seconds, as :func:`handbook.book.chapter_timings` reads them
    from each mode's last run). Returns the include."""
    if notebooks is None:
        notebooks = config.chapter_notebooks()
    chapters = [read_chapter(path) for path in notebooks]
    edges = dependencies(chapters)
    target.mkdir(parents=True, exist_ok=True)
    svg = draw(graph_source(chapters, transitive_reduction(edges)))
    if svg is None:
        print("learning path: no graph drawn (install Graphviz: apt install graphviz)")
    elif not (target / FIGURE_NAME).is_file() or (target / FIGURE_NAME).read_text() != svg:
        (target / FIGURE_NAME).write_text(svg, encoding="utf-8")
    page = render_markdown(chapters, edges, seconds, figure=FIGURE_NAME if svg else None)
    include = target / INCLUDE_NAME
    if not include.is_file() or include.read_text(encoding="utf-8") != page:
        include.write_text(page, encoding="utf-8")
    return include
