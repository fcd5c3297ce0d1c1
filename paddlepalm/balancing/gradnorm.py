"""GradNorm (Chen et al. 2018): learn loss weights that equalise the tasks' training rates."""
import math
from typing import Optional, Sequence

import numpy as np

from paddlepalm.balancing.per_task import PerTaskGradients


class GradNorm(PerTaskGradients):
    """``GradNorm(alpha=1.5, lr=0.025, min_weight=1e-3)``.

    The step's gradient is ``sum_i w_i g_i`` (heads get ``w_i`` times their own gradient). Then
    the weights move to make each task's gradient norm ``G_i = w_i ||g_i||`` approach
    ``mean(G) * r_i^alpha``, where ``r_i`` is the task's loss ratio ``L_i(t) / L_i(0)`` relative
    to the mean ratio (a task that trains slower gets a larger gradient); ``L_i(0)`` is the task's
    first observed loss. The gradient of ``sum_i |G_i - target_i|`` (target held constant, as in
    the paper) is ``sign(G_i - target_i) ||g_i||``: no second-order backward is needed. The
    weights take an Adam step of size ``lr`` (Adam makes the step independent of the gradient's
    scale: AMP loss scale, accumulation) and are renormalised to sum to T.

    Norms are measured on the **whole shared encoder** (the paper uses the last shared layer to
    save backward passes; we have every task's full gradient anyway). The weights are updated by
    the balancer itself, so :meth:`parameters` is empty. Cost: T backward passes.
    """

    name = "gradnorm"

    def __init__(self, alpha: float = 1.5, lr: float = 0.025, min_weight: float = 1e-3,
                 tasks: Optional[Sequence[str]] = None):
        if not (alpha >= 0 and math.isfinite(alpha)):
            raise ValueError("gradnorm alpha must be a finite number >= 0, got %r" % alpha)
        if not lr > 0:
            raise ValueError("gradnorm lr must be > 0, got %r" % lr)
        self.alpha, self.lr, self.min_weight = float(alpha), float(lr), float(min_weight)
        self.betas, self.eps = (0.9, 0.999), 1e-8
        super().__init__(tasks)

    def _on_bind(self):
        n = len(self.tasks)
        self.weights = np.ones(n)
        self._initial = np.full(n, np.nan)
        self._m, self._v, self._t = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64)

    def head_weight(self, task):
        return float(self.weights[self.tasks.index(task)])

    def coefficients(self, tasks, gram, loss_means):
        idx = np.array([self.tasks.index(t) for t in tasks])
        coef = self.weights[idx].copy()
        norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
        if not (np.all(np.isfinite(norms)) and np.all(np.isfinite(loss_means))):
            return coef  # an overflowing AMP step: no weight update
        unseen = np.isnan(self._initial[idx])
        self._initial[idx[unseen]] = loss_means[unseen]
        rates = loss_means / np.where(self._initial[idx] > 0, self._initial[idx], 1.0)
        rel = rates / rates.mean() if rates.mean() > 0 else np.ones(len(idx))
        g = coef * norms
        target = g.mean() * rel ** self.alpha
        self._adam_step(idx, np.sign(g - target) * norms)
        return coef

    def _adam_step(self, idx: np.ndarray, grad: np.ndarray) -> None:
        b1, b2 = self.betas
        self._t[idx] += 1
        self._m[idx] = b1 * self._m[idx] + (1 - b1) * grad
        self._v[idx] = b2 * self._v[idx] + (1 - b2) * grad * grad
        m_hat = self._m[idx] / (1 - b1 ** self._t[idx])
        v_hat = self._v[idx] / (1 - b2 ** self._t[idx])
        w = self.weights.copy()
        w[idx] = np.maximum(w[idx] - self.lr * m_hat / (np.sqrt(v_hat) + self.eps), self.min_weight)
        self.weights = w * len(w) / w.sum()

    def state_dict(self):
        state = super().state_dict()
        if self.tasks is not None:
            state.update(weights=self.weights.tolist(),
                         initial=[None if np.isnan(x) else float(x) for x in self._initial],
                         adam_m=self._m.tolist(), adam_v=self._v.tolist(), adam_t=self._t.tolist())
        return state

    def set_state_dict(self, state):
        super().set_state_dict(state)
        if "weights" in state:
            self.weights = np.asarray(state["weights"], dtype=np.float64)
            self._initial = np.array([np.nan if x is None else x for x in state["initial"]], dtype=np.float64)
            self._m = np.asarray(state["adam_m"], dtype=np.float64)
            self._v = np.asarray(state["adam_v"], dtype=np.float64)
            self._t = np.asarray(state["adam_t"], dtype=np.int64)
