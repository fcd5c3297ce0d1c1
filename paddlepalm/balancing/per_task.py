"""Methods that need each task's own gradient on the shared encoder (one backward per task).

Each task's gradient over the shared encoder is one flat float32 buffer (``paddle.concat`` of
the flattened parameter gradients); every method here combines the ``T`` buffers
linearly, ``g = sum_i a_i g_i``, with coefficients ``a`` that a subclass computes from the
``T x T`` Gram matrix ``g_i . g_j`` alone (numpy, float64): the work on the ``P`` parameters is
``T (T + 1) / 2`` dot products and one linear combination per optimizer step, whatever the method.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import paddle

from paddlepalm.balancing.base import (Balancer, GradientDiagnostics, Losses, TaskParams, add_flat_to_grads,
                                       add_to_grads, flatten, gram_matrix, linear_combination, task_gradient,
                                       trainable)


class PerTaskGradients(Balancer):
    """Base: per-task gradients via ``paddle.grad`` (``T`` backward passes sharing one forward).

    Subclasses implement :meth:`coefficients` and may override :meth:`head_weight`.
    """

    cost = "T"

    def __init__(self, tasks: Optional[Sequence[str]] = None):
        super().__init__(tasks)
        self._buffers: Dict[str, paddle.Tensor] = {}  # task -> accumulated flat shared gradient
        self._loss_sums: Dict[str, float] = {}
        self._loss_counts: Dict[str, int] = {}
        self._touched_heads: Dict[int, paddle.Tensor] = {}
        self._last_weights: Dict[str, float] = {}

    def set_communicator(self, all_reduce_mean) -> None:
        super().set_communicator(all_reduce_mean)
        self.reduces_gradients = all_reduce_mean is not None

    def combine(self, losses: Losses, shared_params, task_params: TaskParams, scale: float = 1.0, *,
                sync: bool = True, diagnose: bool = False) -> Dict[str, float]:
        present = self._present(losses, task_params)
        self._diagnostics = None
        shared = trainable(shared_params)
        values = losses_as_floats(losses, present)
        for k, task in enumerate(present):
            head = trainable(task_params.get(task, []))
            flat, head_grads = task_gradient(losses[task], shared, head, scale,
                                             retain_graph=k < len(present) - 1)
            weight = self.head_weight(task)
            add_to_grads(head, [g * weight if g is not None and weight != 1.0 else g for g in head_grads])
            self._touched_heads.update((id(p), p) for p in head)
            self._buffers[task] = self._buffers[task] + flat if task in self._buffers else flat
            self._loss_sums[task] = self._loss_sums.get(task, 0.0) + values[k]
            self._loss_counts[task] = self._loss_counts.get(task, 0) + 1
        if not sync:
            return {t: self._last_weights.get(t, 1.0) for t in present}
        return self._finish(shared)

    def _finish(self, shared: List[paddle.Tensor]) -> Dict[str, float]:
        """The optimizer step's surgery on the accumulated buffers."""
        tasks = [t for t in self.tasks if t in self._buffers]
        flats = [self._buffers[t] for t in tasks]
        loss_means = np.array([self._loss_sums[t] / self._loss_counts[t] for t in tasks])
        if self._all_reduce is not None:
            flats = [self._all_reduce(f) for f in flats]
            loss_means = self._all_reduce(paddle.to_tensor(loss_means, dtype="float64")).numpy()
            self._reduce_heads()
        gram = gram_matrix(flats)
        self._diagnostics = GradientDiagnostics.from_gram(tasks, gram) if len(tasks) > 1 else None
        coef = np.asarray(self.coefficients(tasks, gram, loss_means), dtype=np.float64)
        if not np.all(np.isfinite(coef)):  # an overflowing AMP step: leave non-finite grads for the scaler
            coef = np.ones(len(tasks))
        self._buffers = {}
        add_flat_to_grads(shared, linear_combination(flats, coef))
        self._loss_sums, self._loss_counts, self._touched_heads = {}, {}, {}
        self._last_weights = {t: float(c) for t, c in zip(tasks, coef)}
        return dict(self._last_weights)

    def _reduce_heads(self) -> None:
        heads = [p for p in self._touched_heads.values() if p.grad is not None]
        if not heads:
            return
        reduced = self._all_reduce(flatten([p.grad for p in heads], heads))
        with paddle.no_grad():
            for p, g in zip(heads, paddle.split(reduced, [int(np.prod(p.shape)) for p in heads])):
                p.grad.set_value(g.reshape(p.shape).astype(p.dtype))

    # ------------------------------------------------------------------ to implement
    def coefficients(self, tasks: List[str], gram: np.ndarray, loss_means: np.ndarray) -> np.ndarray:
        """``a`` with the shared gradient ``sum_i a_i g_i``; ``gram[i, j] = g_i . g_j``."""
        raise NotImplementedError

    def head_weight(self, task: str) -> float:
        """Factor on the task's head gradient (1: the head keeps its own gradient)."""
        return 1.0

    def state_dict(self) -> dict:
        if self._buffers:
            raise RuntimeError("%s.state_dict() in the middle of gradient accumulation (a combine(..., "
                               "sync=False) without its sync=True call); save after an optimizer step"
                               % type(self).__name__)
        state = super().state_dict()
        state["last_weights"] = dict(self._last_weights)
        return state

    def set_state_dict(self, state: dict) -> None:
        super().set_state_dict(state)
        self._last_weights = dict(state.get("last_weights", {}))


def losses_as_floats(losses: Losses, tasks: Sequence[str]) -> List[float]:
    """This rank's loss values (one device-to-host copy)."""
    return paddle.stack([losses[t].detach().reshape([]).astype("float32") for t in tasks]).numpy().astype(
        np.float64).tolist()
