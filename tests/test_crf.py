"""The CRF's log-partition (shifted exp-space GEMM recursion) against the textbook logsumexp
recursion: values and gradients, ragged masks, and extreme scores that must stay finite."""
import os
import sys
from types import SimpleNamespace

import numpy as np
import paddle
import pytest

from paddlepalm.head.crf import LinearChainCRF

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from bench_kernels import logsumexp_log_partition  # noqa: E402


def reference_log_partition(crf, emissions, mask):
    """The textbook recursion (the one bench_kernels.py times), in float64."""
    params = SimpleNamespace(**{k: getattr(crf, k).astype("float64") for k in ("transitions", "start", "end")})
    return logsumexp_log_partition(params, emissions.astype("float64"), mask)


def _setup(batch, width, tags, scale, seed=0):
    rng = np.random.default_rng(seed)
    crf = LinearChainCRF(tags)
    for p in (crf.transitions, crf.start, crf.end):
        p.set_value(rng.normal(0, scale, p.shape).astype("float32"))
    lengths = rng.integers(1, width + 1, batch)
    lengths[0] = width
    mask = paddle.to_tensor(np.arange(width)[None] < lengths[:, None])
    emissions = paddle.to_tensor(rng.normal(0, scale, (batch, width, tags)).astype("float32"), stop_gradient=False)
    return crf, emissions, mask


def _grads(fn, crf, emissions, mask):
    params = [emissions, crf.transitions, crf.start, crf.end]
    for p in params:
        p.clear_gradient()
    z = fn(crf, emissions, mask)
    (z * paddle.arange(1, z.shape[0] + 1, dtype=z.dtype)).sum().backward()  # distinct weight per row
    return [z.numpy().astype(np.float64)] + [np.zeros(p.shape) if p.grad is None else p.grad.numpy().astype(np.float64)
                                             for p in params]


@pytest.mark.parametrize("batch, width, tags, scale", [(4, 1, 3, 1.0), (5, 7, 6, 1.0), (8, 20, 13, 3.0)])
def test_log_partition_matches_the_logsumexp_recursion(batch, width, tags, scale):
    crf, emissions, mask = _setup(batch, width, tags, scale)
    ours = _grads(lambda c, e, m: c.log_partition(e, m), crf, emissions, mask)
    ref = _grads(reference_log_partition, crf, emissions, mask)
    for name, a, b in zip(["logZ", "d emissions", "d transitions", "d start", "d end"], ours, ref):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * max(1.0, np.abs(b).max()), err_msg=name)


def test_log_partition_stays_finite_with_extreme_scores():
    crf, emissions, mask = _setup(6, 12, 5, 25.0, seed=1)  # gaps of hundreds of nats: beyond float32's exp
    ours = _grads(lambda c, e, m: c.log_partition(e, m), crf, emissions, mask)
    ref = _grads(reference_log_partition, crf, emissions, mask)
    for a in ours:
        assert np.isfinite(a).all()
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-5)
    np.testing.assert_allclose(ours[1], ref[1], atol=1e-4)
