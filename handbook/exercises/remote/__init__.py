"""Call a learner's function in another process, with plain data on the wire (never pickle).

The grader runs a chapter's check function in its own process and hands it a
:class:`RemoteFunction` instead of the learner's function; calling it sends the arguments to the
sandboxed worker (:mod:`handbook.exercises.sandbox`), which calls the learner's function and
sends the answer back. Three modules, one job each:

- :mod:`~handbook.exercises.remote.wire`: framing (length-prefixed JSON messages), the size and
  nesting limits, and :class:`PeerGone` when the other process stops answering;
- :mod:`~handbook.exercises.remote.codec`: what values may cross and as what (arrays, tensors,
  modules, a DataLoader as its batches, an optimizer by reference, random states, a learner's
  value as plain data);
- :mod:`~handbook.exercises.remote.peer`: requests and replies in both directions, the stand-ins
  for the other side's functions, and gradients through the wall.

This package's names below are what the grader, the sandbox and chapter 7's checks
(:class:`OneShotStream`) use.
"""

from handbook.exercises.remote.codec import (
    Codec,
    OneShotStream,
    Opaque,
    ValueRefused,
    plain_value,
)
from handbook.exercises.remote.peer import (
    LearnerError,
    Peer,
    RemoteFunction,
    fetch_value,
)
from handbook.exercises.remote.wire import PeerGone

__all__ = [
    "Codec",
    "LearnerError",
    "OneShotStream",
    "Opaque",
    "Peer",
    "PeerGone",
    "RemoteFunction",
    "ValueRefused",
    "fetch_value",
    "plain_value",
]
