"""Shared service: which strings a code cell shows a reader (issue 25's code-cell catalogs).

A chapter's code cells put words on the page two ways: the strings they give a figure (titles,
axis labels, legend entries, the keys of a dictionary that become legend entries: any string
argument of a ``plots.*`` call or of matplotlib's text calls, and the ``label=``/``title=``
keywords of any call) and the lines they ``print``. :func:`shown_strings` reads them from the
cell's syntax tree, an f-string as one message whose computed parts are ``{fields}``
(``f"train {len(rows)} rows"`` -> ``train {0} rows``), a printed message one per line.
:mod:`handbook.i18n` keeps those with words as the chapter's catalog of code-cell messages.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

#: Calls whose string arguments a reader sees in a figure or a printed line (besides every
#: ``plots.*`` call), and keywords that hold such strings in any call.
_TEXT_CALLS = {
    "print",
    "set_title",
    "set_xlabel",
    "set_ylabel",
    "set_label",
    "title",
    "xlabel",
    "ylabel",
    "suptitle",
    "text",
    "annotate",
    "legend",
}
_TEXT_KEYWORDS = {"title", "label", "labels", "xlabel", "ylabel", "names", "legend"}


def _called_name(function: ast.expr) -> tuple[str, bool]:
    """``(name, from plots)``: ``plots.loss_curves`` -> ("loss_curves", True)."""
    if isinstance(function, ast.Attribute):
        base = function.value
        from_plots = isinstance(base, ast.Name) and base.id == "plots"
        return function.attr, from_plots
    return (function.id if isinstance(function, ast.Name) else ""), False


def _field_name(value: ast.expr, number: int) -> str:
    return value.id if isinstance(value, ast.Name) else str(number)


def _message_of(node: ast.expr) -> str | None:
    """A string constant as it is, an f-string as a message with ``{fields}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.replace("{", "{{").replace("}", "}}")
    if not isinstance(node, ast.JoinedStr):
        return None
    parts, number = [], 0
    for part in node.values:
        if isinstance(part, ast.Constant):
            parts.append(str(part.value).replace("{", "{{").replace("}", "}}"))
        elif isinstance(part, ast.FormattedValue):
            spec = ""
            if isinstance(part.format_spec, ast.JoinedStr):
                spec_parts = part.format_spec.values
                if not all(isinstance(piece, ast.Constant) for piece in spec_parts):
                    return None
                spec = ":" + "".join(str(piece.value) for piece in spec_parts)
            parts.append(f"{{{_field_name(part.value, number)}{spec}}}")
            number += 1
    return "".join(parts)


def _strings_in(node: ast.AST) -> Iterator[ast.expr]:
    """The strings and f-strings inside ``node``, an f-string whole (not its pieces)."""
    if isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    ):
        yield node
        return
    for child in ast.iter_child_nodes(node):
        yield from _strings_in(child)


def _printed_messages(call: ast.Call) -> list[str]:
    """What ``print(a, "b", f"c {d}")`` prints, as messages: fields for what is computed, one
    message per printed line (the Chinese site translates printed text line by line)."""
    if call.keywords and any(keyword.arg == "sep" for keyword in call.keywords):
        return []
    pieces = []
    for number, argument in enumerate(call.args):
        message = _message_of(argument)
        pieces.append(message if message is not None else f"{{{_field_name(argument, number)}}}")
    return [line for line in " ".join(pieces).split("\n") if line.strip()]


def shown_strings(source: str) -> list[str]:
    """The messages a code cell's ``source`` shows: figure strings and printed lines (above)."""
    from handbook.cache import parse_notebook_code

    found: list[str] = []
    for call in (
        node for node in ast.walk(parse_notebook_code([source])) if isinstance(node, ast.Call)
    ):
        name, from_plots = _called_name(call.func)
        if name == "print":
            found += _printed_messages(call)
            continue
        if from_plots or name in _TEXT_CALLS:
            arguments = [*call.args, *(keyword.value for keyword in call.keywords)]
        else:
            arguments = [kw.value for kw in call.keywords if kw.arg in _TEXT_KEYWORDS]
        found += [
            message
            for argument in arguments
            for node in _strings_in(argument)
            if (message := _message_of(node))
        ]
    return found
