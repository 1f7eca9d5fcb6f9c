"""The class of 30 chapter-0 submissions (:func:`class_of_30`), each with the exercises it
*should* be credited with, so that "grades right out of 30" is counted, not judged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from handbook.exercises.peer_graders.answers import BORROWED, FORGED, HONEST, WRONG, hostile_sources

EXERCISES = ("0.1", "0.2", "0.3", "0.4", "0.5")
CATEGORIES = ("honest", "wrong", "not done", "forged", "hostile", "borrowed", "copied")
ATTACKS = ("network", "write outside", "fork bomb", "memory hog", "endless loop")


@dataclass(frozen=True)
class Submission:
    """One student's work: the source of each exercise's cell (an exercise left out is the
    stub, *not done*) and the exercises it should be credited with."""

    name: str
    category: str
    description: str
    answers: Mapping[str, str]
    credited: frozenset[str]
    attack: str | None = None
    copy_of: str | None = None
    wrong: tuple[str, ...] = field(default=())
    #: how feedback may write the expected value besides the peers' test outputs
    expected_values: tuple[str, ...] = field(default=())

    @property
    def points(self) -> int:
        return len(self.credited)


def rename_variables(source: str, suffix: str = "_mine") -> str:
    """A copyist's disguise: every name the cell assigns or takes as an argument gets
    ``suffix``, comments change, the cell keeps working."""
    import ast

    tree = ast.parse(source)
    chosen = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            chosen.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            chosen.add(node.id)
    public = {
        "normalize_images",
        "accuracy",
        "confusion_matrix_counts",
        "train_one_epoch",
        "PREDICTED_PARAMETERS",
    }
    renamed = chosen - public

    class Renamer(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.Name:
            if node.id in renamed:
                node.id += suffix
            return node

        def visit_arg(self, node: ast.arg) -> ast.arg:
            if node.arg in renamed:
                node.arg += suffix
            return node

    return "# my own work\n" + ast.unparse(Renamer().visit(tree)) + "\n"


def _spelled_parameter_count() -> tuple[str, ...]:
    """SmallCNN's true parameter count as feedback may print it (``21578``, ``21,578``)."""
    from handbook.exercises import ch00

    total = sum(ch00.parameter_breakdown().values())
    return (str(total), f"{total:,}")


def class_of_30(canary: str = "/tmp/handbook-graders-canary") -> list[Submission]:
    """Thirty submissions of chapter 0: 6 honest, 5 wrong, 3 not done, 5 forged, 5 hostile,
    3 borrowed from the references, 3 copied; ``canary`` is the file the writing attack aims at.
    """
    prediction = HONEST["0.4"][0]
    subs: list[Submission] = []
    for number in range(4):
        answers = {exercise: HONEST[exercise][number] for exercise in EXERCISES}
        subs.append(
            Submission(
                f"honest{number + 1}",
                "honest",
                "every exercise solved",
                answers,
                frozenset(EXERCISES),
            )
        )
    subs.append(
        Submission(
            "honest5",
            "honest",
            "0.2 and 0.4 solved, the rest not started",
            {
                "0.2": HONEST["0.2"][0].replace("no examples", "nothing to score"),
                "0.4": HONEST["0.4"][1],
            },
            frozenset({"0.2", "0.4"}),
        )
    )
    subs.append(
        Submission(
            "honest6",
            "honest",
            "only the prediction",
            {"0.4": HONEST["0.4"][2]},
            frozenset({"0.4"}),
        )
    )
    for exercise, (mistake, source) in WRONG.items():
        answers, credited = _with_prediction(exercise, source, prediction)
        subs.append(
            Submission(
                f"wrong{exercise.replace('.', '')}",
                "wrong",
                f"{exercise} {mistake}",
                answers,
                frozenset(credited),
                wrong=(exercise,),
                expected_values=_spelled_parameter_count() if exercise == "0.4" else (),
            )
        )
    subs.append(
        Submission("notdone1", "not done", "the student edition untouched", {}, frozenset())
    )
    subs.append(
        Submission("notdone2", "not done", "handed in twice: still untouched", {}, frozenset())
    )
    subs.append(
        Submission(
            "notdone3",
            "not done",
            "0.4 left as None",
            {"0.4": "PREDICTED_PARAMETERS = None\n"},
            frozenset(),
        )
    )
    for number, (trick, (exercise, source)) in enumerate(FORGED.items(), start=1):
        answers, credited = _with_prediction(exercise, source, prediction)
        subs.append(
            Submission(
                f"forged{number}", "forged", f"{exercise}: {trick}", answers, frozenset(credited)
            )
        )
    for attack, source in hostile_sources(canary).items():
        subs.append(
            Submission(
                f"hostile-{attack.replace(' ', '-')}",
                "hostile",
                f"0.1: {attack}",
                {"0.1": source, "0.4": prediction},
                frozenset({"0.4"}),
                attack=attack,
            )
        )
    for number, (trick, (exercise, source)) in enumerate(BORROWED.items(), start=1):
        subs.append(
            Submission(
                f"borrowed{number}",
                "borrowed",
                f"{exercise}: {trick}",
                {exercise: source, "0.4": prediction},
                frozenset({"0.4"}),
            )
        )
    for number in range(3):
        original = subs[number]
        answers = {
            exercise: rename_variables(source, f"_{number}")
            for exercise, source in original.answers.items()
        }
        subs.append(
            Submission(
                f"copied{number + 1}",
                "copied",
                f"{original.name} with renamed variables",
                answers,
                original.credited,
                copy_of=original.name,
            )
        )
    if len(subs) != 30:
        raise AssertionError(f"expected 30 submissions, built {len(subs)}")
    return subs


def _with_prediction(exercise: str, source: str, prediction: str) -> tuple[dict, set]:
    """The answers of a submission whose one wrong or forged answer is ``exercise``: that
    source, and the honest 0.4 prediction beside it (credited) unless 0.4 is the one."""
    answers, credited = {exercise: source}, set()
    if exercise != "0.4":
        answers["0.4"] = prediction
        credited.add("0.4")
    return answers, credited
