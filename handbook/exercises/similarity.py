"""Copies noticed: the solution cells of a class compared pair by pair, exercise by exercise.

Each solution cell is parsed and reduced to a stream of tokens that a copyist's usual disguises
do not change: every name the learner chose (variables, arguments, functions, classes, import
aliases) is erased to ``_``, docstrings and comments are dropped, top-level functions and classes
are put in one order (a reordered helper changes nothing), while what carries the work is kept:
the shape of the code, the operators, the attributes and keywords it calls (``.argmax``,
``dim=``) and the constants; a string constant counts word by word, so an open answer copied
with a few words changed is seen too. Two streams are compared with :mod:`difflib`
(``SequenceMatcher.ratio``: 1.0 means the same stream, 0.0 nothing in common).

Short solutions prove nothing (two people write ``return (a == b).mean()`` alike), nor do those
that match the book itself: a solution shorter than ``min_tokens``, or as similar as the
threshold to the book's solution cell or to the student edition's stub, is left out, since two
such cells would resemble each other through the book.
"""

from __future__ import annotations

import ast
import csv
import difflib
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Pairs at least this similar (``SequenceMatcher.ratio`` of the normalised streams) are listed.
THRESHOLD = 0.85
#: Solutions with fewer normalised tokens than this are too short to tell a copy from a peer.
MIN_TOKENS = 40

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class CopyPair:
    """Two submissions whose solutions of one exercise are ``similarity`` alike (0 to 1)."""

    exercise_id: str
    first: str
    second: str
    similarity: float


class _EraseNames(ast.NodeTransformer):
    """Names the learner chose become ``_``; docstrings and other bare strings are dropped."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = "_"
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = "_"
        node.annotation = None
        return self.generic_visit(node)

    def visit_alias(self, node: ast.alias) -> ast.AST:
        if node.asname:
            node.asname = "_"
        return node

    def _visit_definition(self, node: ast.AST) -> ast.AST:
        node.name = "_"
        return self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_definition

    def visit_Expr(self, node: ast.Expr) -> ast.AST | None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None  # a docstring, or a string left as a comment
        return self.generic_visit(node)


def _tokens(node: ast.AST) -> Iterator[str]:
    """The node's type, then what it holds that is not a learner's name, depth first."""
    yield type(node).__name__
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            yield from _WORD.findall(node.value.lower())
        else:
            yield repr(node.value)
    elif isinstance(node, ast.Attribute):
        yield node.attr
    elif isinstance(node, ast.keyword) and node.arg:
        yield node.arg
    elif isinstance(node, ast.alias):
        yield node.name
    elif isinstance(node, ast.ImportFrom) and node.module:
        yield node.module
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.expr_context):
            yield from _tokens(child)


def normalized_tokens(source: str) -> list[str] | None:
    """``source``'s token stream with the learner's names erased (None when it does not parse).

    Top-level definitions come after the other statements, sorted, so their order does not
    matter; comments vanish with the parse.
    """
    try:
        tree = _EraseNames().visit(ast.parse(source))
    except (SyntaxError, ValueError):
        return None
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    statements = [node for node in tree.body if not isinstance(node, definitions)]
    streams = [list(_tokens(node)) for node in statements]
    streams += sorted(list(_tokens(node)) for node in tree.body if isinstance(node, definitions))
    return [token for stream in streams for token in stream]


def similarity(first: Sequence[str], second: Sequence[str]) -> float:
    """How alike two token streams are: ``SequenceMatcher.ratio`` (1.0 the same, 0.0 nothing)."""
    return difflib.SequenceMatcher(None, first, second, autojunk=False).ratio()


def check_threshold(threshold: float) -> None:
    """ValueError unless ``threshold`` is a similarity above 0 and at most 1."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"expected a similarity threshold above 0 and at most 1, got {threshold}")


def find_copies(
    solutions: Mapping[str, Mapping[str, str]],
    book: Mapping[str, Sequence[str]] | None = None,
    *,
    threshold: float = THRESHOLD,
    min_tokens: int = MIN_TOKENS,
) -> list[CopyPair]:
    """Pairs of submissions whose solutions of one exercise are at least ``threshold`` alike.

    ``solutions`` maps a submission's label to its solution cells (exercise id -> source);
    ``book`` maps an exercise id to the book's own cells for it (its solution cell, the student
    edition's stub): a solution as alike as ``threshold`` to one of them is left out, as is one
    shorter than ``min_tokens`` tokens or that does not parse. Most similar first.
    """
    check_threshold(threshold)
    book = book or {}
    exercise_ids = sorted({item for cells in solutions.values() for item in cells})
    pairs = []
    for exercise_id in exercise_ids:
        known = [
            tokens for source in book.get(exercise_id, ()) if (tokens := normalized_tokens(source))
        ]
        candidates = []
        for label in sorted(solutions):
            source = solutions[label].get(exercise_id)
            tokens = normalized_tokens(source) if source is not None else None
            if tokens is None or len(tokens) < min_tokens:
                continue
            if any(similarity(tokens, other) >= threshold for other in known):
                continue
            candidates.append((label, tokens))
        for (first, a), (second, b) in itertools.combinations(candidates, 2):
            score = similarity(a, b)
            if score >= threshold:
                pairs.append(CopyPair(exercise_id, first, second, round(score, 3)))
    return sorted(pairs, key=lambda pair: (-pair.similarity, pair.exercise_id, pair.first))


def format_copies(pairs: Sequence[CopyPair], threshold: float = THRESHOLD) -> str:
    """The report printed after the grade table: one line per pair, or that there is none."""
    rule = (
        f"similarity at least {threshold:.2f} after names, comments and docstrings are set "
        "aside; short solutions and those close to the book's own are left out"
    )
    if not pairs:
        return f"Possible copies: none ({rule})."
    width = max(len(pair.first) for pair in pairs)
    lines = [f"Possible copies ({rule}), to read side by side:"]
    lines += [
        f"  exercise {pair.exercise_id}: {pair.first.ljust(width)}  ~  {pair.second}  "
        f"{pair.similarity:.3f}"
        for pair in pairs
    ]
    return "\n".join(lines)


def write_copies(pairs: Sequence[CopyPair], path: Path) -> Path:
    """``path`` (``copies.csv``): ``exercise``, ``first``, ``second``, ``similarity``; the header
    alone when no pair is above the threshold."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["exercise", "first", "second", "similarity"])
        for pair in pairs:
            writer.writerow([pair.exercise_id, pair.first, pair.second, f"{pair.similarity:.3f}"])
    return path
