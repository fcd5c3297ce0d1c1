"""Optimizers: the CPU clip shortcut gives Paddle's exact gradients."""
import numpy as np
import paddle
import pytest

from paddlepalm.optimizer.optimizers import global_norm_clip


@pytest.mark.parametrize("scale", [1e-3, 10.0])  # global norm below / above the clip of 1.0
def test_global_norm_clip_skips_on_cpu_with_identical_gradients(scale):
    clip = global_norm_clip(1.0)
    assert clip.auto_skip_clip is paddle.device.get_device().startswith("cpu")
    rng = np.random.default_rng(0)
    params = [paddle.create_parameter([n], "float32") for n in (7, 300, 41)]
    grads = [(scale * rng.standard_normal(p.shape)).astype("float32") for p in params]
    norm = float(np.sqrt(sum((g.astype("float64") ** 2).sum() for g in grads)))

    def clipped(c):  # Paddle may scale the gradients in place: a fresh copy for each clip
        return [g.numpy() for _, g in c([(p, paddle.to_tensor(g)) for p, g in zip(params, grads)])]

    got, always = clipped(clip), clipped(paddle.nn.ClipGradByGlobalNorm(1.0))
    for a, b, g in zip(got, always, grads):
        np.testing.assert_array_equal(a, b)  # bit-identical to Paddle's always-multiply path
        np.testing.assert_allclose(a, g * min(1.0, 1.0 / norm), rtol=1e-6)
