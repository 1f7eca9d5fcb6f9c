"""Framing: one end of a socket that sends and receives messages, and the limits on them.

A message is one frame: an 8-byte big-endian length, then UTF-8 JSON holding one object. A
frame longer than the connection's ``max_frame_bytes`` is not sent (:class:`AnswerTooLarge`) and
not read (:class:`PeerGone` saying how large it was); a message nested deeper than
:data:`MAX_NESTING` levels, or that is not JSON, is refused before anyone decodes it. Every way
the other process can stop answering (it died, it timed out, it broke the framing) raises
:class:`PeerGone`. What the JSON may hold is :mod:`~handbook.exercises.remote.codec`'s job; who
asks what, :mod:`~handbook.exercises.remote.peer`'s.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time

#: Largest frame either side accepts, bytes: a bigger answer is reported, not read.
DEFAULT_MAX_FRAME_BYTES = 64 * 2**20
_HEADER = struct.Struct(">Q")

#: How deeply a message's JSON may nest: the codec's deepest honest message (a module's
#: children inside a tuple of arguments) is a few dozen levels.
MAX_NESTING = 200


def nesting_depth(value: object) -> int:
    """How deeply ``value`` (parsed JSON) nests lists and dicts, counted without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in item)
    return deepest


class PeerGone(BaseException):
    """The other process stopped answering (died, timed out, or broke the protocol).

    A ``BaseException`` so that a check's per-case ``except Exception`` cannot swallow it: the
    grader must stop the exercise and say why.
    """


#: What :class:`PeerGone` says when the deadline passed before the other side answered.
TIMEOUT = "timeout"
#: What :class:`PeerGone` says when the worker ran out of memory (a ``MemoryError`` under the
#: sandbox's memory limit: :mod:`handbook.exercises.sandbox` decodes it).
OUT_OF_MEMORY = "memory"


class AnswerTooLarge(ValueError):
    """A message over the frame limit, not sent: ``size`` and ``limit`` in bytes."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"a message of {size:,} bytes exceeds the limit of {limit:,} bytes")
        self.size, self.limit = size, limit


def too_large_text(size: int, limit: int) -> str:
    """``the answer is 5.0 MiB, over the limit of 4.0 MiB`` (what the grader reports)."""

    def text(count: int) -> str:
        return f"{count / 2**20:,.1f} MiB" if count >= 2**20 else f"{count:,} bytes"

    return f"the answer is {text(size)}, over the limit of {text(limit)}"


class Connection:
    """One end of a socket carrying framed messages.

    ``max_frame_bytes`` bounds a message either way; ``deadline`` (``time.monotonic()`` seconds)
    bounds every wait for the other side (``None``: wait for ever). A process forked from the
    one that opened the connection (a learner's ``os.fork()``) never speaks on it: its
    :meth:`send` ends it instead.
    """

    def __init__(
        self, sock: socket.socket, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    ) -> None:
        self.sock = sock
        self.max_frame_bytes = max_frame_bytes
        self.deadline: float | None = None
        self._pid = os.getpid()

    def send(self, message: dict) -> None:
        """Send one message (:class:`AnswerTooLarge` when it is over the limit, unsent)."""
        if os.getpid() != self._pid:  # a process the learner forked never speaks for the worker
            os._exit(0)
        payload = json.dumps(message, ensure_ascii=False).encode("utf-8")
        if len(payload) > self.max_frame_bytes:
            raise AnswerTooLarge(len(payload), self.max_frame_bytes)
        try:
            self.sock.sendall(_HEADER.pack(len(payload)) + payload)
        except OSError as error:
            raise PeerGone(f"the connection broke ({error})") from error

    def receive(self) -> dict:
        """The next message, once it has arrived whole and proved to be a JSON object."""
        header = self._read_exactly(_HEADER.size)
        (length,) = _HEADER.unpack(header)
        if length > self.max_frame_bytes:
            raise PeerGone(too_large_text(length, self.max_frame_bytes))
        try:
            message = json.loads(self._read_exactly(length).decode("utf-8"))
        except (ValueError, RecursionError) as error:  # bad UTF-8 or JSON, a 5,000-digit int
            raise PeerGone(f"the worker sent a malformed message ({error})") from error
        if not isinstance(message, dict):
            raise PeerGone("the worker sent a malformed message (not a JSON object)")
        if (depth := nesting_depth(message)) > MAX_NESTING:
            raise PeerGone(
                f"the worker sent a malformed message (nested {depth} levels deep, at most "
                f"{MAX_NESTING}: deeper would exhaust the decoder's recursion, whose limit "
                "differs between Python versions)"
            )
        return message

    def _read_exactly(self, count: int) -> bytes:
        chunks, remaining = [], count
        while remaining:
            if self.deadline is not None:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise PeerGone(TIMEOUT)
                self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(min(remaining, 1 << 20))
            except TimeoutError as error:
                raise PeerGone(TIMEOUT) from error
            except OSError as error:
                raise PeerGone(f"the connection broke ({error})") from error
            if not chunk:
                raise PeerGone("the other process closed the connection")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
