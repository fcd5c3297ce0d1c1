"""Loss weighting: one backward pass of ``sum_i w_i L_i`` (+ a regulariser).

* :class:`FixedWeights` (``fixed``): constant weights (today's ``loss_weight``).
* :class:`UncertaintyWeighting` (``uncertainty``): Kendall, Gal & Cipolla 2018, learnable
  log-variances.
* :class:`DynamicWeightAverage` (``dwa``): Liu, Johns & Davison 2019, weights from how fast each
  task's loss fell over the last two windows.
"""
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle

from paddlepalm.balancing.base import Balancer, Losses, TaskParams, measure, trainable


class LossWeighting(Balancer):
    """Base of the methods whose update is the gradient of a weighted sum of the losses.

    Subclasses implement :meth:`weighted_loss`; stateful ones observe losses in :meth:`_observe`
    and advance in :meth:`_advance` (once per optimizer step).
    """

    cost = "1"

    def combine(self, losses: Losses, shared_params, task_params: TaskParams, scale: float = 1.0, *,
                sync: bool = True, diagnose: bool = False) -> Dict[str, float]:
        present = self._present(losses, task_params)
        self._diagnostics = None
        if diagnose and len(present) > 1:
            self._diagnostics = measure(losses, present, trainable(shared_params))
        self._observe(losses, present)
        total, weights = self.weighted_loss(losses, present)
        (total * scale if scale != 1.0 else total).backward()
        if sync:
            self._advance()
        return weights

    def weighted_loss(self, losses: Losses, tasks: Sequence[str]) -> Tuple[paddle.Tensor, Dict[str, float]]:
        """The objective to differentiate and each task's weight."""
        weights = self.current_weights(tasks)
        total = paddle.add_n([losses[t] * weights[t] if weights[t] != 1.0 else losses[t] for t in tasks])
        return total, weights

    def current_weights(self, tasks: Sequence[str]) -> Dict[str, float]:
        raise NotImplementedError

    def _observe(self, losses: Losses, tasks: Sequence[str]) -> None:
        """Hook: see this micro-batch's losses (before the backward)."""

    def _advance(self) -> None:
        """Hook: one optimizer step is complete."""


class FixedWeights(LossWeighting):
    """``FixedWeights(weights=None)``: ``sum_i w_i L_i`` with constant ``weights`` (task -> w,
    default 1 for tasks not named)."""

    name = "fixed"

    def __init__(self, weights: Optional[Mapping[str, float]] = None, tasks: Optional[Sequence[str]] = None):
        self.weights = {str(k): float(v) for k, v in (weights or {}).items()}
        for task, w in self.weights.items():
            if not (w >= 0 and math.isfinite(w)):
                raise ValueError("fixed weight of task %r must be a finite number >= 0, got %r" % (task, w))
        super().__init__(tasks)

    def _on_bind(self) -> None:
        unknown = sorted(set(self.weights) - set(self.tasks))
        if unknown:
            raise KeyError("fixed weights for unknown task(s) %s; tasks: %s"
                           % (", ".join(unknown), ", ".join(self.tasks)))

    def current_weights(self, tasks):
        return {t: self.weights.get(t, 1.0) for t in tasks}


class UncertaintyWeighting(LossWeighting):
    """Homoscedastic-uncertainty weighting (Kendall et al. 2018).

    One learnable ``s_i = log sigma_i^2`` per task (initial ``init``, default 0) and the objective
    ``sum_i exp(-s_i) L_i + s_i``: twice Kendall's regression form ``L / (2 sigma^2) + log sigma``
    (same optimum ``exp(s_i) = L_i``, the form most implementations use; the 1/2 factors only
    halve the gradient). A task's weight is ``exp(-s_i)``; ``dObj/ds_i = 1 - exp(-s_i) L_i``.

    The log-variances are returned by :meth:`parameters`: **the loop adds them to its optimizer**
    (no weight decay; a larger learning rate than the encoder's helps them move in short runs).
    """

    name = "uncertainty"

    def __init__(self, init: float = 0.0, tasks: Optional[Sequence[str]] = None):
        self.init = float(init)
        self.log_vars: Optional[paddle.Tensor] = None
        super().__init__(tasks)

    def _on_bind(self) -> None:
        self.log_vars = paddle.create_parameter(
            [len(self.tasks)], "float32", default_initializer=paddle.nn.initializer.Constant(self.init))

    def parameters(self) -> List[paddle.Tensor]:
        return [] if self.log_vars is None else [self.log_vars]

    def named_parameters(self):
        return [] if self.log_vars is None else [("balancing.uncertainty.log_vars", self.log_vars)]

    def weighted_loss(self, losses, tasks):
        index = [self.tasks.index(t) for t in tasks]
        s = self.log_vars if len(index) == len(self.tasks) else paddle.gather(
            self.log_vars, paddle.to_tensor(index, dtype="int64"))
        stacked = paddle.stack([losses[t].reshape([]).astype("float32") for t in tasks])
        precision = paddle.exp(-s)
        total = (precision * stacked + s).sum()
        values = precision.numpy()
        return total, {t: float(values[k]) for k, t in enumerate(tasks)}

    def state_dict(self):
        state = super().state_dict()
        state["log_vars"] = None if self.log_vars is None else self.log_vars.numpy().tolist()
        return state

    def set_state_dict(self, state):
        super().set_state_dict(state)
        if state.get("log_vars") is not None:
            self.log_vars.set_value(np.asarray(state["log_vars"], dtype=np.float32))


class DynamicWeightAverage(LossWeighting):
    """Dynamic weight average (Liu et al. 2019): ``w_i = T softmax_i(r / temperature)`` with
    ``r_i = Lbar_i(k-1) / Lbar_i(k-2)``, the ratio of task ``i``'s mean loss over the last two
    complete windows.

    The paper's windows are epochs; here a window is ``window`` optimizer steps (set it to one
    epoch's steps to match the paper), and ``Lbar_i`` averages task ``i``'s loss over the
    micro-batches of the window in which it was present -- tasks may be sampled, so a task seen in
    neither window keeps ``r_i = 1``. All weights are 1 until two windows are complete. The
    weights sum to T over all bound tasks; a step with a subset of tasks uses their weights as is.
    """

    name = "dwa"

    def __init__(self, temperature: float = 2.0, window: int = 100, tasks: Optional[Sequence[str]] = None):
        if not temperature > 0:
            raise ValueError("dwa temperature must be > 0, got %r" % temperature)
        if int(window) < 1:
            raise ValueError("dwa window must be >= 1 step, got %r" % window)
        self.temperature = float(temperature)
        self.window = int(window)
        super().__init__(tasks)

    def _on_bind(self) -> None:
        n = len(self.tasks)
        self._sums = np.zeros(n)
        self._counts = np.zeros(n, dtype=np.int64)
        self._steps = 0  # optimizer steps in the current window
        self._history: List[List[Optional[float]]] = []  # the last two windows' mean losses
        self._weights = np.ones(n)

    def current_weights(self, tasks):
        return {t: float(self._weights[self.tasks.index(t)]) for t in tasks}

    def _observe(self, losses, tasks):
        values = self._loss_values(losses, tasks)
        for t, v in zip(tasks, values):
            k = self.tasks.index(t)
            self._sums[k] += v
            self._counts[k] += 1

    def _advance(self):
        self._steps += 1
        if self._steps < self.window:
            return
        means = [float(s / c) if c else None for s, c in zip(self._sums, self._counts)]
        self._history = (self._history + [means])[-2:]
        self._sums[:] = 0.0
        self._counts[:] = 0
        self._steps = 0
        if len(self._history) == 2:
            ratios = np.array([cur / prev if cur is not None and prev not in (None, 0.0) else 1.0
                               for prev, cur in zip(*self._history)])
            logits = ratios / self.temperature
            e = np.exp(logits - logits.max())
            self._weights = len(self.tasks) * e / e.sum()

    def state_dict(self):
        state = super().state_dict()
        if self.tasks is not None:
            state.update(sums=self._sums.tolist(), counts=self._counts.tolist(), steps=self._steps,
                         history=self._history, weights=self._weights.tolist())
        return state

    def set_state_dict(self, state):
        super().set_state_dict(state)
        if "sums" in state:
            self._sums = np.asarray(state["sums"], dtype=np.float64)
            self._counts = np.asarray(state["counts"], dtype=np.int64)
            self._steps = int(state["steps"])
            self._history = [list(h) for h in state["history"]]
            self._weights = np.asarray(state["weights"], dtype=np.float64)
