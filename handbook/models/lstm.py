"""The LSTM of chapter 6, from scratch, and two ways to run ``torch.nn.LSTM`` on padded batches.

:class:`LSTMCell` is one step of the gates and :class:`LSTM` runs it over a padded batch of
sequences of different lengths, in one direction or both, with the outputs and final states
that ``torch.nn.LSTM`` gives for packed sequences (tested against ``torch.nn.LSTMCell`` and
``torch.nn.LSTM`` with copied weights). :func:`run_lstm` runs either on a padded batch (a torch
LSTM packed, so padding is never read); :func:`run_lstm_unpacked` runs a one-layer torch LSTM on
the padded batch itself, the same results to float rounding and several times faster to train
on a CPU. Chapter 6 (:mod:`handbook.cases`) builds its fraud and diagnosis models on them.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class LSTMCell(nn.Module):
    """One step of a long short-term memory cell, in ``torch.nn.LSTMCell``'s parameter layout.

    ``weight_ih`` ``(4 * hidden, input)``, ``weight_hh`` ``(4 * hidden, hidden)`` and the biases
    ``bias_ih``, ``bias_hh`` ``(4 * hidden,)`` hold the four gates stacked in torch's order:
    input ``i``, forget ``f``, candidate ``g``, output ``o``. Initialised as torch does, uniform
    in ``[-1/sqrt(hidden), 1/sqrt(hidden)]``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"input_size and hidden_size must be at least 1, got {input_size} and {hidden_size}"
            )
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
            self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def forward(
        self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` ``(batch, input)``, ``state`` = ``(h, c)`` each ``(batch, hidden)`` (zeros
        if None) -> the next ``(h, c)``."""
        if inputs.ndim != 2 or inputs.shape[1] != self.input_size:
            raise ValueError(
                f"expected inputs (batch, {self.input_size}), got {tuple(inputs.shape)}"
            )
        if state is None:
            zeros = inputs.new_zeros(len(inputs), self.hidden_size)
            state = (zeros, zeros)
        hidden, cell = state
        gates = inputs @ self.weight_ih.T + hidden @ self.weight_hh.T
        if self.bias_ih is not None:
            gates = gates + self.bias_ih + self.bias_hh
        input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=1)
        cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(input_gate) * torch.tanh(candidate)
        hidden = torch.sigmoid(output_gate) * torch.tanh(cell)
        return hidden, cell


class LSTM(nn.Module):
    """A one-layer LSTM over a padded, batch-first batch of sequences, optionally bidirectional.

    The same computation as ``torch.nn.LSTM(input_size, hidden_size, batch_first=True,
    bidirectional=...)`` run on ``pack_padded_sequence(inputs, lengths)``: the forward cell
    reads each sequence from its first to its last real step, the backward cell from its last
    real step back to the first, and padding is never read. Build one with the weights of a
    torch LSTM with :meth:`from_torch`.
    """

    def __init__(
        self, input_size: int, hidden_size: int, *, bidirectional: bool = False, bias: bool = True
    ):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bidirectional = bidirectional
        self.forward_cell = LSTMCell(input_size, hidden_size, bias)
        self.backward_cell = LSTMCell(input_size, hidden_size, bias) if bidirectional else None

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def forward(
        self,
        inputs: torch.Tensor,
        lengths: torch.Tensor | Sequence[int] | None = None,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Run the LSTM over ``inputs`` ``(batch, time, input)``.

        ``lengths`` ``(batch,)``: the number of real steps of each sequence, 1..time (all
        ``time`` if None); ``state``: initial ``(h_0, c_0)``, each ``(directions, batch,
        hidden)`` (zeros if None). Returns ``outputs`` ``(batch, time, directions * hidden)``
        (the hidden state at every real step, forward then backward; zeros at padded steps)
        and the final ``(h_n, c_n)``, each ``(directions, batch, hidden)``: the state after
        the last real step (forward) and after the first step (backward).
        """
        if inputs.ndim != 3 or inputs.shape[2] != self.input_size:
            raise ValueError(
                f"expected inputs (batch, time, {self.input_size}), got {tuple(inputs.shape)}"
            )
        batch, time, _ = inputs.shape
        if time == 0:
            raise ValueError("expected sequences of at least one step, got time = 0")
        lengths = _checked_lengths(lengths, batch, time, inputs.device)
        if state is None:
            zeros = inputs.new_zeros(self.directions, batch, self.hidden_size)
            state = (zeros, zeros)
        expected = (self.directions, batch, self.hidden_size)
        if tuple(state[0].shape) != expected or tuple(state[1].shape) != expected:
            raise ValueError(
                f"expected an initial state (h_0, c_0) of shape {expected} each, got "
                f"{tuple(state[0].shape)} and {tuple(state[1].shape)}"
            )
        outputs, final = _run_direction(
            self.forward_cell, inputs, lengths, (state[0][0], state[1][0])
        )
        if not self.bidirectional:
            return outputs, (final[0][None], final[1][None])
        reverse = _reversal_index(lengths, time)
        backward_outputs, backward_final = _run_direction(
            self.backward_cell, _gather_steps(inputs, reverse), lengths, (state[0][1], state[1][1])
        )
        outputs = torch.cat([outputs, _gather_steps(backward_outputs, reverse)], dim=2)
        hidden = torch.stack([final[0], backward_final[0]])
        cell = torch.stack([final[1], backward_final[1]])
        return outputs, (hidden, cell)

    @classmethod
    def from_torch(cls, source: nn.LSTM) -> LSTM:
        """A from-scratch LSTM holding a copy of a one-layer ``torch.nn.LSTM``'s weights."""
        if source.num_layers != 1 or source.proj_size:
            raise ValueError(
                f"expected a one-layer torch LSTM without projection, got num_layers="
                f"{source.num_layers}, proj_size={source.proj_size} (stack from-scratch LSTMs "
                "for more layers)"
            )
        copy = cls(
            source.input_size,
            source.hidden_size,
            bidirectional=source.bidirectional,
            bias=source.bias,
        ).to(source.weight_ih_l0.device, source.weight_ih_l0.dtype)
        cells = [("", copy.forward_cell)]
        if copy.bidirectional:
            cells.append(("_reverse", copy.backward_cell))
        with torch.no_grad():
            for suffix, cell in cells:
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    if getattr(cell, name) is not None:
                        getattr(cell, name).copy_(getattr(source, f"{name}_l0{suffix}"))
        return copy


def _checked_lengths(
    lengths: torch.Tensor | Sequence[int] | None, batch: int, time: int, device: torch.device
) -> torch.Tensor:
    if lengths is None:
        return torch.full((batch,), time, dtype=torch.int64, device=device)
    lengths = torch.as_tensor(lengths, dtype=torch.int64, device=device)
    if lengths.shape != (batch,):
        raise ValueError(
            f"expected one length per sequence ({batch},), got shape {tuple(lengths.shape)}"
        )
    if batch and (int(lengths.min()) < 1 or int(lengths.max()) > time):
        raise ValueError(
            f"expected lengths between 1 and the padded length {time}, got values from "
            f"{int(lengths.min())} to {int(lengths.max())}"
        )
    return lengths


def _run_direction(
    cell: LSTMCell,
    inputs: torch.Tensor,
    lengths: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Step ``cell`` through ``inputs`` ``(batch, time, input)`` from step 0. A sequence whose
    ``lengths`` have run out keeps its state and gets zero outputs from then on."""
    hidden, memory = state
    outputs = []
    for step in range(inputs.shape[1]):
        new_hidden, new_memory = cell(inputs[:, step], (hidden, memory))
        real = (step < lengths)[:, None]
        hidden = torch.where(real, new_hidden, hidden)
        memory = torch.where(real, new_memory, memory)
        outputs.append(torch.where(real, new_hidden, torch.zeros_like(new_hidden)))
    return torch.stack(outputs, dim=1), (hidden, memory)


def _reversal_index(lengths: torch.Tensor, time: int) -> torch.Tensor:
    """``(batch, time)`` step indices that reverse each sequence within its length and leave its
    padding in place; applying it twice gives the identity."""
    steps = torch.arange(time, device=lengths.device)[None, :]
    last = lengths[:, None] - 1
    return torch.where(steps <= last, last - steps, steps)


def _gather_steps(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[b, index[b, t]]`` for ``values`` ``(batch, time, features)``."""
    return values.gather(1, index[:, :, None].expand(-1, -1, values.shape[2]))


def run_lstm(
    lstm: nn.LSTM | LSTM, inputs: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Run a batch-first torch LSTM (packed, so padding is never read) or a from-scratch
    :class:`LSTM` on padded ``inputs`` ``(batch, time, input)`` with ``lengths`` ``(batch,)``.
    Both return ``outputs`` ``(batch, time, directions * hidden)`` and ``(h_n, c_n)``."""
    if isinstance(lstm, LSTM):
        return lstm(inputs, lengths)
    if not lstm.batch_first:
        raise ValueError("expected a torch LSTM built with batch_first=True")
    packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
    outputs, state = lstm(packed)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.shape[1])
    return outputs, state


def run_lstm_unpacked(
    lstm: nn.LSTM | LSTM, inputs: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`run_lstm`'s ``outputs`` ``(batch, time, directions * hidden)`` (zeros at padded
    steps) and final hidden states ``h_n`` ``(directions, batch, hidden)``, from a one-layer,
    batch-first torch LSTM run on the padded batch instead of a packed one (a from-scratch
    :class:`LSTM` runs as in :func:`run_lstm`).

    A one-direction LSTM never reads ahead, so the padding after a sequence's end changes none
    of its real steps: its final state is its output at step ``length - 1``. The backward
    direction is the same run on each sequence reversed within its length. Trained on the CPU,
    this is two to four times faster than a packed batch, whose backward pass slices the packed
    steps one at a time; the results are the same to float rounding.
    """
    if isinstance(lstm, LSTM):
        outputs, (hidden, _) = lstm(inputs, lengths)
        return outputs, hidden
    if not lstm.batch_first or lstm.num_layers != 1 or lstm.proj_size:
        raise ValueError(
            "expected a one-layer torch LSTM built with batch_first=True, without projection"
        )
    batch, time, _ = inputs.shape
    lengths = _checked_lengths(lengths, batch, time, inputs.device)
    longest = int(lengths.max()) if batch else time
    real = inputs[:, :longest]  # the steps after the longest sequence are padding in every row
    rows = torch.arange(batch, device=inputs.device)
    if not lstm.bidirectional:
        outputs, _ = lstm(real)
        hidden = outputs[rows, lengths - 1][None]
    else:
        reverse = _reversal_index(lengths, longest)
        forward, _ = _one_direction(lstm, "")(real)
        backward, _ = _one_direction(lstm, "_reverse")(_gather_steps(real, reverse))
        outputs = torch.cat([forward, _gather_steps(backward, reverse)], dim=2)
        hidden = torch.stack([forward[rows, lengths - 1], backward[rows, lengths - 1]])
    padding = torch.arange(longest, device=inputs.device)[None, :] >= lengths[:, None]
    outputs = outputs.masked_fill(padding[:, :, None], 0.0)
    return nn.functional.pad(outputs, (0, 0, 0, time - longest)), hidden


#: One-direction views of the bidirectional LSTMs :func:`run_lstm_unpacked` has run, by LSTM.
_DIRECTION_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _one_direction(lstm: nn.LSTM, suffix: str) -> nn.LSTM:
    """A one-direction ``torch.nn.LSTM`` that shares (not copies) the parameters of one direction
    of ``lstm`` (``suffix`` "" or "_reverse"), so gradients reach ``lstm``'s own; built once per
    LSTM (building one costs about as much as a training step) and again if a parameter of
    ``lstm`` was replaced."""
    names = [
        f"{name}_l0"
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        if lstm.bias or name.startswith("weight")
    ]
    views = _DIRECTION_VIEWS.setdefault(lstm, {})
    view = views.get(suffix)
    if view is None or any(
        getattr(view, name) is not getattr(lstm, name + suffix) for name in names
    ):
        with torch.random.fork_rng(devices=[]):  # its initial weights, replaced below, must
            # not draw from the generator that dropout draws from
            view = nn.LSTM(lstm.input_size, lstm.hidden_size, bias=lstm.bias, batch_first=True)
        for name in names:
            setattr(view, name, getattr(lstm, name + suffix))
        views[suffix] = view
    return view.train(lstm.training)
