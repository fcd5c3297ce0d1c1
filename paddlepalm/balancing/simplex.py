"""Small convex problems over the probability simplex (numpy, float64; T is a handful of tasks)."""
from typing import Callable

import numpy as np


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``v`` onto ``{w >= 0, sum w = 1}`` (sort-based, Held et al. 1974)."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    ks = np.arange(1, len(v) + 1)
    rho = np.nonzero(u - cumulative / ks > 0)[0][-1]
    return np.maximum(v - cumulative[rho] / (rho + 1.0), 0.0)


def minimize_on_simplex(f: Callable[[np.ndarray], float], grad: Callable[[np.ndarray], np.ndarray],
                        x0: np.ndarray, max_iter: int = 1000, tol: float = 1e-10) -> np.ndarray:
    """Projected gradient descent with backtracking (sufficient decrease on the quadratic model);
    for smooth convex ``f`` it converges to the minimiser. Stops when a step moves ``x`` by less
    than ``tol`` or no longer lowers ``f`` beyond rounding. Deterministic."""
    x = project_to_simplex(np.asarray(x0, dtype=np.float64))
    fx, step = f(x), 1.0
    for _ in range(max_iter):
        g = grad(x)
        while True:
            y = project_to_simplex(x - step * g)
            d = y - x
            fy = f(y)
            if fy <= fx + g @ d + d @ d / (2.0 * step):
                break
            step *= 0.5
            if step < 1e-20:  # no descent left at this precision
                return x
        if d @ d < tol * tol or fx - fy <= 1e-15 * max(1.0, abs(fx)):
            return y
        x, fx, step = y, fy, step * 2.0
    return x


def cagrad_simplex_weights(gram: np.ndarray, c: float) -> np.ndarray:
    """CAGrad's inner problem: ``argmin_{w in simplex} w.b + c ||g0|| sqrt(w^T A w)`` with
    ``A = gram``, ``g0`` the mean gradient and ``b = A 1/T`` (``= G g0``), on ``gram / ||g0||^2``
    (the minimiser does not change with the scale)."""
    n = len(gram)
    g0_sq = gram.sum() / n ** 2
    a = gram / g0_sq
    b = a.mean(axis=1)
    eps = 1e-12

    def f(w):
        return float(w @ b + c * np.sqrt(max(w @ a @ w, 0.0) + eps))

    def grad(w):
        return b + c * (a @ w) / np.sqrt(max(w @ a @ w, 0.0) + eps)

    return minimize_on_simplex(f, grad, np.full(n, 1.0 / n))
