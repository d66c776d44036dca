"""Group commit: one writer thread stores the batches that arrived together in one transaction.

Each ingest request hands its validated batch to `GroupCommitter.submit` and
waits on the returned future; the writer thread takes everything waiting (up
to `max_group` batches), calls `store(group)` once, and resolves each future
with that batch's own result or error. On SQLite the fsync of `synchronous=FULL`
and the write lock are then paid once per group instead of once per batch; on
PostgreSQL the round trips and the commit are. A request is still acknowledged
only after the transaction holding its batch committed.

When the requests come one at a time the group is one batch and nothing waits
longer than before; when they come faster than one transaction, groups grow by
themselves (no timer, no added latency).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from prometheus_client import Histogram

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class CommitterClosedError(RuntimeError):
    """The committer was closed; the batch was not stored."""


class GroupCommitter(Generic[T, R]):
    """A queue and one writer thread calling `store` with every item waiting, up to `max_group` at a time.

    `store(items)` returns one result per item, in order: a value, or an exception
    for that item alone (the others of the group still succeed). An exception
    raised by `store` itself fails every item of the group.
    """

    def __init__(
        self,
        store: Callable[[Sequence[T]], Sequence[R | BaseException]],
        *,
        max_group: int,
        group_sizes: Histogram | None = None,
        name: str = "ingest-writer",
    ) -> None:
        self._store = store
        self.max_group = max_group
        self._group_sizes = group_sizes
        self._waiting: deque[tuple[T, Future[R]]] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future[R]:
        """Queue one item; the future resolves once its group is stored (or failed)."""
        future: Future[R] = Future()
        with self._ready:
            if self._closed:
                raise CommitterClosedError("the ingest writer is stopped")
            self._waiting.append((item, future))
            self._ready.notify()
        return future

    @property
    def depth(self) -> int:
        """Items waiting or being stored."""
        return len(self._waiting) + self._busy

    def close(self, timeout: float = 30.0) -> None:
        """Store what is queued, then stop the thread."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._waiting and not self._closed:
                    self._ready.wait()
                if not self._waiting:
                    return  # closed and drained
                count = min(len(self._waiting), self.max_group)
                group = [self._waiting.popleft() for _ in range(count)]
                self._busy = count
            self._commit(group)
            self._busy = 0

    def _commit(self, group: list[tuple[T, Future[R]]]) -> None:
        futures = [f for _, f in group]
        if self._group_sizes is not None:
            self._group_sizes.observe(len(group))
        started = time.perf_counter()
        try:
            results = self._store([item for item, _ in group])
        except Exception as exc:  # noqa: BLE001 - delivered to every waiting request, never lost
            for future in futures:
                future.set_exception(exc)
            return
        log.debug("stored a group of %d in %.1f ms", len(group), (time.perf_counter() - started) * 1000)
        for future, result in zip(futures, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
