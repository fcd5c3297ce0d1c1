"""ONNX Runtime intra-op thread pools: one per session (ORT's default) or one for the whole process.

``thread_pool='session'``: every ``InferenceSession`` owns a pool of ``threads`` workers. A
Predictor holds one session per task, and on a small CPU the idle pools' spinning workers compete
with the pool that is running: on the 2-vCPU box of docs/deploy.md an int8 SNIPS slot graph at
batch 1 took 0.9-1.4 ms beside its intent session, 0.55-0.6 ms alone.

``thread_pool='process'``: every session of the process runs on ONNX Runtime's one global pool
(``onnxruntime.set_global_thread_pool_sizes`` + ``SessionOptions.use_per_session_threads =
False``): the same graph then took 0.59-0.60 ms beside its intent session. Two rules of ONNX
Runtime (1.32) come with it, and :func:`session_options` turns both into clear errors:

* the pool's size is fixed when it is first made: a process has one thread count;
* from then on ORT refuses any new session of the process that asks for its own pool, the
  user's own ``InferenceSession(path)`` with default options included (sessions made before keep
  working). So it is opt-in, and ``paddlepalm serve`` (which owns its process) uses it.
"""
import threading
from typing import Any, Optional

THREAD_POOLS = ("session", "process")

_lock = threading.Lock()
_process_pool_threads: Optional[int] = None  # the size paddlepalm gave ORT's global pool (0: ORT's default)


def process_pool_threads() -> Optional[int]:
    """The intra-op size of the process-wide pool paddlepalm made (0: ORT's default), or None."""
    return _process_pool_threads


def check_thread_pool(thread_pool: str) -> str:
    """``thread_pool`` if it is one of :data:`THREAD_POOLS`, else ``ValueError``."""
    if thread_pool not in THREAD_POOLS:
        raise ValueError("thread_pool must be one of %s, got %r" % (", ".join(THREAD_POOLS), thread_pool))
    return thread_pool


def session_options(ort: Any, threads: Optional[int], thread_pool: str = "session") -> Any:
    """``ort.SessionOptions`` for one of paddlepalm's sessions (sequential, all graph rewrites).

    ``threads``: intra-op threads (None: ONNX Runtime's default, one per physical core).
    ``thread_pool``: ``'session'`` or ``'process'`` (module docstring). Raises ``ValueError`` when
    the process already holds a process-wide pool of another size, or when a ``'session'`` pool is
    asked for after a process-wide one exists (ORT would refuse the session).
    """
    global _process_pool_threads
    check_thread_pool(thread_pool)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # no inter-op pool is used
    size = int(threads or 0)
    with _lock:
        if thread_pool == "session":
            if _process_pool_threads is not None:
                raise ValueError("this process already runs ONNX Runtime on one process-wide thread pool "
                                 "(thread_pool='process'), and ONNX Runtime then refuses sessions with their own "
                                 "pool: use thread_pool='process' here too")
            options.inter_op_num_threads = 1  # (a pool size set with the global pool makes ORT warn)
            if threads:
                options.intra_op_num_threads = size
            return options
        if _process_pool_threads is None:
            try:
                ort.set_global_thread_pool_sizes(size, 1)
            except Exception as e:  # ORT: "Global thread pools have already been created, cannot replace them"
                raise ValueError("ONNX Runtime's process-wide thread pool was already made by other code in this "
                                 "process and cannot be resized (%s); use thread_pool='session', or make the "
                                 "Predictor before any other thread_pool user" % e) from e
            _process_pool_threads = size
        elif _process_pool_threads != size:
            raise ValueError("ONNX Runtime's process-wide thread pool of this process has %s intra-op threads and "
                             "cannot be resized: pass threads=%s or use thread_pool='session' in a separate process"
                             % (_process_pool_threads or "ORT's default number of", _process_pool_threads or None))
    options.use_per_session_threads = False
    return options
