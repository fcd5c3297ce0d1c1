"""Parameter updates on every CPU core the run uses.

Paddle applies an optimizer one parameter after the other, and its CPU ``adamw`` / ``lamb``
kernels run on one thread: on a 2-core machine the second core idles through the whole update
(~90 ms of a ~200 ms MiniLM step; half of it is the word embedding). Paddle releases the GIL
inside each kernel, so the updates of *different* parameters can run at the same time from a
small thread pool. Each parameter still gets exactly the kernel call, on exactly the inputs, it
would get in order, so parameters and optimizer state are bit-identical to Paddle's sequential
step; only the wall time changes.

:func:`parallel_optimizer` turns a Paddle optimizer class into one that does this on CPU when the
run has more than one thread (``paddlepalm.set_num_threads`` / ``num_threads``); on GPU, in
static mode, or with one thread it is Paddle's own step.
"""
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Dict, List, Optional

_POOLS: Dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()
_CLASSES: Dict[type, type] = {}


def update_workers() -> int:
    """Threads for parameter updates: the run's intra-op thread count on CPU, else 1."""
    import paddle

    from paddlepalm import _env

    if not paddle.in_dynamic_mode() or not paddle.device.get_device().startswith("cpu"):
        return 1
    n = _env._THREADS.get("num_threads")
    if not n:
        try:
            n = int(os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS") or 1)
        except ValueError:
            n = 1
    return max(1, int(n))


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="palm-update")
        return _POOLS[workers]


def _run_update(update, block, param_and_grad):
    import paddle

    with paddle.no_grad():  # the step's no_grad may be per thread
        return update(block, param_and_grad)


def parallel_optimizer(optimizer_cls: type) -> type:
    """A subclass of Paddle optimizer class ``optimizer_cls`` whose step updates parameters from a
    thread pool (see the module docstring); same name, state and results as ``optimizer_cls``."""
    if optimizer_cls in _CLASSES:
        return _CLASSES[optimizer_cls]

    class Parallel(optimizer_cls):
        _palm_pending: Optional[List[Future]] = None
        _palm_pool: Optional[ThreadPoolExecutor] = None

        def _create_optimization_pass(self, parameters_and_grads, *args, **kwargs):
            workers = update_workers()
            if workers < 2 or not isinstance(parameters_and_grads, list):
                return super()._create_optimization_pass(parameters_and_grads, *args, **kwargs)
            self._palm_pool, self._palm_pending = _pool(workers), []
            try:
                return super()._create_optimization_pass(parameters_and_grads, *args, **kwargs)
            finally:
                pending, self._palm_pending, self._palm_pool = self._palm_pending, None, None
                wait(pending)  # every update is done before step() returns
                for future in pending:  # then the first error, if any, is raised here
                    future.result()

        def _append_optimize_op(self, block, param_and_grad):
            if self._palm_pending is None:
                return super()._append_optimize_op(block, param_and_grad)
            self._palm_pending.append(self._palm_pool.submit(_run_update, super()._append_optimize_op, block,
                                                             param_and_grad))
            return None

    Parallel.__name__ = Parallel.__qualname__ = optimizer_cls.__name__  # Paddle keys some paths on it
    Parallel.__module__ = __name__
    _CLASSES[optimizer_cls] = Parallel
    return Parallel
