"""Grading a training loop across the wire: a DataLoader, an optimizer and the dropout draws.

Chapter 0's exercise 0.5 hands the learner's ``train_one_epoch`` a model, a ``DataLoader``, an
optimizer over the model's parameters and a loss function, with torch's global random state
seeded for the dropout draws. The grader calls the function in the sandboxed worker, so each of
these must arrive there as the learner would see it in the notebook, and the trained weights
must come back. The optimizer is rebuilt in the worker only from a whitelist, by reference to a
module of the same call; nothing the worker sends makes the grader build one.
"""

from __future__ import annotations

import json
import os
import socket
import threading

import nbformat
import pytest
import torch
from torch import nn

from handbook import config, train
from handbook.exercises import checks, discovery, grading, remote, reports, student
from handbook.exercises.remote.codec import set_torch_rng


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


def codecs() -> tuple[remote.Codec, remote.Codec]:
    """A grader's and a worker's codec (no connection needed to encode and decode)."""
    return (
        remote.Codec(remote.Peer(socket.socket(), "grader")),
        remote.Codec(remote.Peer(socket.socket(), "worker")),
    )


def loader(count: int = 10, batch_size: int = 4) -> torch.utils.data.DataLoader:
    inputs = torch.arange(count * 2, dtype=torch.float32).reshape(count, 2)
    targets = torch.arange(count) % 3
    return train.make_loader(inputs, targets, batch_size=batch_size, shuffle=True, seed=3)


# The DataLoader ------------------------------------------------------------------------------


def test_a_loader_arrives_as_the_list_of_its_batches(connect) -> None:
    seen = []

    def consume(batches):
        seen.append(len(batches))
        return [(inputs.sum().item(), targets.tolist()) for inputs, targets in batches]

    peer = connect({"consume": consume})
    expected = [(inputs.sum().item(), targets.tolist()) for inputs, targets in loader()]
    assert call(peer, "consume", loader()) == expected  # the same seeded shuffle
    assert seen == [3]  # 10 examples in batches of 4: len() works, the last batch is smaller
    assert sorted(sum((targets for _, targets in expected), [])) == sorted(
        (torch.arange(10) % 3).tolist()
    )


def test_a_loader_round_trips_through_the_codec() -> None:
    grader, worker = codecs()
    batches = worker.decode(json.loads(json.dumps(grader.encode(loader(6, 4)))))
    assert isinstance(batches, list) and [len(b[0]) for b in batches] == [4, 2]
    assert all(isinstance(tensor, torch.Tensor) for batch in batches for tensor in batch)


# The optimizer -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95)),
        lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=0.2),
    ],
    ids=["SGD", "Adam", "AdamW"],
)
def test_an_optimizer_is_rebuilt_over_the_workers_copy_of_the_model(make) -> None:
    grader, worker = codecs()
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    optimizer = make(model.parameters())
    args, kwargs = grader.encode_arguments((model,), {"optimizer": optimizer})
    assert kwargs["optimizer"]["$"] == "optimizer"
    wire = json.loads(json.dumps({"args": args, "kwargs": kwargs}))
    (copy,), keywords = worker.decode_arguments(wire["args"], wire["kwargs"])
    rebuilt = keywords["optimizer"]
    assert type(rebuilt) is type(optimizer)
    assert [id(p) for p in rebuilt.param_groups[0]["params"]] == [id(p) for p in copy.parameters()]
    hyper = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
    assert {k: v for k, v in rebuilt.param_groups[0].items() if k != "params"} == hyper


def test_an_optimizer_before_its_model_and_with_two_groups_is_rebuilt() -> None:
    grader, worker = codecs()
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    optimizer = torch.optim.SGD(
        [
            {"params": model[0].parameters(), "lr": 0.5},
            {"params": model[1].parameters()},
        ],
        lr=0.1,
    )
    args, _ = grader.encode_arguments((optimizer, model), {})
    (rebuilt, copy), _ = worker.decode_arguments(args, {})
    assert [group["lr"] for group in rebuilt.param_groups] == [0.5, 0.1]
    assert [id(p) for p in rebuilt.param_groups[1]["params"]] == [
        id(p) for p in copy[1].parameters()
    ]


def test_optimizers_that_cannot_travel_stay_opaque_and_say_why() -> None:
    grader, _ = codecs()
    model = nn.Linear(2, 2)
    other = nn.Linear(2, 2)

    def sent(optimizer, *arguments) -> dict:
        return grader.encode_arguments((*arguments, optimizer), {})[0][-1]

    not_listed = sent(torch.optim.Adagrad(model.parameters()), model)
    assert not_listed["$"] == "opaque" and "SGD, Adam, AdamW" in not_listed["text"]
    no_module = sent(torch.optim.SGD(other.parameters(), lr=0.1), model)
    assert no_module["$"] == "opaque" and "belong to no module" in no_module["text"]

    class Custom(torch.optim.SGD):
        pass

    assert sent(Custom(model.parameters(), lr=0.1), model)["$"] == "opaque"
    stepped = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 2)).sum().backward()
    stepped.step()
    assert "already taken steps" in sent(stepped, model)["text"]
    inside = grader.encode_arguments(([torch.optim.SGD(model.parameters(), lr=0.1)], model), {})
    assert inside[0][0]["items"][0]["$"] == "opaque"  # only an argument of the call itself


def test_the_worker_refuses_forged_optimizer_messages() -> None:
    grader, worker = codecs()
    model = nn.Linear(2, 2)
    good, _ = grader.encode_arguments((model, torch.optim.SGD(model.parameters(), lr=0.1)), {})

    def forged(**changes) -> list:
        message = json.loads(json.dumps(good))
        message[1].update(changes)
        return message

    with pytest.raises(ValueError, match="cannot be rebuilt"):
        worker.decode_arguments(forged(kind="LBFGS"), {})
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        worker.decode_arguments(forged(kind="__class__"), {})
    group = good[1]["groups"][0]
    for refs, problem in [
        ([["5", "weight"]], "not a module"),
        ([["0", "missing"]], "does not have"),
    ]:
        with pytest.raises(ValueError, match=problem):
            worker.decode_arguments(forged(groups=[{**group, "params": refs}]), {})
    with pytest.raises(ValueError, match="has no options"):
        worker.decode_arguments(forged(groups=[{**group, "hyper": {"params": 1}}]), {})
    with pytest.raises(ValueError, match="number or a bool"):
        worker.decode_arguments(forged(groups=[{**group, "hyper": {"lr": "0.1"}}]), {})


def test_the_grader_never_builds_an_optimizer_the_worker_sent() -> None:
    _, worker_side = codecs()
    grader_side = remote.Codec(remote.Peer(socket.socket(), "grader"))
    model = nn.Linear(2, 2)
    forged = {
        "$": "optimizer",
        "kind": "SGD",
        "groups": [{"hyper": {}, "params": [["0", "weight"]]}],
    }
    module = worker_side.encode(model)
    (_, decoded), _ = grader_side.decode_arguments([module, forged], {})
    assert isinstance(decoded, remote.Opaque)
    assert isinstance(grader_side.decode(forged), remote.Opaque)  # an answer, or inside a list
    assert worker_side.encode_arguments((torch.optim.SGD(model.parameters(), lr=0.1),), {})[0][0][
        "$"
    ] == ("opaque")


def test_an_opaque_placeholder_says_what_it_stands_for() -> None:
    placeholder = remote.Opaque("Adagrad", "only these optimizers travel")
    with pytest.raises(AttributeError, match="only these optimizers travel"):
        placeholder.step()
    with pytest.raises(TypeError, match="Adagrad that cannot be sent"):
        iter(placeholder)


# The random state ----------------------------------------------------------------------------


def test_the_callers_random_state_reaches_the_worker(connect) -> None:
    """The worker draws what the grader would have drawn, although rebuilding the module
    argument there (``nn.Linear`` initialises its weights) draws from the same generator first
    (in process the two peers share it, so without the state sent the draws would differ)."""
    peer = connect({"draw": lambda module: torch.rand(3)})
    torch.manual_seed(11)
    nn.Linear(4, 4)  # what the grader draws before the call, as a local call would
    expected = torch.rand(3)
    torch.manual_seed(11)
    assert torch.equal(call(peer, "draw", nn.Linear(4, 4)), expected)
    torch.manual_seed(12)
    assert not torch.equal(call(peer, "draw", nn.Linear(4, 4)), expected)


def test_a_malformed_random_state_is_refused() -> None:
    with pytest.raises(ValueError, match="bytes"):
        set_torch_rng(b"\x00" * 10)
    with pytest.raises(ValueError, match="bytes"):
        set_torch_rng(torch.random.get_rng_state())  # a tensor, not bytes


# The whole epoch, in process and through the real grader ------------------------------------


def test_a_remote_epoch_trains_the_graders_model_like_a_local_one(connect) -> None:
    def epoch(model, batches, optimizer, loss_fn):
        model.train()
        total = 0.0
        for inputs, targets in batches:
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            total += loss.item()
        return total

    def run(function) -> tuple[nn.Module, float]:
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.Linear(8, 3))
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
        torch.manual_seed(2)
        return model, function(model, loader(), optimizer, nn.functional.cross_entropy)

    peer = connect({"epoch": epoch})
    local, local_loss = run(epoch)
    remote_model, remote_loss = run(remote.RemoteFunction(peer, "epoch"))
    assert remote_loss == pytest.approx(local_loss, abs=1e-6)
    for (name, mine), theirs in zip(
        remote_model.state_dict().items(), local.state_dict().values(), strict=True
    ):
        assert torch.allclose(mine, theirs, atol=1e-6), name


def grade_answer(tmp_path, source_of_answer) -> checks.ExerciseResult:
    """Grade a chapter-0 student edition whose exercise 0.5 cell holds the given source."""
    source = config.project_root() / "notebooks" / "00_digits.ipynb"
    submission = student.make_student_edition(source, tmp_path / "class" / "alice.ipynb")
    edition = nbformat.read(submission, as_version=4)
    for cell in edition.cells:
        if "exercise-0.5" in cell.metadata.get("tags", []):
            cell.source = source_of_answer
    nbformat.write(edition, submission)
    with open(os.devnull, "w", encoding="utf-8") as quiet:
        (grade,) = grading.grade_class([submission], out_dir=tmp_path / "grades", stream=quiet)
    return next(result for result in grade.results if result.id == "0.5")


def book_solution() -> str:
    source = config.project_root() / "notebooks" / "00_digits.ipynb"
    return discovery.read_cells(source.read_bytes(), discovery.chapter_checks(0)).found["0.5"][1]


def test_the_books_solution_to_exercise_0_5_is_graded_as_passed(tmp_path) -> None:
    result = grade_answer(tmp_path, book_solution())
    assert reports.status_text(result) == "passed", result.messages


def test_an_epoch_that_never_clears_the_gradients_fails_with_the_checks_message(
    tmp_path,
) -> None:
    solution = book_solution()
    assert "        optimizer.zero_grad()\n" in solution
    result = grade_answer(tmp_path, solution.replace("        optimizer.zero_grad()\n", ""))
    assert result.status == checks.FAILED and result.passed < result.total
    assert any("added to the gradients of all the batches before it" in m for m in result.messages)
