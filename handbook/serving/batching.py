"""Dynamic micro-batching: gather requests for a few milliseconds, run them as one batch.

One forward pass over 32 texts costs far less than 32 passes over one text (the fixed cost of
a call, Python dispatch and kernel launches, is paid once). :class:`MicroBatcher` keeps a queue
of pending requests; a single worker task takes the oldest, adds whatever else is waiting, and
runs the batch as soon as :func:`should_flush` says so: the batch is full, or it has waited
``max_wait_ms`` for company. The wait counts from the later of the oldest request's arrival and
the moment the worker began gathering (LitServe's rule: its window opens when the worker is
free): a request that queued while the previous batch computed has waited for the model, not
for company, and the requests its neighbours are still sending get the same window to join
instead of missing the batch and waiting a whole batch more. The model runs in one background
thread, so the event loop keeps accepting requests while a batch computes; each request gets
back exactly its own rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


class ShuttingDown(RuntimeError):
    """The batcher stopped before this request's batch ran (the server answers 503)."""


def should_flush(
    pending_items: int, max_batch_size: int, waited_ms: float, max_wait_ms: float
) -> bool:
    """True when a batch must run now: it is full, or its oldest request waited long enough.

    ``pending_items`` items are gathered (>= 1), ``waited_ms`` is how long the oldest of them
    has waited, in milliseconds. ``max_wait_ms = 0`` runs whatever is waiting at once.
    """
    return pending_items >= max_batch_size or waited_ms >= max_wait_ms


#: When a batch's wait for company starts: ``"worker"`` when the worker begins gathering it
#: (LitServe's rule, the default), ``"arrival"`` when its oldest request arrived (the rule this
#: server had before issue 27; kept for make bench's tail ablation).
WINDOWS = ("worker", "arrival")


@dataclass
class _Pending:
    items: Sequence[Any]
    future: asyncio.Future
    arrived: float  # time.perf_counter() when submitted


class MicroBatcher:
    """Run ``run_batch(items) -> results`` (one result per item, in order) over gathered requests.

    ``submit(items)`` is awaited by a request handler; a request's items always stay in one
    batch, so a request may hold at most ``max_batch_size`` items. ``on_batch(size)`` is called
    after every batch (the server observes its batch-size histogram there). ``window``: when
    the wait for company starts (:data:`WINDOWS`).
    """

    def __init__(
        self,
        run_batch: Callable[[list[Any]], Sequence[Any]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        on_batch: Callable[[int], None] | None = None,
        window: str = "worker",
    ):
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}, got {window!r}")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be 0 or more milliseconds, got {max_wait_ms}")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.on_batch = on_batch
        self.window = window
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        # every submitted request not answered yet, queued or already taken by the worker
        self._unanswered: set[asyncio.Future] = set()

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        """Start the worker task (call from the event loop that will submit)."""
        if self.running:
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")
        self._worker = asyncio.create_task(self._work(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests still waiting get :class:`ShuttingDown`."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        # the queued requests, and those the worker had taken into a batch it never finished
        for future in list(self._unanswered):
            if not future.done():
                future.set_exception(ShuttingDown("the server is shutting down"))
        self._unanswered.clear()
        while self._queue is not None and not self._queue.empty():
            self._queue.get_nowait()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, items: Sequence[Any]) -> list[Any]:
        """Queue ``items`` (1..max_batch_size of them); return their results, in order."""
        if not self.running:
            raise RuntimeError("the micro-batcher is not running: call start() first")
        if not 1 <= len(items) <= self.max_batch_size:
            raise ValueError(
                f"a request must hold 1 to {self.max_batch_size} items, got {len(items)}"
            )
        future = asyncio.get_running_loop().create_future()
        self._unanswered.add(future)
        future.add_done_callback(self._unanswered.discard)
        self._queue.put_nowait(_Pending(list(items), future, time.perf_counter()))
        return await future

    async def _work(self) -> None:
        carried: _Pending | None = None
        while True:
            first = carried or await self._queue.get()
            batch, carried = await self._gather(first)
            await self._execute(batch)

    async def _gather(self, first: _Pending) -> tuple[list[_Pending], _Pending | None]:
        """The batch that starts with ``first``, and a request that did not fit (or None)."""
        batch, size = [first], len(first.items)
        # the window opens now (first may have waited for the model), or when first arrived
        opened = time.perf_counter() if self.window == "worker" else first.arrived
        while True:
            while size < self.max_batch_size and not self._queue.empty():
                following = self._queue.get_nowait()
                if size + len(following.items) > self.max_batch_size:
                    return batch, following
                batch.append(following)
                size += len(following.items)
            waited_ms = (time.perf_counter() - opened) * 1000
            if should_flush(size, self.max_batch_size, waited_ms, self.max_wait_ms):
                return batch, None
            try:
                following = await asyncio.wait_for(
                    self._queue.get(), (self.max_wait_ms - waited_ms) / 1000
                )
            except (asyncio.TimeoutError, TimeoutError):
                return batch, None
            if size + len(following.items) > self.max_batch_size:
                return batch, following
            batch.append(following)
            size += len(following.items)

    async def _execute(self, batch: list[_Pending]) -> None:
        items = [item for pending in batch for item in pending.items]
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self.run_batch, items)
            if len(results) != len(items):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(items)}")
        except Exception as error:  # every waiting request must learn that its batch failed
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        if self.on_batch is not None:
            try:
                self.on_batch(len(items))
            except Exception:  # a broken observer must not stop the batcher or lose answers
                logging.getLogger("handbook.serve").exception("on_batch failed")
        start = 0
        for pending in batch:
            stop = start + len(pending.items)
            if not pending.future.done():  # a client that went away cancelled its future
                pending.future.set_result(list(results[start:stop]))
            start = stop
