"""The codec: which values may cross between the grader and the sandbox, and as what plain data.

A call's arguments and answer cross as JSON (never pickle), encoded by :class:`Codec`:

- ``None``, bools, ints, floats, strings: themselves; lists, tuples, dicts, sets, bytes: tagged
  JSON objects (``{"$": "tuple", "items": [...]}``);
- NumPy arrays and scalars: ``.npy`` bytes in base64, read back with ``allow_pickle=False``
  (object arrays are refused); tensors: the same plus dtype and ``requires_grad``;
- ``numpy.random.Generator``: its bit generator's name and state (a dict of ints);
- a stream (an object with ``remaining()`` and ``advance(count)``, such as chapter 7's one-shot
  stream): the items still to come; the callee reports how many it read;
- ``torch.nn`` modules built from the layers in :data:`MODULE_LAYERS`: architecture and weights
  (decoded by the worker only: the grader never builds an object the learner described);
- a ``torch.utils.data.DataLoader``: the list of its batches (the encoder iterates it once, as
  the callee would), decoded as a list the callee can iterate and ``len()``;
- an optimizer among :data:`OPTIMIZERS` passed by the grader as an argument of a call (not inside
  a container): its class name, each parameter group's hyperparameters (numbers, bools, ``None``,
  tuples of numbers) and, for each parameter, the argument of the same call that holds it (a
  module that travels as one) and its name in that module's ``named_parameters()``; the worker
  builds the same optimizer over its copies of those modules. The optimizer's state (momentum
  buffers, step counts) does not travel, so an optimizer that has already stepped stays opaque,
  as does one whose parameters are not in a module argument of the call; an optimizer the
  worker sends is never rebuilt by the grader;
- a function: a handle the other side calls back through the peer;
- a pydantic model class returned by the learner: a handle whose ``model_validate`` and
  ``model_json_schema`` run in the worker (decoded in the grader as a stand-in class);
- anything else: an :class:`Opaque` placeholder naming its type (using it raises an error
  that says what it stands for).

Arguments the callee changed in place (an array it sorted, a model it trained) are sent back and
copied into the caller's objects, so a check that looks for in-place changes still sees them.
A call from the grader whose arguments hold a tensor, a module or an optimizer also carries the
grader's torch random state (taken after the arguments were encoded, so after a loader drew its
shuffle), which the worker sets just before calling the learner's function (when the worker has
imported torch; it never imports it for that): the learner's dropout draws are those a call in
the grader's process would make.

An exercise whose answer is a value (a prediction, a derivation, an open answer) asks for the
value of a name instead (:func:`~handbook.exercises.remote.peer.fetch_value`), which travels
only as plain data (:func:`plain_value`): ``None``, a bool, an int, a float or a str, exactly of
those types. Nothing here sends or receives: the codec turns values into JSON-able data and
back for one side of a connection (:mod:`~handbook.exercises.remote.peer` does the talking).
"""

from __future__ import annotations

import base64
import io
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from handbook.exercises.remote.wire import DEFAULT_MAX_FRAME_BYTES, PeerGone

#: ``torch.nn`` layers a module argument may be built from: name -> constructor attributes.
MODULE_LAYERS: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features"),
    "Conv2d": (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
    ),
    "Flatten": ("start_dim", "end_dim"),
    "Sequential": (),
    "ReLU": (),
    "Tanh": (),
    "Sigmoid": (),
    "Identity": (),
    "Dropout": ("p",),
}
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
#: ``torch.optim`` classes an optimizer argument from the grader may be rebuilt as in the worker.
OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop")


class Endpoint(Protocol):
    """What the codec needs of its side of the connection (a
    :class:`~handbook.exercises.remote.peer.Peer`): which side it is, a handle for a function
    or class it sends, and a stand-in for one the other side sent."""

    side: str

    def register(self, value: object) -> int: ...

    def remote_function(self, handle: int) -> Any: ...

    def remote_model_class(self, handle: int, name: str) -> type: ...


@dataclass(frozen=True)
class Opaque:
    """A value that cannot travel as plain data (a generator, an open file, ...).

    Using it (an attribute, iterating it) raises an error that says what it stands for.
    """

    type_name: str
    text: str

    def __repr__(self) -> str:
        return f"<{self.type_name} that cannot be sent between processes: {self.text}>"

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"{self!r} has no attribute {name!r}")

    def __iter__(self):
        raise TypeError(f"{self!r} cannot be iterated")


def _torch():
    import torch

    return torch


def _is_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _is_module(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def _is_loader(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.utils.data.DataLoader)


def _is_optimizer(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.optim.Optimizer)


def _travels_as_module(value: object) -> bool:
    """Whether ``value`` is a module :meth:`Codec.encode` sends as architecture and weights."""
    return _is_module(value) and all(
        type(part).__module__.split(".")[0] == "torch" and type(part).__name__ in MODULE_LAYERS
        for part in value.modules()
    )


def _optimizer_options(kind: str) -> frozenset[str]:
    """The hyperparameters a parameter group of ``torch.optim.<kind>`` may carry."""
    import inspect

    torch = _torch()
    optimizer = getattr(torch.optim, kind)
    named = set(inspect.signature(optimizer).parameters)
    defaults = optimizer([torch.zeros(1, requires_grad=True)]).defaults
    return frozenset((named | set(defaults)) - {"params"})


def _is_hyperparameter(value: object) -> bool:
    if value is None or type(value) in (bool, int, float):
        return True
    return type(value) is tuple and all(type(item) in (int, float) for item in value)


def _hyperparameter(value: Any) -> object:
    """A hyperparameter as the grader encoded it (refused unless plain)."""
    if (
        isinstance(value, dict)
        and value.get("$") == "tuple"
        and isinstance(value.get("items"), list)
    ):
        value = tuple(value["items"])
    if not _is_hyperparameter(value):
        raise ValueError(f"an optimizer hyperparameter must be a number or a bool, got {value!r}")
    return value


def _npy(array: np.ndarray) -> str:
    if array.dtype.hasobject:
        raise TypeError(f"an array of Python objects (dtype {array.dtype}) cannot be sent")
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _from_npy(text: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def _is_stream(value: object) -> bool:
    return (
        callable(getattr(value, "remaining", None))
        and callable(getattr(value, "advance", None))
        and isinstance(value, Iterator)
    )


class OneShotStream:
    """An iterator over ``items`` that can be read once and has no length, like a live feed.

    ``read`` counts the items taken. The grader sends :meth:`remaining` to the sandbox, which
    reads its own copy and reports how many it took; :meth:`advance` replays that here.
    """

    def __init__(self, items: Iterable):
        self._items = iter(items)
        self.read = 0

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> object:
        item = next(self._items)
        self.read += 1
        return item

    def remaining(self) -> list:
        """The items still to come, without reading them."""
        items = list(self._items)
        self._items = iter(items)
        return items

    def advance(self, count: int) -> None:
        """Read ``count`` items, as the sandboxed function did with its copy."""
        for _ in range(count):
            next(self)


class Codec:
    """Encode values to plain JSON-able data and back, for one side (``"grader"``/``"worker"``).

    ``peer`` registers callbacks and gradient handles; ``grad_inputs`` collects, in encounter
    order, the tensors that require gradients (encoded arguments on the caller's side, decoded
    leaves on the callee's side) so that a backward pass can be matched across the wire.
    """

    def __init__(self, peer: Endpoint):
        self.peer = peer
        self.grad_inputs: list = []
        #: Whether a tensor (a module's weights included) or an optimizer was encoded.
        self.sent_torch = False

    # encoding ------------------------------------------------------------------------------

    def encode(self, value: object) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if type(value) in (int, float):
            return value
        if isinstance(value, (list, tuple, set, frozenset)) and not _is_tensor(value):
            kind = {list: "list", set: "set", frozenset: "frozenset"}.get(type(value), "tuple")
            return {"$": kind, "items": [self.encode(item) for item in value]}
        if isinstance(value, dict):
            return {
                "$": "dict",
                "items": [[self.encode(k), self.encode(v)] for k, v in value.items()],
            }
        if isinstance(value, (bytes, bytearray)):
            return {"$": "bytes", "b64": base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.hasobject:
            return {"$": "opaque", "type": "object array", "text": _short_repr(value)}
        if isinstance(value, np.ndarray):
            return {"$": "ndarray", "npy": _npy(value)}
        if isinstance(value, np.generic):
            return {"$": "npscalar", "npy": _npy(np.asarray(value))}
        if _is_tensor(value):
            return self._encode_tensor(value)
        if isinstance(value, np.random.Generator):
            state = value.bit_generator.state
            return {"$": "rng", "state": self.encode(state)}
        if _is_stream(value):
            return {"$": "stream", "items": [self.encode(item) for item in value.remaining()]}
        if _is_module(value):
            return self._encode_module(value)
        if _is_loader(value):
            return {"$": "loader", "batches": [self.encode(batch) for batch in value]}
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.dtype):
            return {"$": "torch_dtype", "name": str(value).removeprefix("torch.")}
        if self.peer.side == "worker" and is_pydantic_model_class(value):
            return {"$": "model_class", "handle": self.peer.register(value), "name": value.__name__}
        if callable(value) and not isinstance(value, type):
            return {"$": "function", "handle": self.peer.register(value)}
        return {"$": "opaque", "type": type(value).__qualname__, "text": _short_repr(value)}

    def encode_arguments(self, arguments: tuple, keywords: dict) -> tuple[list, dict]:
        """The arguments of a call: an optimizer among them travels by reference to the modules
        of the same call (the grader's side only), everything else as :meth:`encode` says."""
        named = {str(position): value for position, value in enumerate(arguments)}
        named |= {str(name): value for name, value in keywords.items()}
        modules = {key: value for key, value in named.items() if _travels_as_module(value)}

        def one(value: object) -> Any:
            if self.peer.side == "grader" and _is_optimizer(value):
                return self._encode_optimizer(value, modules)
            return self.encode(value)

        return [one(value) for value in arguments], {
            str(name): one(value) for name, value in keywords.items()
        }

    def _encode_optimizer(self, optimizer, modules: dict) -> dict:
        kind = type(optimizer).__name__
        torch = _torch()

        def opaque(why: str) -> dict:
            return {"$": "opaque", "type": type(optimizer).__qualname__, "text": why}

        if kind not in OPTIMIZERS or type(optimizer) is not getattr(torch.optim, kind):
            return opaque(
                f"only these torch.optim optimizers travel to the sandbox: {', '.join(OPTIMIZERS)}"
            )
        if any(optimizer.state.values()):
            return opaque("an optimizer that has already taken steps (its state does not travel)")
        owners = {}
        for key, module in modules.items():
            for name, parameter in module.named_parameters():
                owners.setdefault(id(parameter), [key, name])
        options = _optimizer_options(kind)
        groups = []
        for group in optimizer.param_groups:
            hyper = {name: value for name, value in group.items() if name != "params"}
            if unknown := sorted(set(hyper) - options):
                return opaque(f"its parameter groups carry options {unknown} that do not travel")
            if bad := sorted(
                name for name, value in hyper.items() if not _is_hyperparameter(value)
            ):
                return opaque(f"its hyperparameters {bad} are not plain numbers or bools")
            refs = [owners.get(id(parameter)) for parameter in group["params"]]
            if None in refs:
                return opaque(
                    "some of its parameters belong to no module passed in the same call "
                    "(pass the model it trains as an argument too)"
                )
            groups.append({"hyper": {k: self.encode(v) for k, v in hyper.items()}, "params": refs})
        self.sent_torch = True
        return {"$": "optimizer", "kind": kind, "groups": groups}

    def _encode_tensor(self, tensor) -> dict:
        torch = _torch()
        self.sent_torch = True
        detached = tensor.detach().cpu()
        dtype = str(detached.dtype).removeprefix("torch.")
        if detached.dtype == torch.bfloat16:
            detached = detached.float()
        record = {
            "$": "tensor",
            "npy": _npy(detached.resolve_conj().numpy()),
            "dtype": dtype,
            "requires_grad": bool(tensor.requires_grad),
        }
        if tensor.requires_grad:
            self.grad_inputs.append(tensor)
        return record

    def _encode_module(self, module) -> dict:
        kind = type(module).__name__
        if type(module).__module__.split(".")[0] != "torch" or kind not in MODULE_LAYERS:
            return {"$": "opaque", "type": type(module).__qualname__, "text": _short_repr(module)}
        config = {name: self.encode(getattr(module, name)) for name in MODULE_LAYERS[kind]}
        if hasattr(module, "bias") and kind in ("Linear", "Conv2d"):
            config["bias"] = module.bias is not None
        return {
            "$": "module",
            "kind": kind,
            "config": config,
            "children": [self._encode_module(child) for child in module.children()],
            "training": module.training,
            "state": {
                name: self.encode(value.detach())
                for name, value in module.state_dict(keep_vars=False).items()
            },
        }

    # decoding ------------------------------------------------------------------------------

    def decode(self, data: Any) -> Any:
        if not isinstance(data, dict):
            if isinstance(data, list):  # never produced by encode; refuse rather than guess
                raise ValueError("expected a tagged list, got a bare JSON array")
            return data
        kind = data.get("$")
        if kind == "list":
            return [self.decode(item) for item in data["items"]]
        if kind == "tuple":
            return tuple(self.decode(item) for item in data["items"])
        if kind in ("set", "frozenset"):
            items = [self.decode(item) for item in data["items"]]
            return set(items) if kind == "set" else frozenset(items)
        if kind == "dict":
            return {self.decode(key): self.decode(value) for key, value in data["items"]}
        if kind == "bytes":
            return base64.b64decode(data["b64"])
        if kind == "ndarray":
            return _from_npy(data["npy"])
        if kind == "npscalar":
            return _from_npy(data["npy"])[()]
        if kind == "tensor":
            return self._decode_tensor(data)
        if kind == "torch_dtype":
            dtype = getattr(_torch(), str(data["name"]), None)
            return (
                dtype if isinstance(dtype, _torch().dtype) else Opaque("dtype", str(data["name"]))
            )
        if kind == "rng":
            return _decode_rng(self.decode(data["state"]))
        if kind == "stream":
            return OneShotStream([self.decode(item) for item in data["items"]])
        if kind == "module":
            if self.peer.side != "worker":
                return Opaque("torch.nn.Module", "a module sent by the worker")
            return self._decode_module(data)
        if kind == "loader":
            return [self.decode(batch) for batch in data["batches"]]
        if kind == "optimizer":  # only ever an argument of a call, see decode_arguments
            return Opaque("torch.optim.Optimizer", "an optimizer that is not an argument of a call")
        if kind == "function":
            return self.peer.remote_function(int(data["handle"]))
        if kind == "model_class" and self.peer.side == "grader":
            return self.peer.remote_model_class(int(data["handle"]), str(data["name"]))
        if kind == "opaque":
            return Opaque(str(data.get("type")), str(data.get("text")))
        raise ValueError(f"unknown value tag {kind!r}")

    def decode_after_call(self, state: Any) -> object:
        """An argument as the callee left it (:func:`after_call_state`), for
        :func:`apply_update`: a stream's count of items read, a module's state dict, or the
        value itself."""
        if isinstance(state, dict) and state.get("$") == "stream_read":
            stream = OneShotStream([])
            stream.read = int(state["read"])
            return stream
        if isinstance(state, dict) and state.get("$") == "module_state":
            return {str(name): self.decode(value) for name, value in state["state"].items()}
        return self.decode(state)

    def decode_arguments(self, arguments: list, keywords: dict) -> tuple[list, dict]:
        """The arguments of a call: an optimizer among them (on the worker's side only) is
        built over the decoded modules of the same call, once everything else is decoded."""
        named = {str(position): item for position, item in enumerate(arguments)}
        named |= {str(name): item for name, item in keywords.items()}

        def is_optimizer(item: Any) -> bool:
            return isinstance(item, dict) and item.get("$") == "optimizer"

        values = {key: self.decode(item) for key, item in named.items() if not is_optimizer(item)}
        for key, item in named.items():
            if is_optimizer(item):
                values[key] = (
                    self._decode_optimizer(item, values)
                    if self.peer.side == "worker"
                    else Opaque("torch.optim.Optimizer", "an optimizer sent by the worker")
                )
        return [values[str(position)] for position in range(len(arguments))], {
            str(name): values[str(name)] for name in keywords
        }

    def _decode_optimizer(self, data: dict, values: dict):
        torch = _torch()
        kind = data.get("kind")
        if kind not in OPTIMIZERS:
            raise ValueError(f"an optimizer of kind {kind!r} cannot be rebuilt")
        options = _optimizer_options(kind)
        groups = []
        for group in data["groups"]:
            hyper = {str(name): _hyperparameter(value) for name, value in group["hyper"].items()}
            if unknown := sorted(set(hyper) - options):
                raise ValueError(f"torch.optim.{kind} has no options {unknown}")
            parameters = []
            for reference in group["params"]:
                key, name = (str(part) for part in reference)
                module = values.get(key)
                if not _is_module(module):
                    raise ValueError(
                        f"an optimizer's parameter refers to argument {key!r}, "
                        "which is not a module"
                    )
                owned = dict(module.named_parameters())
                if name not in owned:
                    raise ValueError(
                        f"an optimizer's parameter refers to {name!r}, "
                        f"which argument {key!r} does not have"
                    )
                parameters.append(owned[name])
            groups.append({**hyper, "params": parameters})
        return getattr(torch.optim, kind)(groups)

    def _decode_tensor(self, data: dict):
        torch = _torch()
        array = _from_npy(data["npy"])
        tensor = torch.from_numpy(array.copy())
        dtype = getattr(torch, str(data["dtype"]), None)
        if isinstance(dtype, torch.dtype) and tensor.dtype != dtype:
            tensor = tensor.to(dtype)
        if data.get("requires_grad"):
            if tensor.is_floating_point() or tensor.is_complex():
                tensor.requires_grad_(True)
            self.grad_inputs.append(tensor)
        return tensor

    def _decode_module(self, data: dict):
        torch = _torch()
        kind = str(data["kind"])
        if kind not in MODULE_LAYERS:
            raise ValueError(f"a module of kind {kind!r} cannot be rebuilt")
        layer = getattr(torch.nn, kind)
        if kind == "Sequential":
            module = layer(*(self._decode_module(child) for child in data["children"]))
        else:
            config = {key: self.decode(value) for key, value in data["config"].items()}
            module = layer(**config)
        state = {name: self.decode(value) for name, value in data["state"].items()}
        module.load_state_dict(state)
        module.train(bool(data["training"]))
        return module


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:  # a learner's __repr__ may raise; the type name is enough then
        text = "?"
    return text if len(text) <= 200 else text[:200] + " ..."


def _decode_rng(state: dict) -> np.random.Generator:
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise ValueError(f"expected a NumPy bit generator among {_BIT_GENERATORS}, got {name!r}")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def is_pydantic_model_class(value: object) -> bool:
    pydantic = sys.modules.get("pydantic")
    return (
        pydantic is not None and isinstance(value, type) and issubclass(value, pydantic.BaseModel)
    )


# Writing back in-place changes ------------------------------------------------------------


def apply_update(original: object, new_value: object) -> None:
    """Copy what the callee left in an argument into the caller's ``original`` object."""
    torch = sys.modules.get("torch")
    if isinstance(original, np.ndarray) and isinstance(new_value, np.ndarray):
        if original.shape == new_value.shape and original.flags.writeable:
            original[...] = new_value
    elif _is_tensor(original) and _is_tensor(new_value):
        if original.shape == new_value.shape:
            with torch.no_grad():
                original.copy_(new_value.to(original.dtype))
    elif isinstance(original, list) and isinstance(new_value, list):
        original[:] = new_value
    elif isinstance(original, dict) and isinstance(new_value, dict):
        original.clear()
        original.update(new_value)
    elif isinstance(original, np.random.Generator) and isinstance(new_value, np.random.Generator):
        original.bit_generator.state = new_value.bit_generator.state
    elif _is_stream(original) and isinstance(new_value, OneShotStream):
        original.advance(new_value.read)
    elif _is_module(original) and isinstance(new_value, dict):
        with torch.no_grad():
            for name, tensor in original.state_dict(keep_vars=True).items():
                if name in new_value and tuple(new_value[name].shape) == tuple(tensor.shape):
                    tensor.copy_(new_value[name])


def after_call_state(codec: Codec, value: object) -> Any:
    """What an argument looks like after the call, as the caller can apply it
    (:meth:`Codec.decode_after_call` reads it back)."""
    if isinstance(value, OneShotStream):
        return {"$": "stream_read", "read": value.read}
    if _is_module(value):
        return {
            "$": "module_state",
            "state": {
                name: codec.encode(tensor.detach()) for name, tensor in value.state_dict().items()
            },
        }
    return codec.encode(value)


# torch's random state, carried by a call ------------------------------------------------------


def torch_rng_bytes() -> bytes:
    """torch's global random state, as the bytes of ``get_rng_state()``."""
    return bytes(_torch().random.get_rng_state().numpy())


def set_torch_rng(state: object) -> None:
    """Set torch's global random state to the caller's (bytes of ``get_rng_state()``)."""
    torch = _torch()
    size = torch.random.get_rng_state().numel()
    if not isinstance(state, bytes) or len(state) != size:
        raise ValueError(f"expected torch's random state as {size} bytes")
    torch.random.set_rng_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))


# A learner's value, as plain data (predictions, derivations, open answers) ---------------------

#: The largest integer a value may be, in bits (about 1,000 digits: past any float).
_MAX_VALUE_INT_BITS = 3400
_VALUE_TYPES = (type(None), bool, int, float, str)


class ValueRefused(ValueError):
    """A learner's value that is not plain data (a number or a text); the message says why."""


def plain_value(value: object, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> object:
    """What the worker sends for the value of a learner's name: ``None``, a bool, an int, a
    float (NaN and infinities included) or a str of at most ``max_bytes`` UTF-8 bytes, exactly
    of those types (a NumPy scalar becomes its Python number); anything else becomes
    ``{"$": "opaque", "type": ..., "text": why}``, which names its type only (its ``repr`` is
    the learner's code and could say anything)."""
    numpy_number = isinstance(value, np.generic) and type(value).__module__ == "numpy"
    if numpy_number and value.dtype.kind in "biuf":
        value = value.item()
    kind = type(value)
    if kind not in _VALUE_TYPES:
        return _refused(value, _why_not_plain(value))
    if kind is int and value.bit_length() > _MAX_VALUE_INT_BITS:
        digits = int(value.bit_length() * 0.30103) + 1
        return _refused(value, f"an integer of about {digits:,} digits, too large to compare")
    if kind is str:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError as error:
            return _refused(value, f"a text that is not valid Unicode (at character {error.start})")
        if size > max_bytes:
            return _refused(
                value, f"a text of {size:,} bytes, over the answer limit of {max_bytes:,} bytes"
            )
    return value


def _why_not_plain(value: object) -> str:
    kind = type(value)
    for base in _VALUE_TYPES[1:]:
        if isinstance(value, base):
            return (
                f"a {_type_name(value)} (a subclass of {base.__name__}): assign a plain "
                f"{base.__name__}"
            )
    if _is_tensor(value) or isinstance(value, np.ndarray):
        return f"an array ({_type_name(value)}): assign one plain number (e.g. with .item())"
    if kind in (list, tuple, dict, set, frozenset, bytes, bytearray):
        return f"a {kind.__name__}: expected one number or one text"
    return f"a {_type_name(value)}: expected one number or one text"


def _type_name(value: object) -> str:
    try:
        name = type(value).__qualname__
    except Exception:  # a learner's metaclass may break even that
        name = "?"
    return name[:100] if isinstance(name, str) else "?"


def _refused(value: object, why: str) -> dict:
    return {"$": "opaque", "type": _type_name(value), "text": why}


def read_plain_value(value: object, name: str) -> object:
    """A value :func:`plain_value` wrote for ``name``, read on the grader's side: the value,
    or :class:`ValueRefused` saying what it was, or :class:`PeerGone` when the worker sent
    something :func:`plain_value` never writes."""
    if type(value) in _VALUE_TYPES:
        return value
    if (
        isinstance(value, dict)
        and set(value) == {"$", "type", "text"}
        and value["$"] == "opaque"
        and all(isinstance(value[key], str) for key in ("type", "text"))
    ):
        raise ValueRefused(value["text"][:500])
    raise PeerGone(f"the worker sent a malformed value for {name} (not plain data)")
