"""Optimizers: the CPU clip shortcut and parallel parameter updates give Paddle's exact results."""
import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.optimizer import parallel_updates
from paddlepalm.optimizer.optimizers import global_norm_clip
from tests.helpers import tiny_config


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


def _train_steps(optimizer_settings, steps=3):
    """Parameters and optimizer state after ``steps`` updates of a tiny BERT with fixed gradients."""
    paddle.seed(0)
    model = palm.backbone.BERT.from_config(tiny_config())
    named = [(n, p) for n, p in model.named_parameters() if not p.stop_gradient]
    opt = optimizer_settings().build(named, num_layers=2, num_train_steps=10)
    rng = np.random.default_rng(1)
    for step in range(steps):
        for _, p in named:  # some steps with a norm above the clip, some below
            p.grad = paddle.to_tensor((10.0 ** (step - 2) * rng.standard_normal(p.shape)).astype("float32"))
        opt.step()
        opt.clear_grad()
    by_param = {p.name: n for n, p in named}  # Paddle's unique names differ between the two models
    state = {}
    for key, value in opt.state_dict().items():
        if hasattr(value, "numpy"):
            owner = max((k for k in by_param if key.startswith(k + "_")), key=len)
            state[by_param[owner] + key[len(owner):]] = value.numpy()
    return {n: p.numpy() for n, p in named}, state, type(opt)


@pytest.mark.parametrize("settings", [
    lambda: palm.optimizer.AdamW(lr=1e-2, layer_decay=0.8, head_lr=2e-2),
    lambda: palm.optimizer.LAMB(lr=1e-2)], ids=["adamw", "lamb"])
def test_parallel_updates_are_bit_identical_to_paddles_step(settings, monkeypatch):
    monkeypatch.setattr(parallel_updates, "update_workers", lambda: 1)
    seq_params, seq_state, cls = _train_steps(settings)
    monkeypatch.setattr(parallel_updates, "update_workers", lambda: 3)
    submitted = []
    real_pool = parallel_updates._pool

    def counting_pool(workers):
        pool = real_pool(workers)
        submit = pool.submit

        class Counting:
            def submit(self, *a, **k):
                submitted.append(1)
                return submit(*a, **k)
        return Counting()
    monkeypatch.setattr(parallel_updates, "_pool", counting_pool)
    par_params, par_state, _ = _train_steps(settings)
    assert cls.__name__ in ("AdamW", "Lamb") and len(submitted) == 3 * len(par_params)  # really from the pool
    assert seq_params.keys() == par_params.keys() and seq_state.keys() == par_state.keys()
    for name in seq_params:
        np.testing.assert_array_equal(par_params[name], seq_params[name], err_msg=name)
    for name in seq_state:
        np.testing.assert_array_equal(par_state[name], seq_state[name], err_msg=name)
    assert any(not np.allclose(v, 0) for v in seq_state.values())  # the moments really moved


def test_parallel_update_errors_reach_the_caller(monkeypatch):
    class Failing(paddle.optimizer.AdamW):
        def _append_optimize_op(self, block, param_and_grad):
            if param_and_grad[0].shape == [5]:
                raise RuntimeError("kernel failed for the 5-vector")
            return super()._append_optimize_op(block, param_and_grad)

    monkeypatch.setattr(parallel_updates, "update_workers", lambda: 2)
    params = [paddle.create_parameter([n], "float32") for n in (4, 5, 6)]
    opt = parallel_updates.parallel_optimizer(Failing)(learning_rate=0.1, parameters=params)
    for p in params:
        p.grad = paddle.ones(p.shape)
    with pytest.raises(RuntimeError, match="5-vector"):
        opt.step()
    assert opt._palm_pending is None  # the next step starts clean
