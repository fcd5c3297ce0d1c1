"""Data-parallel multi-task training on Paddle's collective API.

Start a script (or the ``paddlepalm`` command line) under Paddle's own launcher::

    python -m paddle.distributed.launch --nproc_per_node 2 train.py        # CPU: gloo, GPU: NCCL

and :class:`~paddlepalm.MultiHeadTrainer` trains data-parallel with no change to the script (its
fit loop picks the :class:`~paddlepalm.engine.strategy.DataParallel` strategy, which calls the
collectives below). The scheme (see ``docs/distributed.md``):

* every rank runs the same sampler with the same seed, so all ranks train the same task at each
  step (checked at the start and every :data:`SYNC_CHECK_STEPS` steps);
* a reader's ``batch_size`` is the **global** batch: every rank builds the same global batch from
  the same seeded batcher and keeps its own contiguous slice of rows (:func:`shard_batch`), so a
  run on N ranks follows the same steps, learning-rate schedule and data order as one process;
* after backward, the gradients of the parameters that got one this step are averaged over the
  ranks (:func:`allreduce_gradients`); all ranks run the same task, so they reduce the same
  parameters and the heads that were not sampled keep no gradient and get no update, as in one
  process;
* rank 0 alone writes checkpoints, logs, predictions and prints; evaluation is sharded by batch
  and the records gathered on every rank, so all ranks compute the same metrics (and take the
  same early-stopping decision).

In a single process every function here is a no-op, so single-process training is unchanged.
"""
import logging
import os
import pickle
import subprocess
import sys
import zlib
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger("paddlepalm")

SYNC_CHECK_STEPS = 100  # compare the ranks' sampler/reader positions this often
BUCKET_BYTES = 32 << 20  # gradients are reduced in flat buckets of at most this size
_STATE = {"initialized": False}


# ----------------------------------------------------------------------------- process group
def launched_world_size() -> int:
    """Number of processes the launcher started (1 outside ``paddle.distributed.launch``)."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", os.environ.get("PADDLE_GLOBAL_SIZE", "1")) or 1)


def is_launched() -> bool:
    return launched_world_size() > 1


def init() -> bool:
    """Join the process group when started by the launcher (idempotent; False in one process).

    The device is the one the launcher gave this rank: ``gpu:<FLAGS_selected_gpus>`` (that is
    ``gpu:<local rank>`` with the default ``--devices``) with the NCCL backend, or the CPU with
    gloo when Paddle has no GPU (the launcher then sets ``PADDLE_DISTRI_BACKEND=gloo``).
    Call it before building the model; the data-parallel strategy calls it when training starts.
    """
    if _STATE["initialized"]:
        return True
    if not is_launched():
        return False
    import paddle
    import paddle.distributed as dist

    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 \
            and os.environ.get("PADDLE_DISTRI_BACKEND", "auto") != "gloo":
        paddle.set_device("gpu:%d" % dist.ParallelEnv().device_id)
    else:
        paddle.set_device("cpu")
    dist.init_parallel_env()
    _STATE["initialized"] = True
    logger.info("rank %d of %d on %s (backend %s)", dist.get_rank(), dist.get_world_size(),
                paddle.get_device(), os.environ.get("PADDLE_DISTRI_BACKEND", "auto"))
    return True


def is_initialized() -> bool:
    """True once this process has joined the launcher's process group (:func:`init`)."""
    return _STATE["initialized"]


def world_size() -> int:
    """Number of data-parallel ranks in the joined process group (1 before :func:`init`).

    Asking never joins the process group: training joins it explicitly through its strategy
    (:class:`paddlepalm.engine.strategy.DataParallel`), or a script calls :func:`init`.
    """
    if not _STATE["initialized"]:
        return 1
    import paddle.distributed as dist

    return dist.get_world_size()


def rank() -> int:
    """This process's rank: the process group's, or the launcher's ``PADDLE_TRAINER_ID`` before
    :func:`init` (0 in a single process)."""
    if not _STATE["initialized"]:
        return int(os.environ.get("PADDLE_TRAINER_ID", os.environ.get("PADDLE_GLOBAL_RANK", "0")) or 0)
    import paddle.distributed as dist

    return dist.get_rank()


def local_rank() -> int:
    return int(os.environ.get("PADDLE_LOCAL_RANK", os.environ.get("PADDLE_RANK_IN_NODE", "0")) or 0)


def is_main_process() -> bool:
    """True on rank 0 (and in a single process): the rank that writes files and prints."""
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        import paddle.distributed as dist

        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` as rank ``src`` has it (picklable objects)."""
    if world_size() == 1:
        return obj
    import paddle.distributed as dist

    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def all_gather_object(obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    if world_size() == 1:
        return [obj]
    import paddle.distributed as dist

    out: List[Any] = []
    dist.all_gather_object(out, obj)
    return out


# ----------------------------------------------------------------------------- data sharding
def shard_range(n: int, rank_: int, world: int) -> Tuple[int, int]:
    """Rows ``[lo, hi)`` of ``n`` for ``rank_``: contiguous, sizes differ by at most one."""
    base, extra = divmod(n, world)
    lo = rank_ * base + min(rank_, extra)
    return lo, lo + base + (1 if rank_ < extra else 0)


def _batch_rows(batch: Dict[str, Any]) -> int:
    if "feature_index" in batch:
        return len(batch["feature_index"])
    if "pair_rows" in batch:
        return int(batch["pair_rows"])
    return len(batch["input_ids"])


def slice_batch(batch: Dict[str, Any], lo: int, hi: int) -> Dict[str, Any]:
    """Rows ``[lo, hi)`` of a padded batch.

    Arrays whose first axis is the batch's row count are sliced; pairwise batches (``pair_rows`` =
    B with 2B encoder rows, positives then negatives) keep rows ``lo..hi`` of both halves; scalars
    are kept. Padding stays as in the global batch, so a row sees exactly the inputs it would in
    one process.
    """
    if "chunk_rows" in batch:  # long documents: whole documents with their chunks
        from paddlepalm.reader.batching import slice_documents

        return slice_documents(batch, lo, hi)
    n = _batch_rows(batch)
    pairwise = "pair_rows" in batch
    out = {}
    for key, value in batch.items():
        if key == "pair_rows":
            out[key] = np.asarray(hi - lo, dtype=np.asarray(value).dtype)
        elif isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n:
            out[key] = value[lo:hi]
        elif pairwise and isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == 2 * n:
            out[key] = np.concatenate([value[lo:hi], value[n + lo:n + hi]])
        else:
            out[key] = value
    return out


def shard_batch(batch: Dict[str, Any]) -> Tuple[Dict[str, Any], float]:
    """This rank's slice of a global batch and the weight of its loss.

    The weight ``world * rows_here / rows_total`` makes the average over ranks of the weighted
    gradients equal the gradient of the global batch's mean loss even when the rows do not split
    evenly. A rank left without rows (a last batch smaller than the number of ranks) runs the first
    row with weight 0, so that every rank still reduces the same gradients. One process:
    ``(batch, 1.0)``.
    """
    world = world_size()
    if world == 1:
        return batch, 1.0
    n = _batch_rows(batch)
    lo, hi = shard_range(n, rank(), world)
    if hi == lo:
        return slice_batch(batch, 0, 1), 0.0
    return slice_batch(batch, lo, hi), world * (hi - lo) / float(n)


def shard_batches(batches: Iterable, num_batches: int) -> Iterator:
    """This rank's contiguous share of an evaluation pass of ``num_batches`` batches."""
    world = world_size()
    if world == 1:
        yield from batches
        return
    lo, hi = shard_range(num_batches, rank(), world)
    for i, batch in enumerate(batches):
        if i >= hi:
            break
        if i >= lo:
            yield batch


def gather_records(records: List[Any]) -> List[Any]:
    """Concatenate every rank's records in rank order (= the order of one process's pass)."""
    if world_size() == 1:
        return records
    return [r for part in all_gather_object(records) for r in part]


# ----------------------------------------------------------------------------- gradients & state
def _buckets(tensors: Sequence, limit: int) -> List[list]:
    groups: Dict[str, List[list]] = {}
    for t in tensors:
        nbytes = int(np.prod(t.shape)) * t.element_size()
        runs = groups.setdefault(str(t.dtype), [[]])
        if runs[-1] and sum(int(np.prod(x.shape)) * x.element_size() for x in runs[-1]) + nbytes > limit:
            runs.append([])
        runs[-1].append(t)
    return [b for runs in groups.values() for b in runs if b]


def allreduce_gradients(parameters: Iterable, bucket_bytes: int = BUCKET_BYTES) -> int:
    """Average the gradients of ``parameters`` over the ranks; returns how many were reduced.

    Only parameters holding a gradient take part (a head whose task did not run keeps ``None``).
    All ranks run the same task on every step, so they hold gradients for the same parameters in
    the same order and issue identical collectives. Gradients travel in flat buckets, one
    ``all_reduce`` per bucket.
    """
    world = world_size()
    if world == 1:
        return 0
    import paddle
    import paddle.distributed as dist

    grads = [p.grad for p in parameters if not p.stop_gradient and p.grad is not None]
    for bucket in _buckets(grads, bucket_bytes):
        flat = paddle.concat([g.reshape([-1]) for g in bucket]) if len(bucket) > 1 else bucket[0].reshape([-1])
        dist.all_reduce(flat)
        flat = flat * (1.0 / world)
        sizes = [int(np.prod(g.shape)) for g in bucket]
        for g, piece in zip(bucket, paddle.split(flat, sizes) if len(bucket) > 1 else [flat]):
            paddle.assign(piece.reshape(g.shape), output=g)
    return len(grads)


def all_reduce_mean(tensor):
    """The mean of ``tensor`` over the ranks (the same on every rank). One process: ``tensor``."""
    world = world_size()
    if world == 1:
        return tensor
    import paddle.distributed as dist

    total = tensor.clone()
    dist.all_reduce(total)
    return total / float(world)


def broadcast_parameters(parameters: Iterable, src: int = 0) -> None:
    """Copy rank ``src``'s parameter values to every rank (so all replicas start equal)."""
    if world_size() == 1:
        return
    import paddle.distributed as dist

    for p in parameters:
        dist.broadcast(p, src=src)


def average_step_losses(pending: List[Tuple[int, Any]]) -> List[Tuple[int, Any]]:
    """``(task_id, weighted loss)`` per step -> the global batch's loss, one collective in all."""
    world = world_size()
    if world == 1 or not pending:
        return pending
    import paddle
    import paddle.distributed as dist

    stacked = paddle.stack([loss.astype("float32").reshape([]) for _, loss in pending])
    dist.all_reduce(stacked)
    values = (stacked / world).numpy()
    return [(task_id, float(v)) for (task_id, _), v in zip(pending, values)]


def step_seed(seed: int) -> int:
    """A per-rank seed (dropout differs across ranks); ``seed`` itself in one process."""
    world = world_size()
    return seed if world == 1 else (seed * world + rank()) % (2 ** 63)


def check_same(value: Any, what: str) -> None:
    """Raise on every rank if ``value`` differs between ranks (one small all-gather)."""
    if world_size() == 1:
        return
    values = all_gather_object(value)
    bad = [r for r, v in enumerate(values) if v != values[0]]
    if bad:
        raise RuntimeError("data-parallel ranks disagree on %s: rank 0 has %r, rank %d has %r"
                           % (what, values[0], bad[0], values[bad[0]]))


def _digest(obj: Any) -> int:
    return zlib.crc32(pickle.dumps(obj, protocol=4))


# ----------------------------------------------------------------------------- launching
def launch_command(args: Sequence[str], nproc: int, nnodes: Optional[int] = None,
                   master: Optional[str] = None, log_dir: Optional[str] = None,
                   devices: Optional[str] = None) -> List[str]:
    """``python -m paddle.distributed.launch ... python -u <args>`` (``args`` start after python)."""
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(int(nproc))]
    if nnodes:
        cmd += ["--nnodes", str(nnodes)]
    if master:
        cmd += ["--master", master]
    if devices:
        cmd += ["--devices", devices]
    if log_dir:
        cmd += ["--log_dir", log_dir]
    # a training "script" not ending in .py is run as given: here the interpreter itself
    return cmd + [sys.executable, "-u"] + list(args)


def relaunch(args: Sequence[str], nproc: int, **kwargs) -> int:
    """Run ``python <args>`` on ``nproc`` local processes under Paddle's launcher; its exit code.

    ``args`` is what follows the interpreter, e.g. ``['-m', 'paddlepalm', 'train', 'cfg.yaml']``.
    Used by ``paddlepalm train --nproc N``; inside a launched job it must not be called again.
    """
    if is_launched():
        raise RuntimeError("already running under paddle.distributed.launch")
    cmd = launch_command(args, nproc, **kwargs)
    logger.info("launching: %s", " ".join(cmd))
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # the launcher got the same Ctrl-C: let it stop its workers
        return proc.wait()


def without_option(argv: Sequence[str], option: str) -> List[str]:
    """``argv`` less ``option VALUE`` / ``option=VALUE`` (e.g. ``--nproc 2``)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def relaunch_cli(argv: Sequence[str], nproc: int, output_dir: str) -> int:
    """``paddlepalm <argv>`` without ``--nproc``, on ``nproc`` processes under Paddle's launcher.

    The workers' logs go to ``<output_dir>/launch_logs/workerlog.<rank>`` (rank 0's is also shown
    on the console); the launcher's exit code is returned.
    """
    log_dir = os.path.join(os.path.abspath(output_dir), "launch_logs")
    return relaunch(["-m", "paddlepalm"] + without_option(argv, "--nproc"), nproc, log_dir=log_dir)
