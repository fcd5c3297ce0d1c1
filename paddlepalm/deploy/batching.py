"""Micro-batching of concurrent prediction requests, with a bounded queue.

Requests (a task and a list of inputs) wait in one FIFO queue. A worker thread takes the oldest
request's task and waits up to ``max_wait_ms`` (counted from that request's arrival) for more
requests of the same task, until ``max_batch`` inputs are gathered; it then runs them as one
``predict(task, inputs)`` call and hands each request its own slice of the predictions. A full
queue refuses new requests at once (:class:`Overloaded`) instead of growing without bound.
No web framework here: the server wraps :meth:`MicroBatcher.submit`'s futures.
"""
import collections
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence


class Overloaded(RuntimeError):
    """The queue is full: the caller should retry later (HTTP 429)."""


class ShuttingDown(RuntimeError):
    """The batcher is closing and takes no new requests (HTTP 503)."""


class _Request:
    __slots__ = ("task", "inputs", "future", "arrived")

    def __init__(self, task: str, inputs: Sequence[Any]):
        self.task, self.inputs, self.future, self.arrived = task, list(inputs), Future(), time.monotonic()


class MicroBatcher:
    """``MicroBatcher(predict, max_batch=32, max_wait_ms=5, max_queue=256, workers=1)``.

    ``predict(task, inputs) -> predictions`` (one per input, in order: ``palm.load``'s
    ``predict``). ``max_queue`` bounds the requests waiting (not yet running). A request larger
    than ``max_batch`` runs alone. Thread-safe; :meth:`close` finishes the queued requests.
    """

    def __init__(self, predict: Callable[[str, List[Any]], List[Dict[str, Any]]], max_batch: int = 32,
                 max_wait_ms: float = 5.0, max_queue: int = 256, workers: int = 1):
        if max_batch < 1 or max_queue < 1 or workers < 1 or max_wait_ms < 0:
            raise ValueError("max_batch, max_queue and workers must be >= 1 and max_wait_ms >= 0")
        self.predict, self.max_batch, self.max_queue = predict, int(max_batch), int(max_queue)
        self.max_wait = float(max_wait_ms) / 1000.0
        self._queue: Deque[_Request] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.batch_sizes: Dict[int, int] = collections.Counter()  # inputs per predict call -> calls
        self._threads = [threading.Thread(target=self._work, name="paddlepalm-batcher-%d" % i, daemon=True)
                         for i in range(int(workers))]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ public
    def submit(self, task: str, inputs: Sequence[Any]) -> Future:
        """Queue one request; its future yields the predictions for ``inputs``."""
        request = _Request(task, inputs)
        with self._cond:
            if self._closed:
                raise ShuttingDown("the service is shutting down")
            if len(self._queue) >= self.max_queue:
                raise Overloaded("%d requests are already waiting (max_queue); retry later" % len(self._queue))
            self._queue.append(request)
            self._cond.notify_all()
        return request.future

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def close(self, timeout: Optional[float] = None) -> None:
        """Take no new requests, finish the queued ones, stop the workers."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    # ------------------------------------------------------------------ worker
    def _next_batch(self) -> Optional[List[_Request]]:
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            task = self._queue[0].task
            deadline = self._queue[0].arrived + self.max_wait
            while not self._closed and self._count(task) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch, size = [], 0
            for request in list(self._queue):
                if request.task != task:
                    continue
                if batch and size + len(request.inputs) > self.max_batch:
                    break
                batch.append(request)
                size += len(request.inputs)
            for request in batch:
                self._queue.remove(request)
            return batch

    def _count(self, task: str) -> int:
        return sum(len(r.inputs) for r in self._queue if r.task == task)

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            live = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if not live:
                continue
            self._run(live)

    def _run(self, live: List[_Request]) -> None:
        inputs = [x for r in live for x in r.inputs]
        self.batch_sizes[len(inputs)] += 1
        try:
            predictions = self.predict(live[0].task, inputs)
        except BaseException as error:  # noqa: BLE001 -- the requests get the error, the worker lives on
            if len(live) > 1:  # one bad request must not fail the others it was batched with
                for r in live:
                    self._run([r])
            else:
                live[0].future.set_exception(error)
            return
        offset = 0
        for r in live:
            r.future.set_result([_local(row, item, k) for k, (row, item) in
                                 enumerate(zip(predictions[offset:offset + len(r.inputs)], r.inputs))])
            offset += len(r.inputs)


def _local(row: Dict[str, Any], item: Any, k: int) -> Dict[str, Any]:
    """A prediction of a merged batch, renumbered as if its request had run alone."""
    row = dict(row)
    if "index" in row:
        row["index"] = k
    if "id" in row and not (isinstance(item, dict) and ("id" in item or "qid" in item)):
        row["id"] = str(k)  # MRC numbers questions without an id by position
    return row
