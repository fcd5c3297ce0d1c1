"""How a fit loop runs on one process or many: the ``Strategy`` the loop is given.

:class:`SingleProcess` does nothing; :class:`DataParallel` runs under Paddle's own launcher
(``python -m paddle.distributed.launch``) with Paddle's collectives (:mod:`paddlepalm.distributed`):
it joins the process group in :meth:`setup`, slices each global batch, averages gradients,
aligns the replicas at start and checks they stay in step. The loop only calls the methods below.
"""
import logging
from typing import Any, Dict, Iterable, Iterator, List, Tuple

from paddlepalm import distributed as dist

logger = logging.getLogger("paddlepalm")


class Strategy:
    """Single process: every method is the identity; subclasses override what they change."""

    name = "single"

    def setup(self) -> None:
        """Called once when training starts (before parameters are touched)."""

    @property
    def world_size(self) -> int:
        return 1

    @property
    def rank(self) -> int:
        return 0

    @property
    def is_main(self) -> bool:
        """The process that writes files and prints."""
        return self.rank == 0

    def shard(self, batch: Dict[str, Any]) -> Tuple[Dict[str, Any], float]:
        """This process's rows of a global batch, and the weight of its loss."""
        return batch, 1.0

    def reduce_gradients(self, parameters: Iterable) -> None:
        pass

    def average_losses(self, pending: List[Tuple[int, Any]]) -> List[Tuple[int, Any]]:
        return pending

    def all_reduce_mean(self):
        """A function averaging a tensor over the processes (None in one process)."""
        return None

    def barrier(self) -> None:
        pass

    def broadcast(self, obj: Any) -> Any:
        return obj

    def shard_batches(self, batches: Iterable, num_batches: int) -> Iterator:
        return iter(batches)

    def gather(self, records: List[Any]) -> List[Any]:
        return records

    def step_seed(self, seed: int) -> int:
        return seed

    def start(self, loop) -> None:
        """Align the replicas before the first step (nothing to do in one process)."""

    def check_in_sync(self, loop) -> None:
        pass


class SingleProcess(Strategy):
    """One process, one device."""


class DataParallel(Strategy):
    """Data parallel over the processes of ``paddle.distributed.launch`` (gloo on CPU, NCCL on GPU).

    ``batch_size`` is the global batch: every rank builds the same seeded batch and keeps its
    slice, so the run follows the same steps and data order as one process.
    """

    name = "data_parallel"
    sync_check_steps = dist.SYNC_CHECK_STEPS

    def setup(self) -> None:
        dist.init()

    @property
    def world_size(self) -> int:
        return dist.world_size()

    @property
    def rank(self) -> int:
        return dist.rank()

    def shard(self, batch):
        return dist.shard_batch(batch)

    def reduce_gradients(self, parameters):
        if self.world_size > 1:
            dist.allreduce_gradients(parameters)

    def average_losses(self, pending):
        return dist.average_step_losses(pending)

    def all_reduce_mean(self):
        return dist.all_reduce_mean if self.world_size > 1 else None

    def barrier(self):
        dist.barrier()

    def broadcast(self, obj):
        return dist.broadcast_object(obj)

    def shard_batches(self, batches, num_batches):
        return dist.shard_batches(batches, num_batches)

    def gather(self, records):
        return dist.gather_records(records)

    def step_seed(self, seed):
        return dist.step_seed(seed)

    def start(self, loop) -> None:
        """Same tasks and data on every rank; rank 0's parameters and data positions everywhere."""
        world = self.world_size
        if world == 1:
            return
        plan = [(t.name, t.reader.num_examples, t.reader.batch_size) for t in loop.tasks]
        dist.check_same((plan, loop.sampler.total_steps, loop.sampler.strategy), "the tasks and their "
                        "data (task, examples, batch_size), total steps and sampling strategy")
        for t in loop.tasks:
            if t.reader.batch_size < world:
                raise ValueError("task %r: batch_size %d is smaller than the %d ranks; in data-parallel "
                                 "training batch_size is the global batch" % (t.name, t.reader.batch_size, world))
            if t.reader.batch_size % world:
                logger.warning("task %r: global batch_size %d does not split evenly over %d ranks; ranks "
                               "get %d or %d rows", t.name, t.reader.batch_size, world,
                               t.reader.batch_size // world, -(-t.reader.batch_size // world))
        dist.broadcast_parameters([p for _, p in loop.network.named_parameters()])
        loop.set_data_positions(self.broadcast(loop.data_positions()))
        self.check_in_sync(loop)

    def check_in_sync(self, loop) -> None:
        """Compare step, sampler and reader positions across ranks (raises if they diverged)."""
        if self.world_size == 1:
            return
        positions = loop.data_positions()
        state = (loop.state.global_step, dist._digest(positions["sampler"]),
                 [(t.reader.batcher.epoch, t.reader.batcher.position) for t in loop.tasks])
        dist.check_same(state, "(step, sampler state digest, reader positions)")


def default_strategy() -> Strategy:
    """:class:`DataParallel` when started by Paddle's launcher, else :class:`SingleProcess`."""
    return DataParallel() if dist.is_launched() else SingleProcess()
