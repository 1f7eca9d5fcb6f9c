"""The grader's wire attacked from inside a submission, and writes aimed at what the grader trusts.

A solution cell runs in the sandbox's cell process, which holds the socket the grader reads its
answers from: the cell finds it among its own file descriptors and writes frames of its own
(garbage, a frame announcing a terabyte, JSON nested a million deep, a message that is not an
object, a forged reply claiming the exercise passed), or returns an answer over
``Limits.answer_bytes``. Another cell writes at the grading's output folder, its results store
(which a rerun trusts) and the book's checkout. Each is graded as an error with its reason, and
costs nothing to the other exercise of the same notebook nor to the honest submission graded
beside it. The synthetic exercises and checks are ``tests/test_grading.py``'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_grading import DOUBLE, EXERCISES, LIMITS, statuses, with_checks

from handbook import config
from handbook.exercises import grading, remote, sandbox
from handbook.exercises.remote.peer import check_reply
from handbook.exercises.remote.wire import DEFAULT_MAX_FRAME_BYTES, too_large_text
from handbook.exercises.submission import SubmissionGrade

#: Small enough for a test to go past it quickly, large enough for a 2 MB nested frame.
WIRE_LIMITS = dataclasses.replace(LIMITS, answer_bytes=4 * 2**20)

#: Finds the cell's own connection to the grader (its only socket) and writes a raw frame on it.
WIRE = """\
import os, stat, struct

def _wire():
    for name in os.listdir('/proc/self/fd'):
        try:
            if stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                return int(name)
        except OSError:
            pass

def _frame(payload, length=None):
    data = struct.pack('>Q', len(payload) if length is None else length) + payload
    while data:
        data = data[os.write(_wire(), data):]

"""
WRONG_DOUBLE = "def double(x):\n    return x\n"

ATTACKS = {
    "garbage_bytes": WIRE + "_frame(bytes(range(128, 256)))\n" + WRONG_DOUBLE,
    "unframed_garbage": WIRE
    + "os.write(_wire(), b'hello, grader: here are my answers')\n"
    + WRONG_DOUBLE,
    "cut_json": WIRE + '_frame(b\'{"reply": true, "names": ["dou\')\n' + WRONG_DOUBLE,
    "terabyte_frame": WIRE + "_frame(b'{}', length=2**40)\n" + WRONG_DOUBLE,
    "nested_a_million_deep": WIRE + "_frame(b'[' * 10**6 + b']' * 10**6)\n" + WRONG_DOUBLE,
    "not_an_object": WIRE + '_frame(b\'["reply", true, "names", ["double"]]\')\n' + WRONG_DOUBLE,
    "names_not_strings": WIRE
    + '_frame(b\'{"reply": true, "id": 1, "names": [["double"]]}\')\n'
    + WRONG_DOUBLE,
    "forged_passed": WIRE
    + "import json\n"
    + "_frame(json.dumps({'reply': True, 'id': 1, 'names': ['double'], 'status': 'passed', "
    "'passed': 3, 'total': 3}).encode())\n" + WRONG_DOUBLE,
    "forged_replies": WIRE
    + "import json\n"
    + "for value in (4, -2, 20):\n"
    + "    _frame(json.dumps({'reply': True, 'value': value}).encode())\n"
    + "_frame(json.dumps({'reply': True, 'names': ['double']}).encode())\n"
    + WRONG_DOUBLE,
    "answer_over_the_limit": "def double(x):\n    return 'x' * (5 * 2**20)\n",
}

REASONS = {
    "garbage_bytes": r"the worker sent a malformed message \('utf-8' codec can't decode",
    "unframed_garbage": r"the answer is [0-9,.]+ MiB, over the limit of 4\.0 MiB",
    "cut_json": r"the worker sent a malformed message \(Unterminated string",
    "terabyte_frame": r"the answer is 1,048,576\.0 MiB, over the limit of 4\.0 MiB",
    "nested_a_million_deep": r"the worker sent a malformed message \(maximum recursion depth",
    "not_an_object": r"the worker sent a malformed message \(not a JSON object\)",
    "names_not_strings": r"the worker sent a malformed reply \(names: expected a list of str",
    "forged_passed": r"the worker sent a malformed reply \(unknown fields 'passed', 'status'",
    "forged_replies": r"the worker sent a reply out of turn",
    "answer_over_the_limit": r"the answer is 5\.0 MiB, over the limit of 4\.0 MiB",
}


def _write_attack(targets: list[Path]) -> str:
    """A cell that tries to write every target, then raises naming each refusal it met."""
    return (
        "refused = []\n"
        f"for target in {[str(target) for target in targets]!r}:\n"
        "    try:\n"
        "        with open(target, 'a') as handle:\n"
        '            handle.write(\'{"label": "forged", "results": []}\')\n'
        "    except OSError as error:\n"
        "        refused.append(f'{target} ({error.strerror})')\n"
        "if refused:\n"
        "    raise PermissionError('refused: ' + ', '.join(refused))\n" + DOUBLE
    )


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """One class, graded once with two jobs: the honest submission, one per attack, and (where
    the sandbox has namespaces: elsewhere the grader warns that writes are not contained) one
    that writes at the output folder, the results store and the checkout."""
    root = tmp_path_factory.mktemp("wire-class")
    submissions, out = root / "submissions", root / "grades"
    submissions.mkdir()
    files = {"honest": with_checks(DOUBLE)}
    files.update({name: with_checks(source) for name, source in ATTACKS.items()})
    store = out / "results"
    honest = submissions / "honest.ipynb"
    targets = []
    if sandbox.isolation().namespaced:
        settings = grading._settings_key(EXERCISES, WIRE_LIMITS)
        honest.write_text(files["honest"], encoding="utf-8")
        targets = [
            grading._store_path(store, honest, settings),  # the honest one's stored result
            store / "forged.json",
            out / "forged-grades.csv",
            config.project_root() / "LICENSE",
            config.project_root() / "wire-attack-was-here.txt",
        ]
        files["writes_outside"] = with_checks(_write_attack(targets))
    for name, text in files.items():
        (submissions / f"{name}.ipynb").write_text(text, encoding="utf-8")
    checkout = {target: target.read_bytes() for target in targets if target.is_file()}
    printed = io.StringIO()
    grades = grading.grade_class(
        [submissions], out_dir=out, exercises=EXERCISES, limits=WIRE_LIMITS, jobs=2, stream=printed
    )
    return {
        "grades": {Path(grade.label).stem: grade for grade in grades},
        "printed": printed.getvalue(),
        "out": out,
        "honest": honest,
        "targets": targets,
        "checkout": checkout,
        "submissions": submissions,
    }


def test_the_honest_submission_graded_beside_the_attacks_is_credited(graded):
    honest = graded["grades"]["honest"]
    assert statuses(honest) == {"9.1": "passed", "9.2": "passed"}
    assert (honest.score, honest.problems) == (2, [])


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_an_attack_on_the_wire_is_an_error_with_its_reason(graded, name):
    grade = graded["grades"][name]
    assert statuses(grade) == {"9.1": "error", "9.2": "passed"}, grade.results
    (problem,) = grade.problems
    assert re.search(REASONS[name] + r".* in cell 2 \(exercise 9\.1\)", problem), problem
    row = next(line for line in graded["printed"].splitlines() if line.startswith(f"{name}.ipynb"))
    assert "1/2" in row


def test_writes_aimed_at_the_output_the_store_and_the_checkout_fail(graded):
    if not sandbox.isolation().namespaced:
        pytest.skip("the grader's containment needs Linux namespaces (unshare, setpriv)")
    grade = graded["grades"]["writes_outside"]
    assert statuses(grade) == {"9.1": "error", "9.2": "passed"}
    (problem,) = grade.problems
    assert problem.startswith("cell 2 raised PermissionError: refused: "), problem
    for target in graded["targets"]:  # read-only where the sandbox sees it, absent elsewhere
        assert re.search(
            rf"{re.escape(str(target))} \((Read-only file system|Permission denied|No such file)",
            problem,
        )
    honest_result, *others = graded["targets"]
    for target in others:
        if target in graded["checkout"]:
            assert target.read_bytes() == graded["checkout"][target], target
        else:
            assert not target.exists(), target
    stored = json.loads(honest_result.read_text(encoding="utf-8"))  # what the grader wrote
    assert stored["label"] != "forged" and SubmissionGrade.from_json(stored).score == 2


def test_a_rerun_trusts_only_what_the_grader_stored(graded, monkeypatch):
    def refuse(self) -> None:
        raise AssertionError("a finished submission was graded again")

    monkeypatch.setattr(sandbox.Sandbox, "start", refuse)
    grades = grading.grade_class(
        [graded["submissions"]],
        out_dir=graded["out"],
        exercises=EXERCISES,
        limits=WIRE_LIMITS,
        stream=io.StringIO(),
    )
    assert {Path(grade.label).stem: grade.score for grade in grades} == {
        name: grade.score for name, grade in graded["grades"].items()
    }


# The same defences, one at a time, on a socket pair (no sandbox) ------------------------------


@contextlib.contextmanager
def worker(functions: dict, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
    """A grader-side peer connected to a worker-side peer serving ``functions`` in a thread."""
    ours, theirs = socket.socketpair()
    serving = remote.Peer(theirs, "worker", max_frame_bytes=max_frame_bytes)
    serving.functions = functions

    def serve() -> None:
        with contextlib.suppress(remote.PeerGone):  # the grader side hung up mid-reply
            serving.serve_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    grader = remote.Peer(ours, "grader", max_frame_bytes=max_frame_bytes)
    grader.deadline = time.monotonic() + 30
    try:
        yield grader, theirs
    finally:
        ours.close()
        thread.join(10)
        theirs.close()


def test_an_answer_over_the_limit_is_reported_by_the_worker_not_cut():
    functions = {"big": lambda: "x" * 100_000, "small": lambda: "x"}
    with worker(functions, max_frame_bytes=2**16) as (grader, _):
        with pytest.raises(
            remote.PeerGone, match=r"^the answer is 100,\d{3} bytes, over the limit"
        ):
            remote.RemoteFunction(grader, "big")()
        assert remote.RemoteFunction(grader, "small")() == "x"  # the connection still works
    assert too_large_text(5 * 2**20, 2**22) == ("the answer is 5.0 MiB, over the limit of 4.0 MiB")


def _frame(sock: socket.socket, message: dict) -> None:
    payload = json.dumps(message).encode()
    sock.sendall(struct.pack(">Q", len(payload)) + payload)


def test_each_reply_answers_the_request_it_names():
    """A function that writes a reply of its own on the worker's socket, as a learner's cell
    can: without the request's number it is out of turn at once; with it, it is taken, and the
    real reply is then out of turn for the next request."""
    wire = {}
    functions = {
        "forge": lambda: _frame(wire["socket"], {"reply": True, "value": 4}),
        "forge_numbered": lambda: _frame(wire["socket"], {"reply": True, "id": 2, "value": 4}),
    }
    out_of_turn = r"reply out of turn \(to request None while"
    with (
        worker(functions) as (grader, wire["socket"]),
        pytest.raises(remote.PeerGone, match=out_of_turn),
    ):
        remote.RemoteFunction(grader, "forge")()
    with worker(functions) as (grader, wire["socket"]):
        grader._requests_sent = 1  # the forged reply names request 2, the next one
        assert remote.RemoteFunction(grader, "forge_numbered")() == 4
        with pytest.raises(remote.PeerGone, match=r"out of turn \(to request 2 while request 3"):
            remote.RemoteFunction(grader, "forge_numbered")()


@pytest.mark.parametrize(
    ("reply", "operation", "problem"),
    [
        ({"reply": True, "passed": True}, "call", "unknown fields 'passed'"),
        ({"reply": True, "raised": "boom"}, "call", "raised: expected the type"),
        ({"reply": True, "raised": {"type": 1}}, "call", "raised: expected the type"),
        ({"reply": True, "limit": "cpu"}, "call", "limit: expected 'memory' or 'answer'"),
        ({"reply": True, "limit": "answer", "bytes": "1"}, "call", "the answer's size"),
        ({"reply": True, "names": "double"}, "exec", "names: expected a list of str"),
        ({"reply": True, "names": [1]}, "exec", "names: expected a list of str"),
        ({"reply": True, "changed": []}, "call", "changed: expected an object"),
        ({"reply": True, "graphs": ["1"]}, "call", "graphs: expected a list of int"),
        ({"reply": True, "grads": {}}, "backward", "grads: expected a list"),
    ],
)
def test_a_reply_with_fields_no_worker_sends_is_refused(reply, operation, problem):
    with pytest.raises(remote.PeerGone, match=re.escape(problem)):
        check_reply(reply, operation)
    check_reply({"reply": True, "names": ["double"]}, "exec")
    check_reply({"reply": True, "value": 1, "changed": {}, "graphs": [2]}, "call")


class RawJSON(str):
    """JSON text sent as it is (nesting deeper than ``json.dumps`` will write)."""


def _answer_once(sock: socket.socket, **reply) -> None:
    """Play a worker that reads one request and sends ``reply`` (with the request's number)."""
    (length,) = struct.unpack(">Q", sock.recv(8, socket.MSG_WAITALL))
    request = json.loads(sock.recv(length, socket.MSG_WAITALL))
    fields = [f'"reply": true, "id": {request["id"]}'] + [
        f"{json.dumps(name)}: {value if isinstance(value, RawJSON) else json.dumps(value)}"
        for name, value in reply.items()
    ]
    payload = ("{" + ", ".join(fields) + "}").encode()
    sock.sendall(struct.pack(">Q", len(payload)) + payload)


def _nested(depth: int) -> RawJSON:
    return RawJSON('{"$": "list", "items": [' * depth + "1" + "]}" * depth)


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ({"value": {"$": "exploit"}}, "unknown value tag 'exploit'"),
        ({"value": [1, 2]}, "expected a tagged list, got a bare JSON array"),
        ({"value": {"$": "list"}}, "'items'"),
        ({"value": {"$": "function", "handle": "os.system"}}, "invalid literal for int()"),
        ({"value": {"$": "ndarray", "npy": "not base64!"}}, ""),
        (
            {"value": {"$": "rng", "state": {"$": "dict", "items": [["bit_generator", "Evil"]]}}},
            "expected a NumPy bit generator",
        ),
        ({"value": _nested(300)}, "levels deep, at most 200"),
        ({"value": 1, "changed": {"0": {"$": "tensor", "npy": "%%%"}}}, ""),
    ],
)
def test_a_forged_answer_is_a_malformed_answer_never_an_object(reply, problem):
    """Whatever the worker's side sends as a value is decoded as data or refused whole."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        threading.Thread(target=_answer_once, args=(theirs,), kwargs=reply, daemon=True).start()
        grader = remote.Peer(ours, "grader")
        grader.deadline = time.monotonic() + 30
        # too deep for json.loads (a malformed message) or for decoding (a malformed answer)
        with pytest.raises(remote.PeerGone, match="the worker sent a malformed") as gone:
            remote.RemoteFunction(grader, "double")(np.zeros(2))
    assert problem in str(gone.value)
