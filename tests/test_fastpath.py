"""CPU fast paths (paddlepalm.backbone.fastpath) and the process defaults of paddlepalm._env."""
import numpy as np
import paddle
import pytest

from paddlepalm import _env
from paddlepalm.backbone import fastpath


@pytest.mark.parametrize("shape,bias", [([4, 5, 8], True), ([6, 8], True), ([3, 8], False)])
def test_linear_matches_stock_layer_forward_and_gradients(shape, bias):
    paddle.seed(0)
    ref = paddle.nn.Linear(8, 3, bias_attr=None if bias else False)
    fast = fastpath.Linear(8, 3, bias_attr=None if bias else False)
    fast.set_state_dict(ref.state_dict())
    x0 = np.random.default_rng(0).standard_normal(shape).astype("float32")
    g = np.random.default_rng(1).standard_normal(shape[:-1] + [3]).astype("float32")
    results = []
    for layer in (ref, fast):
        layer.train()
        x = paddle.to_tensor(x0, stop_gradient=False)
        y = layer(x)
        y.backward(paddle.to_tensor(g))
        grads = [x.grad.numpy(), layer.weight.grad.numpy()] + ([layer.bias.grad.numpy()] if bias else [])
        results.append([y.numpy()] + grads)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_linear_frozen_weights_and_eval():
    layer = fastpath.Linear(4, 2)
    layer.weight.stop_gradient = True
    layer.bias.stop_gradient = True
    x = paddle.randn([3, 4])
    x.stop_gradient = False
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight.grad is None
    layer.eval()
    with paddle.no_grad():
        np.testing.assert_allclose(layer(x.reshape([1, 3, 4])).numpy()[0], (x @ layer.weight + layer.bias).numpy(),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [[4, 5, 16], [7, 16], [1, 1, 16]])
def test_layer_norm_matches_stock_layer_forward_and_gradients(shape):
    ref = paddle.nn.LayerNorm(16, epsilon=1e-6)
    fast = fastpath.LayerNorm(16, epsilon=1e-6)
    rng = np.random.default_rng(0)
    state = {"weight": rng.uniform(0.5, 1.5, 16).astype("float32"), "bias": rng.normal(0, 1, 16).astype("float32")}
    for layer in (ref, fast):
        layer.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    x0 = (rng.standard_normal(shape) * 3 + 1).astype("float32")
    g = rng.standard_normal(shape).astype("float32")
    results = []
    for layer in (ref, fast):
        x = paddle.to_tensor(x0, stop_gradient=False)
        y = layer(x)
        y.backward(paddle.to_tensor(g))
        results.append([y.numpy(), x.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()])
    np.testing.assert_array_equal(results[0][0], results[1][0])  # the forward is Paddle's own kernel
    for name, a, b in zip(["dx", "dweight", "dbias"], results[0][1:], results[1][1:]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(a).max()), err_msg=name)


def test_layer_norm_steps_aside_without_gradients_or_affine():
    x = paddle.randn([3, 8])
    fast = fastpath.LayerNorm(8)
    with paddle.no_grad():
        np.testing.assert_array_equal(fast(x).numpy(), paddle.nn.functional.layer_norm(
            x, [8], fast.weight, fast.bias, fast._epsilon).numpy())
    plain = fastpath.LayerNorm(8, weight_attr=False, bias_attr=False)
    x.stop_gradient = False
    plain(x).sum().backward()  # the stock path: no affine parameters
    assert x.grad is not None


def test_dropout_rate_scale_reproducibility_and_gradient():
    d = fastpath.Dropout(0.1)
    d.train()
    x = paddle.ones([200, 500])
    x.stop_gradient = False
    paddle.seed(7)
    y1 = d(x)
    paddle.seed(7)
    y2 = d(x)
    y3 = d(x)
    kept = y1.numpy() > 0
    assert abs(kept.mean() - 0.9) < 0.01
    np.testing.assert_allclose(np.unique(y1.numpy()), [0.0, 1 / 0.9], rtol=1e-6)
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())
    assert not np.array_equal(y2.numpy(), y3.numpy())
    y1.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y1.numpy(), rtol=1e-6)
    d.eval()
    np.testing.assert_array_equal(d(x).numpy(), x.numpy())


def test_paddle_flag_defaults_only_where_unset():
    environ = {}
    assert _env.configure_paddle_flags(environ) == {"FLAGS_use_stride_kernel": "0"}
    environ = {"FLAGS_use_stride_kernel": "1"}
    assert _env.configure_paddle_flags(environ) == {} and environ["FLAGS_use_stride_kernel"] == "1"


def test_allocator_setting_respects_opt_out():
    assert _env.configure_allocator({"PADDLEPALM_MALLOPT": "0"}) is False
    assert _env.configure_allocator({"MALLOC_MMAP_THRESHOLD_": "65536"}) is False
