"""The README's *Layout* section stays true: its chapter table follows the naming scheme of the
notebooks in the tree, and every module and package of ``handbook`` is named in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout_section(readme: str) -> str:
    """The text of the README from ``## Layout`` to the next ``## `` heading."""
    start = readme.index("## Layout\n")
    following = readme.find("\n## ", start + 1)
    return readme[start : following if following != -1 else len(readme)]


def chapter_rows(section: str) -> dict[str, list[str]]:
    """The chapter table: notebook name -> the cells of its row (backticks removed)."""
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if cells and re.fullmatch(r"\d\d_\w+", cells[0]):
            rows[cells[0]] = cells
    return rows


def handbook_names() -> list[str]:
    """Every module file and package of handbook, as the README names them (``book.py``,
    ``serving/``); package members are named inside their package's line."""
    package = ROOT / "handbook"
    names = [path.name for path in package.glob("*.py") if path.name != "__init__.py"]
    names += [f"{path.name}/" for path in package.iterdir() if (path / "__init__.py").is_file()]
    return sorted(names)


def test_the_chapter_table_lists_every_notebook_with_the_files_the_scheme_names():
    rows = chapter_rows(layout_section((ROOT / "README.md").read_text()))
    notebooks = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(rows) == notebooks
    for name, cells in rows.items():
        number, topic = name.split("_", 1)
        lesson, plots, verdicts, exercises, figures = cells[1:6]
        assert lesson in (f"{topic}.py", f"{topic}/"), (name, lesson)
        assert (ROOT / "handbook" / lesson).exists(), lesson
        assert plots == "common plots" or plots == f"plots/{topic}.py", (name, plots)
        assert verdicts == f"verdicts/{topic}.py", (name, verdicts)
        assert (ROOT / "handbook" / verdicts).is_file(), verdicts
        assert exercises == f"exercises/ch{number}.py", (name, exercises)
        assert figures == f"ch{number}-*.svg", (name, figures)
        assert list((ROOT / "notebooks" / "figures").glob(figures)), figures
        assert list((ROOT / "tests").glob(cells[6])), (name, cells[6])


def test_every_module_and_package_of_handbook_is_named_in_the_layout():
    section = layout_section((ROOT / "README.md").read_text())
    missing = [name for name in handbook_names() if name not in section]
    assert not missing, f"README's Layout section does not name {missing}"


def test_the_checker_notices_a_module_the_layout_does_not_name(tmp_path):
    section = layout_section("# t\n\n## Layout\n\nbook.py runner.py\n\n## Next\n\ncache.py\n")
    assert "cache.py" not in section and "runner.py" in section
    rows = chapter_rows("| `03_data` | `data.py` | x |\n| chapter | lesson |\n")
    assert list(rows) == ["03_data"]
