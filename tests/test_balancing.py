"""Balancers: the math against independent NumPy references, and the gradient plumbing."""
import copy
import itertools
import json
import threading

import numpy as np
import paddle
import pytest

import paddlepalm  # noqa: F401  (sets the CPU environment before paddle runs)
from paddlepalm.balancing import (BALANCERS, CAGrad, DynamicWeightAverage, FixedWeights, GradNorm, PCGrad,
                                  UncertaintyWeighting)
from paddlepalm.balancing.simplex import project_to_simplex

ALL = ["fixed", "uncertainty", "dwa", "gradnorm", "pcgrad", "cagrad"]


# ---------------------------------------------------------------------- NumPy references
def ref_pcgrad(grads, orders):
    """PCGrad written on the vectors themselves: project g_i' on the normal plane of g_j."""
    out = np.zeros_like(grads[0])
    for i, g in enumerate(grads):
        gi = g.astype(np.float64).copy()
        for j in orders[i]:
            gj = grads[j].astype(np.float64)
            if gi @ gj < 0:
                gi = gi - (gi @ gj) / (gj @ gj) * gj
        out += gi
    return out


def ref_cagrad(grads, c):
    """CAGrad on the vectors: brute-force the inner problem over a simplex grid, refine, and
    apply d = g0 + c|g0| g_w/|g_w|, / (1 + c^2), times T (the library's sum convention)."""
    g = np.stack(grads).astype(np.float64)
    n = len(g)
    g0 = g.mean(axis=0)
    radius = c * np.linalg.norm(g0)

    def objective(ws):  # ws: [K, n] rows on the simplex
        gw = ws @ g
        return gw @ g0 + radius * np.linalg.norm(gw, axis=1)

    def grid(center, width, k):
        axes = [np.linspace(max(0.0, x - width), min(1.0, x + width), k) for x in center[:-1]]
        pts = np.array(list(itertools.product(*axes))).reshape(-1, n - 1)
        pts = pts[pts.sum(axis=1) <= 1.0]
        return np.hstack([pts, 1.0 - pts.sum(axis=1, keepdims=True)])

    best, width = np.full(n, 1.0 / n), 1.0
    for _ in range(12):
        cand = grid(best, width, 201 if n == 2 else 61)
        best = cand[np.argmin(objective(cand))]
        width /= 8.0
    gw = best @ g
    d = g0 + radius * gw / np.linalg.norm(gw)
    return n * d / (1.0 + c * c)


# ---------------------------------------------------------------------- a tiny model
class Tiny:
    """Shared MLP (two params of different shapes) + one linear head per task."""

    def __init__(self, tasks=("a", "b", "c"), seed=0, init_seed=None):
        paddle.seed(seed if init_seed is None else init_seed)
        self.shared = paddle.nn.Sequential(paddle.nn.Linear(4, 6), paddle.nn.Tanh(), paddle.nn.Linear(6, 5))
        self.heads = {t: paddle.nn.Linear(5, 3) for t in tasks}
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(8, 4)).astype("float32")
        self.y = {t: rng.normal(size=(8, 3)).astype("float32") for t in tasks}

    def shared_params(self):
        return list(self.shared.parameters())

    def task_params(self, tasks=None):
        return {t: list(h.parameters()) for t, h in self.heads.items() if tasks is None or t in tasks}

    def params(self):
        return self.shared_params() + [p for h in self.heads.values() for p in h.parameters()]

    def losses(self, rows=slice(None), tasks=None):
        h = self.shared(paddle.to_tensor(self.x[rows]))
        return {t: ((head(h) - paddle.to_tensor(self.y[t][rows])) ** 2).mean()
                for t, head in self.heads.items() if tasks is None or t in tasks}

    def grads(self):
        return [None if p.grad is None else p.grad.numpy().copy() for p in self.params()]

    def clear(self):
        for p in self.params():
            p.clear_gradient(False)


def separate_gradients(model, tasks):
    """Each task's gradient on every parameter, from its own forward and backward."""
    out = {}
    for t in tasks:
        model.clear()
        model.losses(tasks=[t])[t].backward()
        out[t] = [np.zeros(p.shape, "float32") if p.grad is None else p.grad.numpy().copy()
                  for p in model.params()]
    model.clear()
    return out


def flat_shared(model, grads):
    return np.concatenate([g.reshape(-1) for g in grads[:len(model.shared_params())]]).astype(np.float64)


def linear_losses(shared, heads, gs, hs):
    """Losses with hand-made gradients: L_i = g_i . theta + h_i . phi_i."""
    theta = paddle.concat([p.reshape([-1]) for p in shared])
    return {t: (paddle.to_tensor(gs[k]) * theta).sum() + (paddle.to_tensor(hs[k]) * heads[t][0]).sum()
            for k, t in enumerate(heads)}


def hand_made(num_tasks, seed):
    paddle.seed(seed)
    shared = [paddle.create_parameter([2, 3], "float32"), paddle.create_parameter([4], "float32")]
    tasks = "abcd"[:num_tasks]
    heads = {t: [paddle.create_parameter([2], "float32")] for t in tasks}
    return shared, heads, tasks


CONFLICTING = [  # hand-made: b opposes a, c partly conflicts with both
    np.array([1.0, 0.0, 2.0, 0.5, -1.0, 0.0, 0.3, 0.0, 1.0, 0.0], "float32"),
    np.array([-2.0, 0.5, -1.0, 0.0, 1.0, 0.2, 0.0, -0.4, 0.0, 1.0], "float32"),
    np.array([0.5, -1.5, 0.0, 1.0, 0.0, -0.7, 0.2, 0.0, -2.0, 0.3], "float32"),
]


# ---------------------------------------------------------------------- gradient surgery math
class FixedOrderPCGrad(PCGrad):
    def __init__(self, fixed_orders, **kw):
        super().__init__(**kw)
        self.fixed_orders = fixed_orders

    def orders(self, n):
        return self.fixed_orders


@pytest.mark.parametrize("orders", [[[1, 2], [0, 2], [0, 1]], [[2, 1], [2, 0], [1, 0]]])
def test_pcgrad_equals_numpy_reference_on_conflicting_gradients(orders):
    shared, heads, tasks = hand_made(3, 0)
    hs = [np.full(2, k + 1.0, "float32") for k in range(3)]
    weights = FixedOrderPCGrad(orders).combine(linear_losses(shared, heads, CONFLICTING, hs), shared, heads)
    got = np.concatenate([p.grad.numpy().reshape(-1) for p in shared])
    assert CONFLICTING[0] @ CONFLICTING[1] < 0 and CONFLICTING[1] @ CONFLICTING[2] < 0
    want = ref_pcgrad(CONFLICTING, orders)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(want, sum(CONFLICTING), atol=1e-3)  # the projection did something
    combo = sum(weights[t] * CONFLICTING[k] for k, t in enumerate(tasks))  # weights are the coefficients
    np.testing.assert_allclose(combo, want, rtol=1e-5, atol=1e-6)
    for k, t in enumerate(tasks):  # heads: their own gradient, unprojected
        np.testing.assert_allclose(heads[t][0].grad.numpy(), hs[k])


def test_pcgrad_order_matters_and_two_tasks_default():
    a = ref_pcgrad(CONFLICTING, [[1, 2], [0, 2], [0, 1]])
    b = ref_pcgrad(CONFLICTING, [[2, 1], [2, 0], [1, 0]])
    assert not np.allclose(a, b, atol=1e-3)
    shared, heads, _ = hand_made(2, 1)
    PCGrad(seed=3).combine(linear_losses(shared, heads, CONFLICTING[:2], [np.ones(2, "float32")] * 2),
                           shared, heads)
    got = np.concatenate([p.grad.numpy().reshape(-1) for p in shared])
    np.testing.assert_allclose(got, ref_pcgrad(CONFLICTING[:2], [[1], [0]]), rtol=1e-5, atol=1e-6)


def test_pcgrad_without_conflict_is_the_plain_sum():
    gs = [np.abs(g) for g in CONFLICTING]
    shared, heads, _ = hand_made(3, 2)
    PCGrad().combine(linear_losses(shared, heads, gs, [np.ones(2, "float32")] * 3), shared, heads)
    np.testing.assert_allclose(np.concatenate([p.grad.numpy().reshape(-1) for p in shared]), sum(gs), rtol=1e-6)


@pytest.mark.parametrize("num_tasks,c", [(2, 0.5), (3, 0.5), (3, 0.2), (2, 1.0)])
def test_cagrad_equals_numpy_reference_on_conflicting_gradients(num_tasks, c):
    gs = CONFLICTING[:num_tasks]
    shared, heads, tasks = hand_made(num_tasks, 3)
    hs = [np.full(2, -1.0 - k, "float32") for k in range(num_tasks)]
    CAGrad(c=c).combine(linear_losses(shared, heads, gs, hs), shared, heads)
    got = np.concatenate([p.grad.numpy().reshape(-1) for p in shared])
    want = ref_cagrad(gs, c)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    # the conflict-averse direction helps the worst task more than the plain mean does
    g0 = np.mean(gs, axis=0)
    assert min(g @ got for g in gs) > min(g @ g0 for g in gs)
    for k, t in enumerate(tasks):
        np.testing.assert_allclose(heads[t][0].grad.numpy(), hs[k])


def test_cagrad_with_c0_is_the_plain_sum():
    shared, heads, _ = hand_made(3, 4)
    CAGrad(c=0.0).combine(linear_losses(shared, heads, CONFLICTING, [np.ones(2, "float32")] * 3), shared, heads)
    np.testing.assert_allclose(np.concatenate([p.grad.numpy().reshape(-1) for p in shared]),
                               sum(CONFLICTING), rtol=1e-5, atol=1e-6)


def test_simplex_projection():
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.normal(size=4) * 3
        w = project_to_simplex(v)
        assert w.min() >= 0 and abs(w.sum() - 1) < 1e-12
        # it is the closest simplex point: no random simplex point is closer
        others = rng.dirichlet(np.ones(4), size=500)
        assert np.linalg.norm(v - w) <= np.linalg.norm(v - others, axis=1).min() + 1e-12


# ---------------------------------------------------------------------- loss weighting math
def test_uncertainty_gradient_equals_the_analytic_one():
    model = Tiny(("a", "b"))
    bal = UncertaintyWeighting(tasks=["a", "b"])
    s = np.array([0.7, -0.4], "float32")
    bal.log_vars.set_value(s)
    losses = model.losses()
    values = np.array([float(losses[t]) for t in "ab"])
    weights = bal.combine(losses, model.shared_params(), model.task_params(), scale=0.5)
    np.testing.assert_allclose(bal.log_vars.grad.numpy(), 0.5 * (1.0 - np.exp(-s) * values), rtol=1e-5)
    assert weights == pytest.approx({"a": float(np.exp(-s[0])), "b": float(np.exp(-s[1]))}, rel=1e-6)
    got = model.grads()
    sep = separate_gradients(model, "ab")
    for k, _ in enumerate(model.params()):
        want = 0.5 * (np.exp(-s[0]) * sep["a"][k] + np.exp(-s[1]) * sep["b"][k])
        np.testing.assert_allclose(got[k], want, rtol=1e-5, atol=1e-7)
    assert bal.parameters() == [bal.log_vars]
    assert bal.named_parameters() == [("balancing.uncertainty.log_vars", bal.log_vars)]


def test_dwa_weights_from_the_last_two_windows():
    model = Tiny(("a", "b"))
    bal = DynamicWeightAverage(temperature=2.0, window=2, tasks=["a", "b"])
    seen = {"a": [], "b": []}
    for step in range(6):
        losses = model.losses()
        for t in "ab":
            seen[t].append(float(losses[t]))
        w = bal.combine(losses, model.shared_params(), model.task_params())
        if step < 4:  # two windows must be complete first
            assert w == {"a": 1.0, "b": 1.0}
        model.clear()
        with paddle.no_grad():  # make the losses move differently
            model.heads["a"].bias.set_value(model.heads["a"].bias * 0.5)
    means = {t: [np.mean(v[0:2]), np.mean(v[2:4]), np.mean(v[4:6])] for t, v in seen.items()}
    r = np.array([means[t][2] / means[t][1] for t in "ab"])
    want = 2 * np.exp(r / 2) / np.exp(r / 2).sum()
    assert bal.current_weights(["a", "b"]) == pytest.approx({"a": want[0], "b": want[1]}, rel=1e-9)


def test_gradnorm_lowers_the_weight_of_the_task_with_the_larger_gradient():
    shared, heads, tasks = hand_made(2, 5)
    gs = [CONFLICTING[0] * 5, CONFLICTING[2]]
    bal = GradNorm(alpha=0.0, lr=0.1)
    w = bal.combine(linear_losses(shared, heads, gs, [np.ones(2, "float32")] * 2), shared, heads)
    assert w == {"a": 1.0, "b": 1.0}  # this step uses the weights before the update
    assert bal.weights[0] < 1.0 < bal.weights[1] and bal.weights.sum() == pytest.approx(2.0)
    np.testing.assert_allclose(np.concatenate([p.grad.numpy().reshape(-1) for p in shared]), gs[0] + gs[1],
                               rtol=1e-6)


# ---------------------------------------------------------------------- plumbing, on the real encoder
def _encoder_setup(seed=0):
    from tests.helpers import tiny_model
    from paddlepalm.head import Classify, SequenceLabel

    encoder = tiny_model(seed=seed)
    encoder.train()  # the CPU fast paths (PyLayers) are active in training
    paddle.seed(seed + 1)
    heads = {"intent": Classify(4, 32), "slot": SequenceLabel(5, 32)}
    rng = np.random.default_rng(seed)
    batch = {"input_ids": rng.integers(5, 80, size=(6, 9)), "label": rng.integers(0, 4, size=(6,)),
             "word_starts": np.tile(np.arange(1, 8), (6, 1)), "num_words": np.array([7, 5, 6, 7, 3, 4]),
             "word_labels": rng.integers(0, 5, size=(6, 7))}
    batch = {k: paddle.to_tensor(v.astype("int64")) for k, v in batch.items()}

    def losses(tasks=("intent", "slot")):
        out = encoder(batch["input_ids"])
        return {t: heads[t](out, batch)["loss"] for t in tasks}

    params = {"shared": [p for p in encoder.parameters() if not p.stop_gradient],
              "heads": {t: list(h.parameters()) for t, h in heads.items()}}
    return encoder, heads, losses, params


def _all_params(params):
    return params["shared"] + [p for t in sorted(params["heads"]) for p in params["heads"][t]]


def _separate(losses, params):
    out = {}
    for t in ("intent", "slot"):
        loss = losses((t,))[t]
        grads = paddle.grad(loss, _all_params(params), allow_unused=True)
        out[t] = [np.zeros(p.shape, "float32") if g is None else g.numpy() for g, p in zip(grads, _all_params(params))]
    return out


def test_fixed_weights_equal_the_weighted_sum_of_separate_task_gradients():
    _, _, losses, params = _encoder_setup()
    sep = _separate(losses, params)
    FixedWeights({"intent": 0.3, "slot": 1.7}).combine(losses(), params["shared"], params["heads"])
    for k, p in enumerate(_all_params(params)):
        want = 0.3 * sep["intent"][k] + 1.7 * sep["slot"][k]
        got = np.zeros(p.shape, "float32") if p.grad is None else p.grad.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_pcgrad_on_the_encoder_equals_the_reference_on_separate_gradients():
    _, _, losses, params = _encoder_setup(seed=1)
    sep = _separate(losses, params)
    n = len(params["shared"])
    flats = [np.concatenate([g.reshape(-1) for g in sep[t][:n]]) for t in ("intent", "slot")]
    bal = PCGrad()
    bal.combine(losses(), params["shared"], params["heads"])
    diag = bal.diagnostics()
    got = np.concatenate([p.grad.numpy().reshape(-1) for p in params["shared"]])
    np.testing.assert_allclose(got, ref_pcgrad(flats, [[1], [0]]), rtol=1e-4, atol=1e-6)
    cos = flats[0] @ flats[1] / np.linalg.norm(flats[0]) / np.linalg.norm(flats[1])
    assert diag.pairs() == pytest.approx({"intent|slot": cos}, abs=1e-5)
    assert diag.as_record()["grad_norm"]["slot"] == pytest.approx(np.linalg.norm(flats[1]), rel=1e-5)


def test_diagnose_on_the_encoder_keeps_the_graph_for_the_weighted_backward():
    _, _, losses, params = _encoder_setup(seed=3)
    sep = _separate(losses, params)
    n = len(params["shared"])
    flats = [np.concatenate([g.reshape(-1) for g in sep[t][:n]]) for t in ("intent", "slot")]
    bal = FixedWeights()
    bal.combine(losses(), params["shared"], params["heads"], diagnose=True)
    cos = flats[0] @ flats[1] / np.linalg.norm(flats[0]) / np.linalg.norm(flats[1])
    assert bal.diagnostics().pairs()["intent|slot"] == pytest.approx(cos, abs=1e-5)
    for k, p in enumerate(_all_params(params)):  # the measurement left the gradients alone
        np.testing.assert_allclose(p.grad.numpy(), sep["intent"][k] + sep["slot"][k], rtol=1e-5, atol=1e-5)
    bal.combine(losses(), params["shared"], params["heads"])
    assert bal.diagnostics() is None  # not measured this step: nothing stale to log


def test_diagnostics_record_with_a_zero_gradient():
    from paddlepalm.balancing import GradientDiagnostics

    d = GradientDiagnostics.from_gram(["a", "b", "c"], np.array([[4.0, -2.0, 0.0], [-2.0, 4.0, 0.0], [0.0, 0.0, 0.0]]))
    assert d.as_record() == {"grad_cosine": {"a|b": -0.5, "a|c": 0.0, "b|c": 0.0},
                             "grad_norm": {"a": 2.0, "b": 2.0, "c": 0.0}}


@pytest.mark.parametrize("name", ALL)
def test_heads_keep_only_their_own_tasks_gradient(name):
    _, _, losses, params = _encoder_setup(seed=2)
    sep = _separate(losses, params)
    bal = BALANCERS.get(name)()
    weights = bal.combine(losses(), params["shared"], params["heads"])
    head_factor = {t: (1.0 if name in ("pcgrad", "cagrad") else weights[t]) for t in weights}
    k = len(params["shared"])
    for t in sorted(params["heads"]):  # _all_params order: shared, then heads by task name
        other = [u for u in params["heads"] if u != t][0]
        for p in params["heads"][t]:
            np.testing.assert_allclose(p.grad.numpy(), head_factor[t] * sep[t][k], rtol=1e-5, atol=1e-6)
            assert np.abs(sep[other][k]).max() == 0  # the other task's loss does not reach this head
            k += 1


@pytest.mark.parametrize("name", ALL)
def test_diagnostics_cosine(name):
    model = Tiny(("a", "b"))
    sep = separate_gradients(model, "ab")
    flats = [flat_shared(model, sep[t]) for t in "ab"]
    cos = flats[0] @ flats[1] / np.linalg.norm(flats[0]) / np.linalg.norm(flats[1])
    bal = BALANCERS.get(name)()
    bal.combine(model.losses(), model.shared_params(), model.task_params())
    if bal.cost == "1":
        assert bal.diagnostics() is None  # not measured unless asked
        model.clear()
        bal.combine(model.losses(), model.shared_params(), model.task_params(), diagnose=True)
    assert bal.diagnostics().pairs()["a|b"] == pytest.approx(cos, abs=1e-5)


# ---------------------------------------------------------------------- accumulation
@pytest.mark.parametrize("name", ALL)
def test_two_half_batches_with_scale_half_equal_one_full_batch(name):
    full_model, half_model = Tiny(), Tiny()
    full, half = BALANCERS.get(name)(), BALANCERS.get(name)()
    w_full = full.combine(full_model.losses(), full_model.shared_params(), full_model.task_params())
    half.combine(half_model.losses(slice(0, 4)), half_model.shared_params(), half_model.task_params(),
                 scale=0.5, sync=False)
    w_half = half.combine(half_model.losses(slice(4, 8)), half_model.shared_params(), half_model.task_params(),
                          scale=0.5)
    for g_full, g_half in zip(full_model.grads(), half_model.grads()):
        np.testing.assert_allclose(g_half, g_full, rtol=1e-5, atol=1e-6)
    assert w_half == pytest.approx(w_full, rel=1e-5)
    if name == "gradnorm":  # the weight update saw the same loss means and gradient norms
        np.testing.assert_allclose(half.weights, full.weights, rtol=1e-6)


def test_accumulation_adds_to_existing_gradients():
    model = Tiny(("a", "b"))
    bal = FixedWeights()
    bal.combine(model.losses(), model.shared_params(), model.task_params())
    once = model.grads()
    bal.combine(model.losses(), model.shared_params(), model.task_params())
    for a, b in zip(once, model.grads()):
        np.testing.assert_allclose(b, 2 * a, rtol=1e-6)


# ---------------------------------------------------------------------- exact resume
def _train(name, model, bal, steps, state=None, opt_state=None):
    bal.bind(list(model.heads))
    opt = paddle.optimizer.SGD(0.05, parameters=model.params() + bal.parameters())
    if opt_state is not None:
        opt.set_state_dict(opt_state)
    if state is not None:
        bal.set_state_dict(json.loads(state))
    log = []
    for step in steps:
        tasks = ["a", "b", "c"] if step % 3 else ["a", "c"]  # sampled subsets too
        rows = slice(step % 2 * 4, step % 2 * 4 + 4)
        w = bal.combine(model.losses(rows, tasks), model.shared_params(), model.task_params(tasks))
        opt.step()
        opt.clear_grad()
        log.append(w)
    return log


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_continues_bit_exactly(name):
    kwargs = {"dwa": {"window": 2}, "pcgrad": {"seed": 7}}.get(name, {})
    straight_model, straight = Tiny(), BALANCERS.get(name)(**kwargs)
    log_straight = _train(name, straight_model, straight, range(10))

    first_model, first = Tiny(), BALANCERS.get(name)(**kwargs)
    log_first = _train(name, first_model, first, range(5))
    saved_params = [p.numpy().copy() for p in first_model.params()]
    saved_state = json.dumps(first.state_dict())

    resumed_model, resumed = Tiny(init_seed=99), BALANCERS.get(name)(**kwargs)  # different init, restored below
    for p, v in zip(resumed_model.params(), saved_params):
        p.set_value(v)
    log_resumed = _train(name, resumed_model, resumed, range(5, 10), state=saved_state)
    assert log_first + log_resumed == log_straight
    for a, b in zip(straight_model.params(), resumed_model.params()):
        assert np.array_equal(a.numpy(), b.numpy())
    assert json.dumps(resumed.state_dict()) == json.dumps(straight.state_dict())


def test_state_dict_mid_accumulation_is_refused():
    model = Tiny(("a", "b"))
    bal = PCGrad()
    bal.combine(model.losses(), model.shared_params(), model.task_params(), sync=False)
    with pytest.raises(RuntimeError, match="accumulation"):
        bal.state_dict()


# ---------------------------------------------------------------------- tasks, errors, registry
@pytest.mark.parametrize("name", ALL)
def test_a_step_with_a_subset_of_tasks(name):
    model = Tiny(("a", "b", "c"))
    bal = BALANCERS.get(name)(**({"weights": {"b": 2.0}} if name == "fixed" else {}))
    bal.bind(["a", "b", "c"])
    if name == "uncertainty":
        bal.log_vars.set_value(np.array([0.0, -0.7, 0.0], "float32"))
    if name == "gradnorm":
        bal.weights = np.array([0.5, 2.0, 0.5])
    w = bal.combine(model.losses(tasks=["b"]), model.shared_params(), model.task_params(["b"]))
    assert list(w) == ["b"]
    expected = {"fixed": 2.0, "uncertainty": float(np.exp(np.float32(0.7))), "gradnorm": 2.0}.get(name, 1.0)
    assert w["b"] == pytest.approx(expected, rel=1e-6)
    assert all(p.grad is None for t in "ac" for p in model.heads[t].parameters())
    got = [p.grad.numpy().copy() for p in model.shared_params() + list(model.heads["b"].parameters())]
    sep = separate_gradients(model, "b")["b"]
    want = sep[:len(model.shared_params())] + sep[len(model.shared_params()) + 2:len(model.shared_params()) + 4]
    for g, s in zip(got, want):  # one task: its own gradient times its weight, shared part and head
        np.testing.assert_allclose(g, w["b"] * s, rtol=1e-5, atol=1e-7)


def test_bad_inputs_raise_clear_errors():
    model = Tiny(("a", "b"))
    bal = FixedWeights(tasks=["a", "b"])
    with pytest.raises(KeyError, match="unknown task.*zzz"):
        bal.combine({"zzz": model.losses()["a"]}, model.shared_params(), {})
    with pytest.raises(ValueError, match="scalar"):
        bal.combine({"a": paddle.ones([2])}, model.shared_params(), {})
    with pytest.raises(KeyError, match="unknown task"):
        FixedWeights({"x": 2.0}, tasks=["a"])
    with pytest.raises(ValueError, match=">= 0"):
        FixedWeights({"a": -1.0})
    with pytest.raises(ValueError, match="bound to tasks"):
        bal.bind(["a", "c"])
    with pytest.raises(KeyError, match="did you mean 'pcgrad'"):
        BALANCERS.get("pcgard")


def test_registry_and_costs():
    import paddlepalm as palm

    assert palm.balancing.PCGrad is PCGrad and palm.balancing.BALANCERS is BALANCERS
    assert BALANCERS.names() == sorted(ALL)
    assert BALANCERS.get("cagrad") is CAGrad
    assert {n: BALANCERS.get(n)().backward_passes(3) for n in ALL} == {
        "fixed": 1, "uncertainty": 1, "dwa": 1, "gradnorm": 3, "pcgrad": 3, "cagrad": 3}
    clone = copy.deepcopy(PCGrad(seed=1))
    assert clone.orders(3) == PCGrad(seed=1).orders(3)


# ---------------------------------------------------------------------- data parallel
class ThreadAllReduce:
    """Mean-all-reduce between ranks that run as threads of this process (a stand-in for NCCL/Gloo).

    Paddle's eager mode is not thread-safe, so the ranks take turns: a rank runs Paddle code only
    while it holds ``turn`` and lets go of it while it waits for the others.
    """

    def __init__(self, world_size):
        self.barrier = threading.Barrier(world_size)
        self.slots = [None] * world_size
        self.turn = threading.Lock()

    def wait(self):
        self.turn.release()
        self.barrier.wait()
        self.turn.acquire()

    def for_rank(self, rank):
        def all_reduce_mean(tensor):
            self.slots[rank] = tensor.numpy()
            self.wait()
            mean = np.mean(self.slots, axis=0)
            self.wait()  # every rank has read the slots before any writes the next ones
            return paddle.to_tensor(mean)
        return all_reduce_mean


def _dp_steps(model, bal, rows, weight, all_reduce=None, steps=4):
    """The engine's convention: each rank's losses carry its shard weight, gradients are averaged."""
    opt = paddle.optimizer.SGD(0.1, parameters=model.params() + bal.parameters())
    for _ in range(steps):
        losses = {t: loss * weight for t, loss in model.losses(rows).items()}
        bal.combine(losses, model.shared_params(), model.task_params())
        if all_reduce is not None:  # the strategy's reduction (harmless after a per-task balancer's own)
            for p in model.params() + bal.parameters():
                if p.grad is not None:
                    p.grad.set_value(all_reduce(p.grad))
        opt.step()
        opt.clear_grad()


@pytest.mark.parametrize("name", ALL)
def test_two_ranks_equal_one_process_with_the_global_batch(name):
    kwargs = {"dwa": {"window": 1}}.get(name, {})
    one_model, one = Tiny(), BALANCERS.get(name)(**kwargs)
    _dp_steps(one_model, one, slice(0, 8), 1.0)
    comm = ThreadAllReduce(2)
    models, bals, errors = [Tiny(), Tiny()], [BALANCERS.get(name)(**kwargs) for _ in range(2)], []
    shards = [(slice(0, 3), 2 * 3 / 8), (slice(3, 8), 2 * 5 / 8)]  # uneven: weights world * rows / total

    def rank(r):
        with comm.turn:
            try:
                bals[r].set_communicator(comm.for_rank(r))
                _dp_steps(models[r], bals[r], shards[r][0], shards[r][1], comm.for_rank(r))
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)
                comm.barrier.abort()

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert bals[0].reduces_gradients == (bals[0].cost == "T")
    for r in range(2):
        for a, b in zip(one_model.params(), models[r].params()):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    if name == "dwa":  # the weights moved, identically on both ranks
        assert bals[0].state_dict()["weights"] == bals[1].state_dict()["weights"] != [1.0] * 3
    if name == "gradnorm":
        assert bals[0].weights.tolist() == bals[1].weights.tolist() != [1.0] * 3


# ---------------------------------------------------------------------- AMP loss scaling
@pytest.mark.parametrize("name", ALL)
def test_a_loss_scale_in_scale_unscales_to_the_plain_gradients(name):
    plain_model, scaled_model = Tiny(), Tiny()
    plain, scaled = BALANCERS.get(name)(), BALANCERS.get(name)()
    w_plain = plain.combine(plain_model.losses(), plain_model.shared_params(), plain_model.task_params())
    w_scaled = scaled.combine(scaled_model.losses(), scaled_model.shared_params(), scaled_model.task_params(),
                              scale=1024.0)
    assert w_scaled == pytest.approx(w_plain, rel=1e-5)
    for a, b in zip(plain_model.grads() + [p.grad.numpy() for p in plain.parameters()],
                    scaled_model.grads() + [p.grad.numpy() for p in scaled.parameters()]):
        np.testing.assert_allclose(b / 1024.0, a, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["gradnorm", "pcgrad", "cagrad"])
def test_an_overflowing_step_leaves_non_finite_gradients_and_the_state_alone(name):
    model = Tiny(("a", "b"))
    bal = BALANCERS.get(name)(tasks=["a", "b"])
    losses = model.losses()
    losses["a"] = losses["a"] * float("inf")
    w = bal.combine(losses, model.shared_params(), model.task_params())
    # the loss scaler sees the overflow and skips the step ...
    assert not np.all(np.isfinite(np.concatenate([p.grad.numpy().reshape(-1) for p in model.shared_params()])))
    # ... and the balancer did not learn from it
    assert w == {"a": 1.0, "b": 1.0}
    if name == "gradnorm":
        assert bal.weights.tolist() == [1.0, 1.0] and bal.state_dict()["adam_t"] == [0, 0]
        assert bal.state_dict()["initial"] == [None, None]  # L(0) comes from the first finite step


# ---------------------------------------------------------------------- joint training, shared inputs
@pytest.mark.parametrize("name", ["fixed", "uncertainty", "pcgrad", "cagrad"])
def test_joint_training_on_shared_inputs_lowers_both_losses(tmp_path, name):
    from paddlepalm.forward import encoder_inputs, to_tensors
    from paddlepalm.head import Classify, SequenceLabel
    from paddlepalm.reader import JointLabelReader
    from tests.helpers import tiny_model, write_vocab
    from tests.test_joint_label_reader import ROWS, _write_joint

    vocab = write_vocab(str(tmp_path / "vocab"))
    reader = JointLabelReader(vocab, 32, seed=0).load_data(_write_joint(tmp_path / "j.tsv", ROWS), batch_size=4)
    encoder = tiny_model(seed=0)
    encoder.train()
    paddle.seed(1)
    heads = {"intent": Classify(reader.view("label").num_classes, 32),
             "slot": SequenceLabel(reader.view("word_labels").num_classes, 32)}
    shared = list(encoder.parameters())
    task_params = {t: list(h.parameters()) for t, h in heads.items()}
    bal = BALANCERS.get(name)(tasks=list(heads))
    opt = paddle.optimizer.AdamW(1e-2, parameters=shared + [p for ps in task_params.values() for p in ps]
                                 + bal.parameters(), weight_decay=0.0)
    batch = to_tensors(next(iter(reader.iterator(num_epochs=1))))
    history = []
    for _ in range(40):
        out = encoder(**encoder_inputs(batch, encoder))  # one encoder pass for both heads
        losses = {t: h(out, batch)["loss"] for t, h in heads.items()}
        history.append({t: float(v) for t, v in losses.items()})
        bal.combine(losses, shared, task_params)
        opt.step()
        opt.clear_grad()
    for t in heads:
        assert history[-1][t] < 0.5 * history[0][t], (t, history[0][t], history[-1][t])
