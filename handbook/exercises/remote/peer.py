"""The peer: calls across the sandbox's wall, in both directions, and gradients back through it.

The grader (:mod:`handbook.exercises.submission`) runs a chapter's check function in its own
process and hands it a :class:`RemoteFunction` instead of the learner's function; calling it sends
the arguments to the sandboxed worker (:mod:`handbook.exercises.sandbox`), which calls the
learner's function and sends the answer back. Both processes run the same :class:`Peer`, so
either side can call the other while a call is in flight: the worker calls back a function the
check passed as an argument (chapter 9's ``forward``), and a gradient flows back across the wire
in both directions (``loss.backward()`` in the grader asks the worker for the vector-Jacobian
product of the learner's graph).

A request carries a number its reply repeats, and a reply may hold only the fields this module
writes (:func:`check_reply`): a frame the learner's code forged on the worker's socket is
refused. What the learner raised is re-raised in the caller's process by its built-in type
(:func:`raise_if_failed`). Framing and its size limits are :mod:`~handbook.exercises.remote.wire`'s,
what values may cross :mod:`~handbook.exercises.remote.codec`'s.
"""

from __future__ import annotations

import builtins
import json
import socket
import sys
from collections.abc import Callable

from handbook.exercises.remote.codec import (
    Codec,
    after_call_state,
    apply_update,
    is_pydantic_model_class,
    read_plain_value,
    set_torch_rng,
    torch_rng_bytes,
)
from handbook.exercises.remote.wire import (
    DEFAULT_MAX_FRAME_BYTES,
    OUT_OF_MEMORY,
    AnswerTooLarge,
    Connection,
    PeerGone,
    too_large_text,
)

#: Every field a reply may carry; a reply with another one was not written by this module.
REPLY_FIELDS = frozenset(
    {"reply", "id", "raised", "limit", "bytes", "max_bytes", "names", "value", "changed"}
    | {"graphs", "grads", "rejected", "accepted"}
)
#: The field of a call from the grader that carries its torch random state.
RNG_MESSAGE_FIELD = "torch_rng"


class LearnerError(Exception):
    """A learner's exception whose type is not a Python built-in, re-raised by its name."""


def _malformed_reply(problem: str) -> PeerGone:
    return PeerGone(f"the worker sent a malformed reply ({problem})")


def check_reply(reply: dict, operation: str) -> None:
    """Raise :class:`PeerGone` unless ``reply`` has the fields and types this module's
    :meth:`Peer.answer` gives them (the worker's side may be the learner's code)."""
    if unknown := sorted(set(reply) - REPLY_FIELDS):
        raise _malformed_reply(f"unknown fields {', '.join(map(repr, unknown))}")
    raised = reply.get("raised")
    if raised is not None and not (
        isinstance(raised, dict)
        and isinstance(raised.get("type"), str)
        and isinstance(raised.get("message", ""), str)
        and isinstance(raised.get("builtin"), str | None)
    ):
        raise _malformed_reply("raised: expected the type, built-in and message of an exception")
    limit = reply.get("limit")
    if limit is not None and limit not in ("memory", "answer"):
        raise _malformed_reply(f"limit: expected 'memory' or 'answer', got {limit!r}")
    if limit == "answer" and not all(
        type(reply.get(name)) is int for name in ("bytes", "max_bytes")
    ):
        raise _malformed_reply("limit: expected the answer's size and the limit in bytes")
    names = reply.get("names", [])
    if operation == "exec" and not (
        isinstance(names, list) and all(isinstance(name, str) for name in names)
    ):
        raise _malformed_reply("names: expected a list of str")
    if not isinstance(reply.get("changed", {}), dict):
        raise _malformed_reply("changed: expected an object")
    graphs = reply.get("graphs", [])
    if not (isinstance(graphs, list) and all(type(graph) is int for graph in graphs)):
        raise _malformed_reply("graphs: expected a list of int")
    if not isinstance(reply.get("grads", []), list):
        raise _malformed_reply("grads: expected a list")


# The peer ---------------------------------------------------------------------------------


class Peer(Connection):
    """One end of the connection: sends requests, answers the other side's requests meanwhile.

    ``side`` is ``"grader"`` or ``"worker"``; ``deadline`` (``time.monotonic()`` seconds) bounds
    every wait for the other side; ``functions`` maps names the other side may call (the
    learner's functions, on the worker) to callables.
    """

    def __init__(
        self, sock: socket.socket, side: str, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    ):
        super().__init__(sock, max_frame_bytes=max_frame_bytes)
        self.side = side
        self.functions: dict[str | int, Callable] = {}
        self._handles: dict[int, object] = {}
        self._handle_of: dict[int, int] = {}
        self._graphs: dict[int, tuple] = {}
        self._requests_sent = 0

    # handles -------------------------------------------------------------------------------

    def register(self, value: object) -> int:
        """A handle the other side can call ``value`` by (the same one for the same object)."""
        key = id(value)
        if key not in self._handle_of:
            handle = len(self._handles) + 1
            self._handles[handle] = value
            self._handle_of[key] = handle
        return self._handle_of[key]

    def remote_function(self, handle: int) -> RemoteFunction:
        """A stand-in for the function the other side sent as ``handle``."""
        return RemoteFunction(self, handle)

    def remote_model_class(self, handle: int, name: str) -> type:
        """A stand-in for the pydantic model class the worker sent as ``handle``."""
        return _remote_model_class(self, handle, name)

    # requests ------------------------------------------------------------------------------

    def request(self, message: dict) -> dict:
        """Send a request and serve the other side's requests until the reply arrives.

        Each request carries a number its reply must repeat: a frame the learner's code wrote
        on the worker's socket (a forged reply) puts every later reply out of turn, and a reply
        whose fields are not what this module sends is refused (:func:`check_reply`); both
        raise :class:`PeerGone`. So does a reply saying the answer was over the size limit, or
        that the worker ran out of memory (``PeerGone(OUT_OF_MEMORY)``).
        """
        self._requests_sent += 1
        number = self._requests_sent
        self.send({**message, "id": number})
        while True:
            incoming = self.receive()
            if "reply" not in incoming:
                self.answer(incoming)
                continue
            if incoming.get("id") != number:
                raise PeerGone(
                    f"the worker sent a reply out of turn (to request {incoming.get('id')!r} "
                    f"while request {number} was waiting)"
                )
            check_reply(incoming, str(message.get("op")))
            if incoming.get("limit") == "memory":  # the worker's MemoryError
                raise PeerGone(OUT_OF_MEMORY)
            if incoming.get("limit") == "answer":
                raise PeerGone(too_large_text(incoming["bytes"], incoming["max_bytes"]))
            return incoming

    def answer(self, incoming: dict) -> None:
        """Handle one request of the other side and send the reply (with the request's number);
        a reply over the size limit is replaced by one that says so."""
        reply = {**self.handle(incoming), "id": incoming.get("id")}
        try:
            self.send(reply)
        except AnswerTooLarge as error:
            self.send(
                {
                    "reply": True,
                    "id": incoming.get("id"),
                    "limit": "answer",
                    "bytes": error.size,
                    "max_bytes": error.limit,
                }
            )

    def serve_forever(self) -> None:
        """Answer requests until the other side closes the connection (the worker's main loop)."""
        while True:
            try:
                incoming = self.receive()
            except PeerGone:
                return
            self.answer(incoming)

    def handle(self, message: dict) -> dict:
        operation = message.get("op")
        try:
            if operation == "call":
                return self._serve_call(message)
            if operation == "backward":
                return self._serve_backward(message)
            if operation == "method" and self.side == "worker":
                return self._serve_method(message)
            return self.extra_operation(message)
        except PeerGone:
            raise
        except BaseException as error:  # noqa: BLE001 - whatever the learner raised is reported
            if isinstance(error, MemoryError):
                return {"reply": True, "limit": "memory"}
            return {"reply": True, "raised": describe_exception(error)}

    def extra_operation(self, message: dict) -> dict:
        """Operations beyond call/backward (the worker adds ``exec``); unknown ones are refused."""
        return {
            "reply": True,
            "raised": {
                "type": "ValueError",
                "builtin": "ValueError",
                "message": f"unknown operation {message.get('op')!r}",
            },
        }

    def _target(self, key: object) -> Callable:
        if isinstance(key, int) and key in self._handles:
            return self._handles[key]
        if isinstance(key, str) and key in self.functions:
            return self.functions[key]
        raise NameError(f"no function {key!r} to call")

    def _serve_call(self, message: dict) -> dict:
        function = self._target(message.get("target"))
        codec = Codec(self)
        arguments, keywords = codec.decode_arguments(
            list(message.get("args", [])), dict(message.get("kwargs", {}))
        )
        leaves = list(codec.grad_inputs)
        before = [json.dumps(after_call_state(Codec(self), value)) for value in arguments]
        before_kw = {k: json.dumps(after_call_state(Codec(self), v)) for k, v in keywords.items()}
        if self.side == "worker" and RNG_MESSAGE_FIELD in message and "torch" in sys.modules:
            # a worker without torch loaded (no tensor among the arguments, no torch in the
            # learner's cells) has no draws to match, and importing it there may not fit
            set_torch_rng(Codec(self).decode(message[RNG_MESSAGE_FIELD]))
        result = function(*arguments, **keywords)
        out = Codec(self)
        encoded = out.encode(result)
        for tensor in out.grad_inputs:  # answers that carry a gradient back to our leaves
            self._graphs[id(tensor)] = (tensor, leaves)
        changed = {}
        for position, value in enumerate(arguments):
            state = after_call_state(Codec(self), value)
            if json.dumps(state) != before[position]:
                changed[str(position)] = state
        for name, value in keywords.items():
            state = after_call_state(Codec(self), value)
            if json.dumps(state) != before_kw[name]:
                changed[name] = state
        graphs = [id(tensor) for tensor in out.grad_inputs]
        return {"reply": True, "value": encoded, "changed": changed, "graphs": graphs}

    def _serve_backward(self, message: dict) -> dict:
        import torch

        output, leaves = self._graphs[int(message["graph"])]
        gradient = Codec(self).decode(message["gradient"])
        wanted = [leaf for leaf in leaves if leaf.requires_grad]
        grads = (
            torch.autograd.grad(output, wanted, gradient, retain_graph=True, allow_unused=True)
            if wanted and output.requires_grad
            else [None] * len(wanted)
        )
        by_leaf = iter(grads)
        answer = [next(by_leaf) if leaf.requires_grad else None for leaf in leaves]
        codec = Codec(self)
        return {"reply": True, "grads": [None if g is None else codec.encode(g) for g in answer]}

    def _serve_method(self, message: dict) -> dict:
        model = self._target(int(message["handle"]))
        if not is_pydantic_model_class(model):
            raise TypeError("methods can only be called on a pydantic model class")
        if message.get("name") == "model_json_schema":
            return {"reply": True, "value": model.model_json_schema()}
        payload = Codec(self).decode(message["payload"])
        from pydantic import ValidationError

        try:
            instance = model.model_validate(payload)
        except ValidationError as error:
            errors = [
                {"loc": [str(part) for part in item.get("loc", ())], "msg": str(item.get("msg"))}
                for item in error.errors()
            ]
            return {"reply": True, "rejected": errors}
        names = payload if isinstance(payload, dict) else {}
        kept = {str(name): getattr(instance, str(name), None) for name in names}
        return {"reply": True, "accepted": Codec(self).encode(kept)}

    # calling the other side --------------------------------------------------------------------

    def call(self, target: str | int, arguments: tuple, keywords: dict) -> object:
        """Call ``target`` on the other side; the answer, with in-place changes applied."""
        codec = Codec(self)
        encoded, encoded_keywords = codec.encode_arguments(arguments, keywords)
        message = {"op": "call", "target": target, "args": encoded, "kwargs": encoded_keywords}
        if self.side == "grader" and codec.sent_torch:  # after the loaders drew their seeds
            message[RNG_MESSAGE_FIELD] = Codec(self).encode(torch_rng_bytes())
        reply = self.request(message)
        raise_if_failed(reply)
        answer = Codec(self)
        try:
            result = answer.decode(reply.get("value"))
            for key, state in dict(reply.get("changed", {})).items():
                original = arguments[int(key)] if key.isdigit() else keywords.get(key)
                apply_update(original, Codec(self).decode_after_call(state))
        except Exception as error:  # np.load's EOFError included: the answer is the worker's
            raise PeerGone(f"the worker sent a malformed answer ({error})") from error
        return self._attach_gradients(
            result, answer.grad_inputs, codec.grad_inputs, list(reply.get("graphs", []))
        )

    def _attach_gradients(self, result, answers: list, inputs: list, graphs: list):
        """Connect each answer tensor that requires gradients to our inputs through the peer.

        ``answers`` are the decoded answer tensors that came with a gradient graph on the other
        side, ``inputs`` our argument tensors that require gradients (in the order sent).
        """
        if not answers:
            return result
        connected = {}
        for tensor, graph in zip(answers, graphs, strict=False):
            tensor.requires_grad_(False)
            if inputs:
                connected[id(tensor)] = _RemoteGradient.apply(
                    tensor, self, int(graph), len(inputs), *inputs
                )
            else:  # a fresh leaf on the other side: nothing of ours to reach
                connected[id(tensor)] = tensor.detach().requires_grad_(True)
        return _replace_tensors(result, connected)

    def backward(self, graph: int, gradient) -> list:
        reply = self.request(
            {"op": "backward", "graph": graph, "gradient": Codec(self).encode(gradient)}
        )
        raise_if_failed(reply)
        codec = Codec(self)
        return [None if item is None else codec.decode(item) for item in reply["grads"]]


def _replace_tensors(value: object, replacements: dict[int, object]) -> object:
    if id(value) in replacements:
        return replacements[id(value)]
    if isinstance(value, list):
        return [_replace_tensors(item, replacements) for item in value]
    if isinstance(value, tuple):
        return tuple(_replace_tensors(item, replacements) for item in value)
    if isinstance(value, dict):
        return {key: _replace_tensors(item, replacements) for key, item in value.items()}
    return value


def _make_remote_gradient():
    import torch

    class RemoteGradient(torch.autograd.Function):
        """Identity on the answer forward; backward asks the other side for the gradients."""

        @staticmethod
        def forward(ctx, answer, peer, graph, count, *inputs):
            ctx.peer, ctx.graph, ctx.count = peer, graph, count
            return answer.clone()

        @staticmethod
        def backward(ctx, gradient):
            grads = ctx.peer.backward(ctx.graph, gradient)
            grads = (grads + [None] * ctx.count)[: ctx.count]
            return (None, None, None, None, *grads)

    return RemoteGradient


class _LazyGradient:
    _function = None

    def apply(self, *arguments):
        if self._function is None:
            type(self)._function = _make_remote_gradient()
        return self._function.apply(*arguments)


_RemoteGradient = _LazyGradient()


def describe_exception(error: BaseException) -> dict:
    """The plain-data form of an exception: its type, its nearest built-in type, its message."""
    builtin = next(
        (
            kind.__name__
            for kind in type(error).__mro__
            if getattr(builtins, kind.__name__, None) is kind and issubclass(kind, Exception)
        ),
        None,
    )
    try:
        text = str(error)
    except Exception:  # a learner's exception may break its own __str__
        text = ""
    return {"type": type(error).__name__, "builtin": builtin, "message": text[:2000]}


def raise_if_failed(reply: dict) -> None:
    """Re-raise, in the caller's process, what went wrong in the callee's."""
    raised = reply.get("raised")
    if not raised:
        return
    name, builtin = str(raised.get("type")), raised.get("builtin")
    message = str(raised.get("message", ""))
    kind = getattr(builtins, str(builtin), None) if builtin else None
    if name == "NotImplementedError":
        raise NotImplementedError(message)
    if isinstance(kind, type) and issubclass(kind, Exception) and kind.__name__ == name:
        try:
            raise kind(message)
        except TypeError:  # a built-in whose constructor wants more arguments
            pass
    raise LearnerError(f"{name}: {message}" if message else name)


class RemoteFunction:
    """A callable standing for a function that lives in the other process."""

    def __init__(self, peer: Peer, target: str | int, name: str | None = None):
        self._peer, self._target = peer, target
        self.__name__ = name or str(target)

    def __call__(self, *arguments, **keywords):
        return self._peer.call(self._target, arguments, keywords)

    def __repr__(self) -> str:
        return f"<function {self.__name__} (in the sandbox)>"


def _remote_model_class(peer: Peer, handle: int, name: str) -> type:
    """A pydantic model class whose validation and schema are the learner's, run remotely."""
    from types import SimpleNamespace

    from pydantic import BaseModel
    from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

    def model_validate(cls, payload, *arguments, **keywords):
        reply = peer.request(
            {
                "op": "method",
                "handle": handle,
                "name": "model_validate",
                "payload": Codec(peer).encode(payload),
            }
        )
        raise_if_failed(reply)
        if "rejected" in reply:
            details = [
                InitErrorDetails(
                    type=PydanticCustomError(
                        "learner_model", str(item.get("msg")).replace("{", "(").replace("}", ")")
                    ),
                    loc=tuple(str(part) for part in item.get("loc", [])),
                    input=None,
                )
                for item in reply["rejected"]
            ] or [
                InitErrorDetails(
                    type=PydanticCustomError("learner_model", "rejected"), loc=(), input=None
                )
            ]
            raise ValidationError.from_exception_data(name, details)
        return SimpleNamespace(**Codec(peer).decode(reply["accepted"]))

    def model_json_schema(cls, *arguments, **keywords):
        reply = peer.request({"op": "method", "handle": handle, "name": "model_json_schema"})
        raise_if_failed(reply)
        return reply["value"]

    return type(
        name,
        (BaseModel,),
        {
            "model_validate": classmethod(model_validate),
            "model_json_schema": classmethod(model_json_schema),
            "__module__": "learner",
        },
    )


def fetch_value(peer: Peer, name: str) -> object:
    """The value of ``name`` in the worker's cell namespace, as plain data (grader side).

    Raises ``NameError`` when the cell did not define it, :class:`ValueRefused` (saying what it
    is) when it is not a number or a text, and :class:`PeerGone` when the reply is not one
    :func:`plain_value` writes.
    """
    reply = peer.request({"op": "value", "name": name})
    raise_if_failed(reply)
    return read_plain_value(reply.get("value"), name)
