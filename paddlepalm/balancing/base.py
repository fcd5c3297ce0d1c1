"""The Balancer protocol: how the losses of several tasks in one step become one gradient.

The training loop computes each task's scalar loss with one forward (one encoder pass per batch,
shared by tasks that label the same inputs), then hands them to :meth:`Balancer.combine`, which
runs the backward pass(es) and leaves the combined gradient in every parameter's ``.grad``.

Conventions shared by every balancer
------------------------------------
* **Scale of the result.** The combined gradient is on the scale of the *sum* of the task losses:
  with every weight 1 and no conflict, each method gives the gradient of ``sum_i L_i``. Switching
  methods therefore changes neither the effective learning rate under SGD nor what a global-norm
  clipping threshold means. (CAGrad's paper update is the mean; ours is ``T`` times it.)
* **Heads keep their own task's gradient.** ``task_params[t]`` (task ``t``'s head) only ever
  receives the gradient of ``L_t`` -- times the task's weight for loss-weighting methods
  (fixed, uncertainty, DWA, GradNorm), unweighted for gradient surgery (PCGrad, CAGrad), which
  only rewrites the shared encoder's gradient.
* **Accumulation.** Gradients are *added* to existing ``.grad`` values and ``scale`` multiplies
  everything (``1 / accumulate_steps``, an AMP loss scale: pass losses without the loss scale and
  put it into ``scale``). Call ``combine(..., sync=False)`` on the
  micro-batches before the last one of an optimizer step: per-task methods then only add the
  micro-batch's task gradients to a buffer and do their surgery once, on the accumulated
  gradients, at the ``sync=True`` call -- so two half batches give the same update as one batch.
  Stateful methods advance their state (DWA's windows, GradNorm's weights, PCGrad's random
  order) once per ``sync=True`` call, i.e. per optimizer step.
* **Tasks present.** ``losses`` may hold any subset of the bound tasks (a step that samples k
  of T tasks); absent tasks get no gradient and are left out of the returned weights.
* **Data parallel.** The convention of :mod:`paddlepalm.distributed`: each rank's loss carries
  its shard weight (``world * rows_here / rows_total``) and gradients are *averaged* over ranks.
  :meth:`set_communicator` gives the balancer that average (an all-reduce mean). Loss values that
  drive state (DWA, GradNorm) are averaged so every rank takes the same decision. Per-task
  methods average each task's flat gradient *before* surgery (the result equals one process with
  the global batch) and also the heads' gradients they wrote, so for them
  :attr:`reduces_gradients` is True: the strategy may skip its own gradient all-reduce (running it
  anyway is harmless: the average of equal values). Every rank must run the same tasks in a step
  (the collectives are matched by order).
"""
import abc
from dataclasses import dataclass
from typing import Callable, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle

Losses = Dict[str, paddle.Tensor]
TaskParams = Dict[str, List[paddle.Tensor]]
AllReduce = Callable[[paddle.Tensor], paddle.Tensor]


@dataclass
class GradientDiagnostics:
    """Task gradients on the shared encoder, measured at one optimizer step.

    ``cosine[i, j]`` is the cosine similarity of tasks ``tasks[i]`` and ``tasks[j]``'s gradients
    (0 where a gradient is zero); ``norms`` their L2 norms (on the scale the loop passed).
    """

    tasks: List[str]
    cosine: np.ndarray
    norms: np.ndarray

    @classmethod
    def from_gram(cls, tasks: Sequence[str], gram: np.ndarray) -> "GradientDiagnostics":
        norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
        outer = np.outer(norms, norms)
        cosine = np.divide(gram, outer, out=np.zeros_like(gram), where=outer > 0)
        return cls(list(tasks), np.clip(cosine, -1.0, 1.0), norms)

    def pairs(self) -> Dict[str, float]:
        """``{'a|b': cosine}`` for every pair of tasks (a before b in task order)."""
        return {"%s|%s" % (a, b): float(self.cosine[i, j])
                for i, a in enumerate(self.tasks) for j, b in enumerate(self.tasks) if i < j}

    def as_record(self) -> dict:
        """A JSON-ready record for metrics.jsonl: ``{'grad_cosine': {...}, 'grad_norm': {...}}``."""
        return {"grad_cosine": self.pairs(),
                "grad_norm": {t: float(n) for t, n in zip(self.tasks, self.norms)}}


class Balancer(abc.ABC):
    """Base class of loss balancers and gradient aggregators (see the module docstring).

    Subclasses set ``name`` (registry name) and ``cost`` (backward passes per step, ``'1'`` or
    ``'T'``) and implement :meth:`combine`; stateful ones override :meth:`state_dict`.
    """

    name: ClassVar[Optional[str]] = None
    cost: ClassVar[str] = "1"
    #: True when combine() already all-reduced every gradient it wrote (set per instance).
    reduces_gradients: bool = False

    def __init__(self, tasks: Optional[Sequence[str]] = None):
        self.tasks: Optional[List[str]] = None
        self._all_reduce: Optional[AllReduce] = None
        self._diagnostics: Optional[GradientDiagnostics] = None
        if tasks is not None:
            self.bind(tasks)

    # ------------------------------------------------------------------ setup
    def bind(self, tasks: Sequence[str]) -> "Balancer":
        """Fix the task names (in order); creates learnable parameters. Call before building the
        optimizer. Binding again to the same tasks is a no-op."""
        tasks = [str(t) for t in tasks]
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError("%s: tasks must be distinct names, got %s" % (type(self).__name__, tasks))
        if self.tasks is not None:
            if self.tasks != tasks:
                raise ValueError("%s is bound to tasks %s, not %s" % (type(self).__name__, self.tasks, tasks))
            return self
        self.tasks = tasks
        self._on_bind()
        return self

    def _on_bind(self) -> None:
        """Hook: create per-task state once the task names are known."""

    def set_communicator(self, all_reduce_mean: Optional[AllReduce]) -> None:
        """Data parallel: ``all_reduce_mean(t)`` returns the mean of ``t`` over the ranks (the same
        on every rank); None: one process."""
        self._all_reduce = all_reduce_mean

    def backward_passes(self, num_tasks: int) -> int:
        """Backward passes one step costs with ``num_tasks`` tasks (without diagnostics)."""
        return 1 if self.cost == "1" else num_tasks

    # ------------------------------------------------------------------ the protocol
    @abc.abstractmethod
    def combine(self, losses: Losses, shared_params: List[paddle.Tensor], task_params: TaskParams,
                scale: float = 1.0, *, sync: bool = True, diagnose: bool = False) -> Dict[str, float]:
        """Backward pass(es) for this step's task losses; returns each present task's weight.

        ``losses``: task -> scalar loss of this step (one forward). ``shared_params``: the shared
        encoder's parameters (frozen ones are skipped). ``task_params``: task -> its head's
        parameters. ``scale`` multiplies every gradient written. ``sync=False`` marks a
        micro-batch that is not the last of an optimizer step. ``diagnose=True`` also measures
        task-gradient cosines (free for per-task methods, T extra backwards for the others); read
        them with :meth:`diagnostics`. Returns the effective weight of each task in ``losses``:
        the coefficient of its gradient in the shared encoder's combined gradient.
        """

    def parameters(self) -> List[paddle.Tensor]:
        """Learnable parameters the *loop's optimizer* must update (uncertainty's log-variances).
        Balancers that update their own weights (GradNorm) return []."""
        return []

    def named_parameters(self) -> List[Tuple[str, paddle.Tensor]]:
        """:meth:`parameters` with structured names (``balancing.<name>.<param>``), for
        :meth:`paddlepalm.optimizer.Optimizer.build`; exclude them from weight decay."""
        return []

    def diagnostics(self) -> Optional[GradientDiagnostics]:
        """Task-gradient cosines of the latest combine() that measured them, else None."""
        return self._diagnostics

    def state_dict(self) -> dict:
        """Everything needed to continue bit-exactly (JSON-ready: lists, floats, ints)."""
        return {"tasks": self.tasks}

    def set_state_dict(self, state: dict) -> None:
        if state.get("tasks") is not None:
            self.bind(state["tasks"])

    # ------------------------------------------------------------------ helpers for subclasses
    def _present(self, losses: Losses, task_params: TaskParams) -> List[str]:
        """Tasks of ``losses`` in bound order (binds to the sorted names on first use)."""
        if not losses:
            raise ValueError("%s.combine: no losses" % type(self).__name__)
        if self.tasks is None:
            self.bind(sorted(losses))
        unknown = [t for t in losses if t not in self.tasks]
        if unknown:
            raise KeyError("%s: unknown task(s) %s; bound tasks: %s"
                           % (type(self).__name__, ", ".join(unknown), ", ".join(self.tasks)))
        for t in losses:
            if int(np.prod(losses[t].shape)) != 1:
                raise ValueError("%s: loss of task %r must be a scalar, got shape %s"
                                 % (type(self).__name__, t, list(losses[t].shape)))
        extra = [t for t in task_params if t not in self.tasks]
        if extra:
            raise KeyError("%s: task_params for unknown task(s) %s" % (type(self).__name__, ", ".join(extra)))
        return [t for t in self.tasks if t in losses]

    def _loss_values(self, losses: Losses, tasks: Sequence[str]) -> np.ndarray:
        """Loss values as float64 numpy, averaged over data-parallel ranks."""
        values = paddle.stack([losses[t].detach().reshape([]).astype("float32") for t in tasks])
        if self._all_reduce is not None:
            values = self._all_reduce(values)
        return values.numpy().astype(np.float64)


# ---------------------------------------------------------------------- gradient plumbing
def trainable(params: Sequence[paddle.Tensor]) -> List[paddle.Tensor]:
    """The parameters that take gradients (frozen ones dropped), without duplicates."""
    seen, out = set(), []
    for p in params:
        if not p.stop_gradient and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def numel(p: paddle.Tensor) -> int:
    return int(np.prod(p.shape)) if len(p.shape) else 1


def flatten(grads: Sequence[Optional[paddle.Tensor]], params: Sequence[paddle.Tensor]) -> paddle.Tensor:
    """One float32 vector of ``grads`` (None -> zeros of the parameter's size)."""
    if not params:
        return paddle.zeros([0], dtype="float32")
    return paddle.concat([(g.astype("float32") if g is not None else paddle.zeros(p.shape, "float32")).reshape([-1])
                          for g, p in zip(grads, params)])


def add_to_grads(params: Sequence[paddle.Tensor], grads: Sequence[Optional[paddle.Tensor]]) -> None:
    """``p.grad += g`` (or ``p.grad = g`` when there is none yet); None entries are skipped."""
    with paddle.no_grad():
        for p, g in zip(params, grads):
            if g is None:
                continue
            g = g.astype(p.dtype).reshape(p.shape)
            if p.grad is None:
                p.grad = g
            else:
                p.grad.add_(g)


def add_flat_to_grads(params: Sequence[paddle.Tensor], flat: paddle.Tensor) -> None:
    """Split one vector over ``params`` (in order) and add it to their gradients."""
    if params:
        add_to_grads(params, paddle.split(flat, [numel(p) for p in params]))


def task_gradient(loss: paddle.Tensor, shared: Sequence[paddle.Tensor], head: Sequence[paddle.Tensor],
                  scale: float, retain_graph: bool) -> Tuple[paddle.Tensor, List[Optional[paddle.Tensor]]]:
    """One task's gradient: (flat vector over ``shared``, list over ``head``), times ``scale``.

    Uses ``paddle.grad`` (it leaves ``.grad`` alone and, unlike a second ``backward(retain_graph=
    True)``, works through the encoder's PyLayer fast paths).
    """
    inputs = list(shared) + list(head)
    if not inputs:
        return paddle.zeros([0], "float32"), []
    target = loss * scale if scale != 1.0 else loss
    grads = paddle.grad(target, inputs, retain_graph=retain_graph, allow_unused=True)
    return flatten(grads[:len(shared)], shared), list(grads[len(shared):])


def gram_matrix(flats: Sequence[paddle.Tensor]) -> np.ndarray:
    """``G G^T`` of flat gradients ``G = [g_1; ...; g_T]``, as float64 numpy (one host copy).

    Computed as ``T (T + 1) / 2`` sums of products: on CPU that is ~2.5x faster than Paddle's
    matmul of the skinny ``[T, P] x [P, T]`` shapes (``benchmarks/bench_balancers.py --surgery``),
    and it needs no stacked copy of the buffers.
    """
    n = len(flats)
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    values = paddle.stack([(flats[i] * flats[j]).sum() for i, j in pairs]).numpy().astype(np.float64)
    gram = np.zeros((n, n))
    for (i, j), v in zip(pairs, values):
        gram[i, j] = gram[j, i] = v
    return gram


def linear_combination(flats: Sequence[paddle.Tensor], coef: Sequence[float]) -> paddle.Tensor:
    """``sum_i coef_i flats_i``; scales the buffers in place (they are consumed)."""
    with paddle.no_grad():
        for f, c in zip(flats, coef):
            if c != 1.0:
                f.scale_(float(c))
        return flats[0] if len(flats) == 1 else paddle.add_n(list(flats))


def measure(losses: Losses, tasks: Sequence[str], shared: Sequence[paddle.Tensor]) -> GradientDiagnostics:
    """Cosines of the task gradients on ``shared`` (T backward passes; keeps the graph)."""
    flats = [task_gradient(losses[t], shared, [], 1.0, retain_graph=True)[0] for t in tasks]
    return GradientDiagnostics.from_gram(tasks, gram_matrix(flats))
