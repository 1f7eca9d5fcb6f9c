"""handbook.learning_path: the chapter graph comes from what the notebooks use, the times from the
last run of each mode, the exercises from their tags."""

from __future__ import annotations

import shutil

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from handbook import learning_path
from handbook.book import chapter_timings


def _chapter(folder, stem, markdown, code, *, duration=None, solutions=()):
    cells = [new_markdown_cell(text) for text in markdown]
    cells += [new_code_cell(source) for source in code]
    for tags in solutions:
        cells.append(new_code_cell("def answer():\n    return 1", metadata={"tags": list(tags)}))
        cells.append(new_code_cell("ch.check_answer(answer)"))
    notebook = new_notebook(cells=cells)
    if duration is not None:
        notebook.metadata["papermill"] = {"duration": duration}
    path = folder / f"{stem}.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def book(tmp_path):
    """Four tiny chapters: 00 introduces train, 01 introduces attention and uses train, 02 uses
    attention and refers back to chapter 1 (and forward to chapter 3), 03 refers to chapters
    0 and 2 only and uses only shared services."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    paths = [
        _chapter(
            folder,
            "00_start",
            ["# 0. Start here\nWe train a model."],
            ["from handbook import train, claims"],
            solutions=[("solution", "hide-input"), ("solution", "kind-predict")],
        ),
        _chapter(
            folder,
            "01_attention",
            ["# 1. Attention"],
            ["import handbook.attention\nfrom handbook import train", "%time 1 + 1"],
        ),
        _chapter(
            folder,
            "02_more",
            ["# 2. More attention", "As chapter 1 showed (and chapter 3 will show) ..."],
            ["from handbook.attention import scaled_dot_product\nfrom handbook.plots import x"],
            solutions=[("solution", "kind-open"), ("solution", "kind-open")],
        ),
        _chapter(
            folder,
            "03_end",
            ["# 3. The end", "See {doc}`the start <../notebooks/00_start>` and chapters 2."],
            ["from handbook import claims, exercises"],
        ),
    ]
    return paths


def _edges(paths):
    chapters = [learning_path.read_chapter(path) for path in paths]
    return {(e.before, e.after): e.reasons for e in learning_path.dependencies(chapters)}


def test_edges_come_from_imports_and_references_back(book):
    assert _edges(book) == {
        (0, 1): ("train",),
        (1, 2): ("attention", learning_path.REFERS_BACK),
        (0, 3): (learning_path.REFERS_BACK,),
        (2, 3): (learning_path.REFERS_BACK,),
    }


def test_shared_services_and_forward_references_link_nothing(book):
    edges = _edges(book)
    assert (2, 3) in edges and edges[(2, 3)] == (learning_path.REFERS_BACK,)  # not from "chapter 3"
    assert not any(after == 2 and before == 0 for before, after in edges)  # plots, claims: shared


def test_referenced_chapters_reads_lists_ranges_and_links():
    read = learning_path.referenced_chapters
    assert read("as chapters 1 and 2 showed; chapter 10 later") == {1, 2, 10}
    assert read("Chapters 3-5 build on it") == {3, 4, 5}
    assert read("{doc}`compression <../notebooks/04_compression>`") == {4}
    assert read("no chapter here, 5 ports") == set()


def test_transitive_reduction_drops_only_implied_edges():
    Edge = learning_path.Edge
    edges = [Edge(0, 1, ("a",)), Edge(1, 2, ("b",)), Edge(0, 2, ("a",)), Edge(0, 3, ("c",))]
    kept = learning_path.transitive_reduction(edges)
    assert [(e.before, e.after) for e in kept] == [(0, 1), (1, 2), (0, 3)]


def test_exercises_are_counted_by_kind(book):
    first = learning_path.read_chapter(book[0])
    assert first.exercises == {"write a function": 1, "predict, then run": 1}
    assert learning_path.read_chapter(book[2]).exercises == {"open investigation": 2}
    assert learning_path.read_chapter(book[0]).title == "Start here"


def test_times_come_from_each_modes_last_run_or_say_not_run_yet(book, tmp_path):
    smoke = tmp_path / "smoke"
    smoke.mkdir()
    _chapter(smoke, "00_start", ["# 0. Start"], [], duration=12.4)
    _chapter(smoke, "01_attention", ["# 1. Attention"], [], duration=135.0)
    chapters = [learning_path.read_chapter(path) for path in book]
    seconds = {
        "smoke": chapter_timings(smoke),
        "full": chapter_timings(tmp_path / "never-run"),
    }
    page = learning_path.render_markdown(
        chapters, learning_path.dependencies(chapters), seconds, figure=None
    )
    rows = {line.split("|")[1].strip(): line for line in page.splitlines() if "notebooks/" in line}
    start, attention, end = (rows[key] for key in sorted(rows) if "02_more" not in key)
    assert "| 12 s / not run yet |" in start and "| 2 min 15 s / not run yet |" in attention
    assert "| not run yet / not run yet |" in end
    assert "nothing before it" in start and "0 (`train`)" in attention
    assert "2: 1 write a function, 1 predict, then run" in start
    assert "Graphviz" in page  # no drawing without dot, and the page says why


def test_write_page_draws_the_reduced_graph_and_links_every_chapter(book, tmp_path):
    target = tmp_path / "site" / "book"
    include = learning_path.write_page(target, {"smoke": {}}, book)
    page = include.read_text()
    for stem in ("00_start", "01_attention", "02_more", "03_end"):
        assert f"<../notebooks/{stem}>" in page
    if shutil.which("dot") is None:  # Graphviz is optional: the page says what is missing
        assert "Graphviz" in page and not (target / learning_path.FIGURE_NAME).exists()
        return
    svg = (target / learning_path.FIGURE_NAME).read_text()
    assert f"]({learning_path.FIGURE_NAME})" in page
    assert svg.lstrip().startswith("<") and "<?xml" not in svg
    assert svg.count('class="edge"') == 3  # 0->1, 1->2, 2->3 drawn; 0->3 implied by them
    assert ">train<" in svg and ">attention<" in svg
