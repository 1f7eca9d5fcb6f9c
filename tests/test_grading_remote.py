"""The grader's wire protocol, in process: a worker-side Peer served by a thread.

What crosses the wire must behave as if the learner's function had been called directly: the
answer's gradient reaches the grader's tensors, a function the check passes is called back (with
its gradient), a module, a random generator and a stream come back changed as the learner left
them, exceptions keep their type, and a pydantic model class validates in the worker.
"""

from __future__ import annotations

import socket
import threading

import numpy as np
import pydantic
import pytest
import torch
from torch import nn

from handbook.exercises import remote
from handbook.exercises.remote import OneShotStream


@pytest.fixture
def connect():
    """``connect(functions)`` -> the grader's Peer talking to a worker Peer in a thread."""
    sockets = []

    def start(functions: dict) -> remote.Peer:
        ours, theirs = socket.socketpair()
        sockets.extend([ours, theirs])
        worker = remote.Peer(theirs, "worker")
        worker.functions = functions
        threading.Thread(target=worker.serve_forever, daemon=True).start()
        return remote.Peer(ours, "grader")

    yield start
    for item in sockets:
        item.close()


def call(peer: remote.Peer, name: str, *arguments, **keywords):
    return remote.RemoteFunction(peer, name)(*arguments, **keywords)


def test_plain_values_keep_their_types(connect) -> None:
    peer = connect({"echo": lambda value: value})
    values = [
        None,
        True,
        3,
        2.5,
        "é",
        (1, [2, 3]),
        {"a": {1, 2}},
        {(1, 2): frozenset({3})},
        b"\x00",
        np.float32(1.5),
        np.arange(6, dtype=np.int16).reshape(2, 3),
        torch.tensor(2.0),
        torch.ones(2, dtype=torch.bfloat16),
        torch.int64,
    ]
    for value in values:
        back = call(peer, "echo", value)
        assert type(back) is type(value)
        if isinstance(value, (np.ndarray, torch.Tensor)):
            assert back.dtype == value.dtype and back.shape == value.shape
            assert (back == value).all()
        else:
            assert back == value


def test_the_answers_gradient_reaches_the_graders_tensor(connect) -> None:
    peer = connect({"loss": lambda x, y: (x**2).sum() + y.sum()})
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = torch.ones(2, requires_grad=True)
    z = torch.zeros(2)  # no gradient wanted, none sent
    result = call(peer, "loss", x, y + z)
    assert result.requires_grad and result.shape == ()
    result.backward()
    assert torch.equal(x.grad, 2 * x.detach()) and torch.equal(y.grad, torch.ones(2))


def test_a_function_passed_by_the_check_is_called_back_with_its_gradient(connect) -> None:
    def gradient_of(forward, inputs):
        inputs = inputs.clone().requires_grad_(True)
        return torch.autograd.grad(forward(inputs).sum(), inputs)[0]

    peer = connect({"gradient_of": gradient_of})
    inputs = torch.tensor([1.0, 2.0])
    assert torch.allclose(call(peer, "gradient_of", lambda t: t**3, inputs), 3 * inputs**2)


def test_in_place_changes_come_back_to_the_graders_objects(connect) -> None:
    def meddle(model, rng, stream, array):
        with torch.no_grad():
            model[0].weight.add_(1.0)
        array.sort()
        return [next(stream), int(rng.integers(1000))]

    peer = connect({"meddle": meddle})
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    weight = model[0].weight.detach().clone()
    rng, twin = np.random.default_rng(5), np.random.default_rng(5)
    stream = OneShotStream(range(10, 20))
    array = np.array([3, 1, 2])
    answer = call(peer, "meddle", model, rng, stream, array)
    assert answer == [10, int(twin.integers(1000))]
    assert torch.equal(model[0].weight.detach(), weight + 1)
    assert rng.integers(1000) == twin.integers(1000)  # the grader's generator moved on as well
    assert stream.read == 1 and next(stream) == 11  # read once there, the next item is ours
    assert array.tolist() == [1, 2, 3]


def test_exceptions_keep_their_type_or_their_name(connect) -> None:
    class Custom(Exception):
        pass

    def fail(kind):
        raise {
            "value": ValueError("bad"),
            "todo": NotImplementedError("Exercise 9.9"),
            "custom": Custom("odd"),
            "exit": SystemExit(3),
        }[kind]

    peer = connect({"fail": fail})
    with pytest.raises(ValueError, match="bad"):
        call(peer, "fail", "value")
    with pytest.raises(NotImplementedError, match="Exercise 9.9"):
        call(peer, "fail", "todo")
    with pytest.raises(remote.LearnerError, match="Custom: odd"):
        call(peer, "fail", "custom")
    with pytest.raises(remote.LearnerError, match="SystemExit: 3"):
        call(peer, "fail", "exit")


def test_a_returned_pydantic_class_validates_in_the_worker(connect) -> None:
    class Body(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        text: str = pydantic.Field(max_length=4)

    peer = connect({"make": lambda: Body})
    stand_in = call(peer, "make")
    assert issubclass(stand_in, pydantic.BaseModel) and stand_in is not Body
    assert stand_in.model_validate({"text": "ok"}).text == "ok"
    with pytest.raises(pydantic.ValidationError) as raised:
        stand_in.model_validate({"text": "too long"})
    assert raised.value.errors()[0]["loc"] == ("text",)
    assert stand_in.model_json_schema()["properties"]["text"]["maxLength"] == 4


def test_an_answer_that_cannot_travel_is_a_named_placeholder(connect) -> None:
    peer = connect({"gen": lambda: (x for x in range(3))})
    answer = call(peer, "gen")
    assert isinstance(answer, remote.Opaque) and answer.type_name == "generator"


def test_a_module_built_by_the_worker_is_never_rebuilt_by_the_grader() -> None:
    codec = remote.Codec(remote.Peer(socket.socket(), "grader"))
    sent = remote.Codec(remote.Peer(socket.socket(), "worker")).encode(nn.Linear(2, 2))
    assert isinstance(codec.decode(sent), remote.Opaque)
