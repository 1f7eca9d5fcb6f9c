"""The class of 30 that `make bench` grades with handbook grade, otter-grader and nbgrader: its
submissions and the grades they should get, the two peers' formats, and the comparison's counts
(handbook.exercises.peer_graders). The peers themselves run under `make bench`, not here."""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

import nbformat
import pytest

from handbook.exercises import ch00, peer_graders, sandbox

CHECKS = {
    "0.1": ("normalize_images", ch00.check_normalize_images),
    "0.2": ("accuracy", ch00.check_accuracy),
    "0.3": ("confusion_matrix_counts", ch00.check_confusion_matrix),
    "0.4": ("PREDICTED_PARAMETERS", ch00.check_parameter_prediction),
    "0.5": ("train_one_epoch", ch00.check_train_one_epoch),
}


@pytest.fixture(scope="module")
def class_of_30() -> list[peer_graders.Submission]:
    return peer_graders.class_of_30("/nonexistent/canary.txt")


def test_thirty_submissions_of_every_kind_with_unique_names(class_of_30) -> None:
    assert len(class_of_30) == 30
    assert len({sub.name for sub in class_of_30}) == 30
    counts = collections.Counter(sub.category for sub in class_of_30)
    assert set(counts) == set(peer_graders.CATEGORIES)
    assert counts["forged"] >= 3 and counts["borrowed"] >= 3 and counts["copied"] >= 3
    attacks = {sub.attack for sub in class_of_30 if sub.category == "hostile"}
    assert attacks == set(peer_graders.ATTACKS)
    for sub in class_of_30:
        assert set(sub.answers) <= set(peer_graders.EXERCISES), sub.name
        assert sub.credited <= set(sub.answers), f"{sub.name} is credited for work not handed in"


def test_only_honest_work_is_credited(class_of_30) -> None:
    for sub in class_of_30:
        if sub.category in ("forged", "hostile", "borrowed"):
            attacked = sub.description.split(":", 1)[0]
            assert attacked not in sub.credited, sub.name
        if sub.category == "not done":
            assert sub.points == 0
        if sub.category == "honest":
            assert sub.points >= 1
    copies = [sub for sub in class_of_30 if sub.copy_of]
    originals = {sub.name: sub for sub in class_of_30}
    for copy in copies:
        assert copy.credited == originals[copy.copy_of].credited
        assert copy.answers != originals[copy.copy_of].answers


@pytest.mark.parametrize("category", ["honest", "wrong"])
def test_the_expected_grade_is_what_the_books_own_checks_say(class_of_30, category) -> None:
    """Honest and wrong work run in this process through chapter 0's check functions: each
    exercise passes exactly when the submission should be credited for it (a copy is its
    original renamed: test_renamed_variables_change_the_text_not_the_behaviour)."""
    for sub in class_of_30:
        if sub.category != category:
            continue
        for exercise, source in sub.answers.items():
            namespace: dict = {}
            exec(source, namespace)
            name, check = CHECKS[exercise]
            result = check(namespace[name])
            assert result.ok == (exercise in sub.credited), f"{sub.name} {exercise}: {result}"


def test_renamed_variables_change_the_text_not_the_behaviour() -> None:
    source = "def accuracy(logits, labels):\n    hits = (logits.argmax(1) == labels)\n"
    source += "    return float(hits.float().mean())\n"
    renamed = peer_graders.rename_variables(source, "_x")
    assert "hits_x" in renamed and "logits_x" in renamed and "def accuracy(" in renamed
    namespace: dict = {}
    exec(renamed, namespace)
    assert ch00.check_accuracy(namespace["accuracy"]).ok is False  # no empty-batch error
    assert "hits" not in renamed.replace("hits_x", "")


def test_the_peers_expected_values_come_from_the_books_solution() -> None:
    tests = peer_graders.peer_tests()
    assert set(tests) == set(peer_graders.EXERCISES)
    assert [value for _, _, value in tests["0.3"]][0] == "[[1, 0, 0], [0, 1, 0], [0, 1, 1]]"
    assert tests["0.4"][0][2] == "True"


def test_otter_master_notebook_has_a_question_with_tests_per_exercise() -> None:
    notebook = peer_graders.otter_master_notebook(peer_graders.peer_tests())
    nbformat.validate(notebook)
    raw = [cell.source for cell in notebook.cells if cell.cell_type == "raw"]
    assert raw[0].startswith("# ASSIGNMENT CONFIG")
    assert sum(source.startswith("# BEGIN QUESTION") for source in raw) == 5
    tests = [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.get("outputs") and cell.outputs[0].data
    ]
    assert len(tests) == sum(len(cases) for cases in peer_graders.peer_tests().values())
    solutions = [cell for cell in notebook.cells if peer_graders.by_marker(cell)]
    assert [peer_graders.by_marker(cell) for cell in solutions] == list(peer_graders.EXERCISES)
    assert all("# BEGIN SOLUTION" in cell.source for cell in solutions)


def test_nbgrader_source_notebook_has_a_locked_test_cell_worth_a_point_per_exercise() -> None:
    notebook = peer_graders.nbgrader_source_notebook(peer_graders.peer_tests())
    nbformat.validate(notebook)
    graded = [cell.metadata["nbgrader"] for cell in notebook.cells if "nbgrader" in cell.metadata]
    tests = [meta for meta in graded if meta["grade"]]
    solutions = [meta for meta in graded if meta["solution"]]
    assert [meta["grade_id"] for meta in tests] == [
        "test0_1",
        "test0_2",
        "test0_3",
        "test0_4",
        "test0_5",
    ]
    assert all(meta["locked"] and meta["points"] == 1 for meta in tests)
    assert len(solutions) == 5 and not any(meta["locked"] for meta in solutions)
    assert len({meta["grade_id"] for meta in graded}) == len(graded)


def test_fill_in_replaces_only_the_exercise_cells_and_names_a_missing_one() -> None:
    notebook = peer_graders.nbgrader_source_notebook(peer_graders.peer_tests())
    filled = peer_graders.fill_in(notebook, {"0.2": "accuracy = None\n"}, peer_graders.by_marker)
    changed = [
        index
        for index, (before, after) in enumerate(zip(notebook.cells, filled.cells, strict=True))
        if before.source != after.source
    ]
    assert len(changed) == 1
    assert filled.cells[changed[0]].source == "# exercise 0.2\naccuracy = None\n"
    notebook.cells = [cell for cell in notebook.cells if peer_graders.by_marker(cell) != "0.3"]
    with pytest.raises(ValueError, match="no cell for exercise"):
        peer_graders.fill_in(notebook, {"0.3": "x = 1\n"}, peer_graders.by_marker)


def test_feedback_says_what_was_expected_by_the_word_or_the_value() -> None:
    assert peer_graders.says_expected("Expecting:\n  0.5\nGot:\n  3.0", ["0.5"])
    assert peer_graders.says_expected("\x1b[31massert f(x) == [[1, 0]]\x1b[0m", ["[[1, 0]]"])
    assert not peer_graders.says_expected("AssertionError", ["[[1, 0]]"])
    assert not peer_graders.says_expected("assert ok == True", ["True"])


def _observed(**changes) -> dict:
    observed = {
        "wall_s": 60.0,
        "returncode": 0,
        "stopped_by_wall_limit": False,
        "connections": 0,
        "left_behind": 0,
        "peak_rss_bytes": 2**30,
        "canary_written": False,
    }
    return {**observed, **changes}


def test_score_counts_right_grades_forgeries_and_containment(class_of_30) -> None:
    tests = peer_graders.peer_tests()
    perfect = {sub.name: set(sub.credited) for sub in class_of_30}
    run = peer_graders.ToolRun("perfect", "", perfect, {}, set(), _observed())
    result = peer_graders.score(run, class_of_30, tests)
    assert result["right"] == 30 and result["seconds_per_submission"] == 2.0
    assert result["forgeries_caught"] == result["forgeries"] == 5
    assert all(result["contained"].values())
    assert result["copies_noticed"] == 0 and result["false_copy_pairs"] == 0

    fooled = {name: set(found) for name, found in perfect.items()}
    fooled["forged1"].add("0.2")  # the always-equal answer credited
    fooled["borrowed1"].add("0.1")
    copies = {frozenset({"copied1", "honest1"}), frozenset({"honest2", "honest3"})}
    leaky = _observed(connections=1, canary_written=True, peak_rss_bytes=4 * 2**30)
    run = peer_graders.ToolRun("fooled", "", fooled, {}, copies, leaky)
    result = peer_graders.score(run, class_of_30, tests)
    assert result["right"] == 28
    assert sorted(result["wrongly_graded"]) == ["borrowed1", "forged1"]
    assert result["forgeries_caught"] == 4 and result["borrowed_refused"] == 2
    assert [name for name, ok in result["contained"].items() if not ok] == [
        "network",
        "write outside",
        "memory hog",
    ]
    assert result["copies_noticed"] == 1 and result["false_copy_pairs"] == 1

    table = peer_graders.markdown_table([result], machine="a test", command="make bench")
    assert "| grades right out of 30 | 28 |" in table
    assert "| submissions graded | 30 |" in table
    assert "(not: network, write outside, memory hog)" in table


@pytest.mark.skipif(
    not sandbox.isolation().namespaced, reason="needs Linux namespaces (unshare) as root"
)
def test_handbook_grade_on_three_of_the_class_credits_what_it_should() -> None:
    """The comparison's own path with our grader, on an honest (0.2 and 0.4), a borrowed and a
    hostile (network) submission: each gets exactly the exercises it should, and the probe on
    the wrapper's loopback counts no connection. (Exercise 0.5's check, which trains, is left
    out: under the comparison's 30 s cell limit it can time out on a busy machine.)"""
    names = {"honest5", "borrowed2", "hostile-network"}
    with tempfile.TemporaryDirectory(prefix="test-peer-graders-") as folder:
        root = Path(folder)
        canary = root / "canary.txt"
        subs = [sub for sub in peer_graders.class_of_30(str(canary)) if sub.name in names]
        run = peer_graders.run_handbook(root, subs, canary)
    assert {sub.name: run.credited.get(sub.name) for sub in subs} == {
        sub.name: set(sub.credited) for sub in subs
    }
    assert run.observed["connections"] == 0
    assert not run.observed["stopped_by_wall_limit"]


def test_the_how_to_use_page_includes_a_table_written_by_the_measurement() -> None:
    """book/graders_table.inc is markdown_table's output (`measure --update-page`): every row,
    one column per tool, each cell measured (no attack left unreached)."""
    root = Path(__file__).resolve().parents[1]
    page = (root / "book" / "how-to-use.md").read_text(encoding="utf-8")
    assert "```{include} graders_table.inc" in page
    table = (root / peer_graders.PAGE_INCLUDE).read_text(encoding="utf-8")
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert lines[0] == "| | handbook grade | otter-grader | nbgrader |"
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in lines[2:]}
    assert set(rows) == {
        "submissions graded",
        "seconds per submission",
        "grades right out of 30",
        "forgeries caught",
        "borrowed references refused",
        "hostile submissions contained",
        "copies noticed",
        "feedback says what was expected",
    }
    assert all(len(cells) == 3 and all(cell.strip() for cell in cells) for cells in rows.values())
    assert "not reached" not in table
    assert "Measured by `python -m handbook.exercises.peer_graders measure" in table


def test_a_run_stopped_at_the_wall_limit_is_merged_with_its_continuation(class_of_30) -> None:
    first = peer_graders.ToolRun(
        "peer",
        "one at a time",
        {"honest1": {"0.4"}, "hostile-network": set()},
        {},
        None,
        _observed(wall_s=900.0, stopped_by_wall_limit=True, connections=1),
    )
    second = peer_graders.ToolRun(
        "peer", "one at a time", {"hostile-network": {"0.4"}}, {}, None, _observed(wall_s=100.0)
    )
    merged = peer_graders.merge_runs(first, second)
    assert merged.credited == {"honest1": {"0.4"}, "hostile-network": {"0.4"}}
    assert merged.observed["wall_s"] == 1000.0 and merged.observed["gradings"] == 3
    assert merged.observed["connections"] == 0 and not merged.observed["stopped_by_wall_limit"]
    assert (
        merged.mode
        == "one at a time; continued after the first run stopped at the 15-min wall limit"
    )
    result = peer_graders.score(merged, class_of_30, peer_graders.peer_tests())
    assert result["graded"] == 2 and result["seconds_per_submission"] == pytest.approx(1000 / 3)
