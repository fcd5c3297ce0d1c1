"""Gradient surgery on the shared encoder: PCGrad (Yu et al. 2020) and CAGrad (Liu et al. 2021).

Both rewrite only the shared encoder's gradient; each head keeps its own task's gradient.
"""
import math
from typing import List, Optional, Sequence

import numpy as np

from paddlepalm.balancing.per_task import PerTaskGradients
from paddlepalm.balancing.simplex import cagrad_simplex_weights


def pcgrad_coefficients(gram: np.ndarray, orders: Sequence[Sequence[int]]) -> np.ndarray:
    """PCGrad in coefficient space: ``g = sum_i g_i'`` where ``g_i'`` starts at ``g_i`` and, for
    each ``j`` in ``orders[i]``, loses its component along ``g_j`` when ``g_i' . g_j < 0``.

    Every ``g_i'`` stays a combination ``sum_k c_ik g_k``, so the dot products come from the Gram
    matrix; returns ``sum_i c_i`` (the coefficients of the projected sum).
    """
    n = len(gram)
    total = np.zeros(n)
    for i in range(n):
        c = np.zeros(n)
        c[i] = 1.0
        for j in orders[i]:
            dot = c @ gram[:, j]
            if dot < 0 and gram[j, j] > 0:
                c[j] -= dot / gram[j, j]
        total += c
    return total


def cagrad_coefficients(gram: np.ndarray, c: float, rescale: bool = True) -> np.ndarray:
    """CAGrad: ``d = g0 + c ||g0|| g_w / ||g_w||`` with ``g0`` the mean gradient and ``w`` the
    solution of the inner problem (:func:`cagrad_simplex_weights`), divided by ``1 + c^2`` when
    ``rescale``; returned as coefficients of ``sum_i a_i g_i`` times ``T`` (the sum convention)."""
    n = len(gram)
    g0_sq = gram.sum() / n ** 2
    if n == 1 or not g0_sq > 0:  # one task, or a zero mean gradient: nothing to trade off
        return np.ones(n)
    w = cagrad_simplex_weights(gram, c)
    gw_sq = w @ gram @ w
    lam = c * math.sqrt(g0_sq / gw_sq) if gw_sq > 0 else 0.0
    coef = 1.0 / n + lam * w
    if rescale:
        coef = coef / (1.0 + c * c)
    return n * coef


class PCGrad(PerTaskGradients):
    """``PCGrad(seed=0)``: projecting conflicting gradients (Yu et al. 2020).

    For each task ``i``, the other tasks are visited in a random order (drawn per task and step
    from a seeded PCG64 generator, saved in the state); whenever ``g_i'`` conflicts with ``g_j``
    (negative dot product) its component along ``g_j`` is removed. The shared gradient is the sum
    of the projected ``g_i'``; without conflict it is the plain sum. Cost: T backward passes.
    """

    name = "pcgrad"

    def __init__(self, seed: int = 0, tasks: Optional[Sequence[str]] = None):
        self.seed = int(seed)
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        super().__init__(tasks)

    def orders(self, n: int) -> List[List[int]]:
        """This step's visiting order of the other tasks, for each task."""
        return [[int(j) for j in self._rng.permutation([k for k in range(n) if k != i])] for i in range(n)]

    def coefficients(self, tasks, gram, loss_means):
        return pcgrad_coefficients(gram, self.orders(len(tasks)))

    def state_dict(self):
        state = super().state_dict()
        state["rng"] = self._rng.bit_generator.state
        return state

    def set_state_dict(self, state):
        super().set_state_dict(state)
        if "rng" in state:
            self._rng.bit_generator.state = state["rng"]


class CAGrad(PerTaskGradients):
    """``CAGrad(c=0.5, rescale=True)``: conflict-averse gradient descent (Liu et al. 2021).

    Maximises the worst task's improvement ``min_i g_i . d`` within a ball of radius
    ``c ||g0||`` around the mean gradient ``g0``, through the dual over the task simplex
    (``T x T``, solved in numpy). ``c = 0`` gives the plain sum of task gradients; larger ``c``
    moves further towards the worst-off task. ``rescale`` divides by ``1 + c^2`` as the paper's
    code does. The result is ``T`` times the paper's (mean-scale) update, like every balancer
    here (sum convention). Cost: T backward passes.
    """

    name = "cagrad"

    def __init__(self, c: float = 0.5, rescale: bool = True, tasks: Optional[Sequence[str]] = None):
        if not (c >= 0 and math.isfinite(c)):
            raise ValueError("cagrad c must be a finite number >= 0, got %r" % c)
        self.c = float(c)
        self.rescale = bool(rescale)
        super().__init__(tasks)

    def coefficients(self, tasks, gram, loss_means):
        return cagrad_coefficients(gram, self.c, self.rescale)
