"""paddlepalm.distill: KD losses against NumPy, teacher frozen, projections, cache, student init, errors."""
import json
import re
import os
from types import SimpleNamespace

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.distill import (Distiller, Match, Schedule, Teacher, attention_kl_match, build_heads,
                                build_student, check_label_map, check_tokenizer, cosine_match, mlm_kd,
                                mse_match, reader_augments, soft_label_kd, span_kd, student_from_config,
                                student_from_teacher, token_kd)
from paddlepalm.errors import ConfigError
from paddlepalm.forward import encoder_inputs, to_tensors
from tests.helpers import tiny_config, write_vocab

SEP = "\x02"
INTENTS = [("play", "play jazz music"), ("weather", "what is the weather in paris"),
           ("book", "book a table for two"), ("play", "play rock songs"), ("weather", "will it rain tomorrow"),
           ("book", "book the restaurant"), ("play", "play a song by the rock"), ("weather", "is it sunny in paris"),
           ("book", "book a table in paris"), ("play", "add jazz to my playlist")]
SLOTS = [("play jazz music", "O B-genre O"), ("what is the weather in paris", "O O O O O B-city"),
         ("book a table for two", "O O O O B-count"), ("play rock songs", "O B-genre O"),
         ("will it rain tomorrow", "O O O B-date"), ("book the restaurant", "O O O"),
         ("play a song by the rock", "O O O O O B-genre"), ("is it sunny in paris", "O O O O B-city")]
SLOT_TAGS = ["B-city", "B-count", "B-date", "B-genre", "O"]
TEACHER_LAYERS = 4


# ---------------------------------------------------------------------- NumPy references
def _np_log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _np_kd(s, t, T, mask=None, loss="kl", t2=True):
    log_ps, log_pt = _np_log_softmax(s / T), _np_log_softmax(t / T)
    pt = np.exp(log_pt)
    per = (pt * (log_pt - log_ps)).sum(-1) if loss == "kl" else -(pt * log_ps).sum(-1)
    value = per.mean() if mask is None else per[mask.astype(bool)].mean()
    return value * (T * T if t2 else 1.0)


def _t(x):
    return paddle.to_tensor(np.asarray(x, dtype=np.float32))


@pytest.mark.parametrize("loss", ["kl", "soft_ce"])
@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("t2", [True, False])
def test_soft_label_kd_equals_numpy(loss, T, t2):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(6, 5)) * 3, rng.normal(size=(6, 5)) * 3
    got = float(soft_label_kd(_t(s), _t(t), T, loss=loss, scale_by_t2=t2))
    assert got == pytest.approx(_np_kd(s, t, T, loss=loss, t2=t2), rel=1e-5, abs=1e-6)
    if t2 and T != 1.0:  # T^2 scaling is exactly the factor T^2
        plain = float(soft_label_kd(_t(s), _t(t), T, loss=loss, scale_by_t2=False))
        assert got == pytest.approx(plain * T * T, rel=1e-6)


def test_kl_of_identical_logits_is_zero_and_soft_ce_is_the_entropy():
    x = np.random.default_rng(1).normal(size=(4, 7))
    assert float(soft_label_kd(_t(x), _t(x), 2.0)) == pytest.approx(0.0, abs=1e-6)
    p = np.exp(_np_log_softmax(x / 2.0))
    entropy = -(p * np.log(p)).sum(-1).mean() * 4.0
    assert float(soft_label_kd(_t(x), _t(x), 2.0, loss="soft_ce")) == pytest.approx(entropy, rel=1e-5)


def test_masking_drops_padding_rows_and_tokens():
    rng = np.random.default_rng(2)
    s, t = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 4, 5))
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    expected = _np_kd(s, t, 2.0, mask)
    got = float(token_kd(_t(s), _t(t), paddle.to_tensor(mask.astype(bool)), 2.0))
    assert got == pytest.approx(expected, rel=1e-5)
    s2 = s.copy()
    s2[mask == 0] = 100.0  # garbage at padding positions changes nothing
    assert float(token_kd(_t(s2), _t(t), paddle.to_tensor(mask), 2.0)) == pytest.approx(expected, rel=1e-5)
    assert float(soft_label_kd(_t(s), _t(t), 2.0, mask=paddle.to_tensor(mask))) == pytest.approx(expected, rel=1e-5)


def test_sigmoid_kd_equals_numpy():
    rng = np.random.default_rng(3)
    s, t, T = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), 2.0
    ps, pt = 1 / (1 + np.exp(-s / T)), 1 / (1 + np.exp(-t / T))
    kl = (pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps))).mean() * T * T
    assert float(soft_label_kd(_t(s), _t(t), T, distribution="sigmoid")) == pytest.approx(kl, rel=1e-5)


def test_span_kd_equals_numpy_over_context_tokens():
    rng = np.random.default_rng(4)
    ss, se, ts, te = (rng.normal(size=(3, 8)) for _ in range(4))
    ctx = np.zeros((3, 8), dtype=bool)
    ctx[0, 3:7], ctx[1, 2:8], ctx[2, 4:5] = True, True, True

    def ref(s, t):
        return np.mean([_np_kd(s[i][ctx[i]][None], t[i][ctx[i]][None], 3.0) for i in range(3)])

    expected = (ref(ss, ts) + ref(se, te)) / 2
    got = float(span_kd(_t(ss), _t(se), _t(ts), _t(te), paddle.to_tensor(ctx), 3.0))
    assert got == pytest.approx(expected, rel=1e-5)


def test_mlm_kd_on_masked_positions_and_empty():
    rng = np.random.default_rng(5)
    s, t = rng.normal(size=(5, 11)), rng.normal(size=(5, 11))
    assert float(mlm_kd(_t(s), _t(t), 2.0)) == pytest.approx(_np_kd(s, t, 2.0), rel=1e-5)
    empty = paddle.zeros([0, 11])
    empty.stop_gradient = False
    assert float(mlm_kd(empty, paddle.zeros([0, 11]), 2.0)) == 0.0


def test_match_losses_equal_numpy():
    rng = np.random.default_rng(6)
    s, t = rng.normal(size=(2, 5, 8)), rng.normal(size=(2, 5, 8))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    keep = mask.astype(bool)
    mse = ((s - t) ** 2).mean(-1)[keep].mean()
    assert float(mse_match(_t(s), _t(t), paddle.to_tensor(mask))) == pytest.approx(mse, rel=1e-5)
    cos = (s * t).sum(-1) / (np.linalg.norm(s, axis=-1) * np.linalg.norm(t, axis=-1))
    assert float(cosine_match(_t(s), _t(t), paddle.to_tensor(mask))) == pytest.approx((1 - cos)[keep].mean(), rel=1e-5)

    def attn(shape):
        x = rng.normal(size=shape)
        return np.exp(_np_log_softmax(x))

    sa, ta = attn((2, 4, 5, 5)), attn((2, 4, 5, 5))
    kl = (ta * (np.log(ta) - np.log(sa))).sum(-1).mean(1)[keep].mean()
    assert float(attention_kl_match(_t(sa), _t(ta), paddle.to_tensor(mask))) == pytest.approx(kl, rel=1e-5)
    amse = ((sa - ta) ** 2).transpose(0, 2, 1, 3).reshape(2, 5, -1).mean(-1)[keep].mean()
    assert float(mse_match(_t(sa), _t(ta), paddle.to_tensor(mask))) == pytest.approx(amse, rel=1e-5)
    # different head counts: compared head-averaged
    s2 = attn((2, 2, 5, 5))
    sm, tm = s2.mean(1), ta.mean(1)
    kl2 = (tm * (np.log(tm) - np.log(sm))).sum(-1)[keep].mean()
    assert float(attention_kl_match(_t(s2), _t(ta), paddle.to_tensor(mask))) == pytest.approx(kl2, rel=1e-5)


def test_schedules_and_their_state():
    lin = Schedule.build({"start": 4.0, "end": 1.0}, "distill.temperature")
    assert lin.kind == "linear"
    lin.on_step(0, 10)
    assert lin.value == 4.0
    lin.on_step(5)
    assert lin.value == pytest.approx(2.5)
    lin.on_step(20)
    assert lin.value == 1.0
    warm = Schedule(1.0, 0.0, "linear", warmup_steps=4)
    warm.on_step(4, 8)
    assert warm.value == 1.0
    warm.on_step(6)
    assert warm.value == pytest.approx(0.5)
    cos = Schedule(0.0, 1.0, "cosine")
    cos.on_step(5, 10)
    assert cos.value == pytest.approx(0.5)
    const = Schedule.build(2, "x")
    const.on_step(7, 9)
    assert const.value == 2.0
    other = Schedule.build({"start": 4.0, "end": 1.0}, "t")
    other.set_state_dict(lin.state_dict())
    assert other.value == lin.value == 1.0
    with pytest.raises(ValueError, match="distill.temperature: unknown schedule kind 'exp'"):
        Schedule.build({"start": 1, "end": 2, "kind": "exp"}, "distill.temperature")
    with pytest.raises(ValueError, match="x: unknown key"):
        Schedule.build({"start": 1, "stop": 2}, "x")


# ---------------------------------------------------------------------- a tiny saved teacher
def _write_data(root):
    os.makedirs(root, exist_ok=True)
    vocab = write_vocab(os.path.join(root, "vocab"))
    intent = os.path.join(root, "intent.tsv")
    with open(intent, "w", encoding="utf-8") as f:
        f.write("label\ttext_a\n" + "".join("%s\t%s\n" % r for r in INTENTS))
    slot = os.path.join(root, "slot.tsv")
    with open(slot, "w", encoding="utf-8") as f:
        f.write("text_a\tlabel\n" + "".join("%s\t%s\n" % (w.replace(" ", SEP), l.replace(" ", SEP))
                                             for w, l in SLOTS))
    return vocab, intent, slot


def _readers(vocab, intent, slot, batch=3, seed=1, intent_labels=("book", "play", "weather")):
    return {"intent": palm.reader.ClassifyReader(vocab, 16, seed=seed, label_map=list(intent_labels))
            .load_data(intent, batch_size=batch),
            "slot": palm.reader.SequenceLabelReader(vocab, 16, label_map_config=SLOT_TAGS, seed=seed)
            .load_data(slot, batch_size=batch)}


@pytest.fixture(scope="module")
def teacher_setup(tmp_path_factory):
    from paddlepalm.model import save_model

    root = str(tmp_path_factory.mktemp("distill"))
    vocab, intent, slot = _write_data(root)
    paddle.seed(0)
    backbone = palm.backbone.BERT.from_config(tiny_config("bert", num_hidden_layers=TEACHER_LAYERS,
                                                          hidden_dropout_prob=0.1))
    readers = _readers(vocab, intent, slot)
    heads = {"intent": palm.head.Classify(3, 32), "slot": palm.head.SequenceLabel(len(SLOT_TAGS), 32, use_crf=True)}
    tasks = [SimpleNamespace(name=n, reader=readers[n], head=heads[n], predict_reader=None, pred_head=None,
                             mix_ratio=1.0, head_owner=n) for n in ("intent", "slot")]
    path = os.path.join(root, "teacher")
    save_model(path, backbone, tasks, readers["intent"].tokenizer)
    return SimpleNamespace(root=root, path=path, vocab=vocab, intent=intent, slot=slot)


def _params(layer):
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def test_student_from_teacher_layers_has_exactly_their_weights(teacher_setup):
    teacher = Teacher.load(teacher_setup.path)
    t_enc = teacher.backbone("intent")
    student = student_from_teacher(t_enc, [0, 2, 3])
    assert student.config.num_hidden_layers == 3 and type(student) is type(t_enc)
    t_state, s_state = _params(t_enc), _params(student)
    for name, value in s_state.items():
        if name.startswith("encoder.layers."):
            j, rest = name.split(".", 3)[2], name.split(".", 3)[3]
            source = "encoder.layers.%d.%s" % ([0, 2, 3][int(j)], rest)
        else:
            source = name
        assert np.array_equal(value, t_state[source]), name
    assert all(not p.stop_gradient for p in student.parameters())  # trainable, unlike the teacher
    fresh_pooler = student_from_teacher(t_enc, [1], copy_pooler=False)
    assert not np.array_equal(fresh_pooler.pooler.dense.weight.numpy(), t_state["pooler.dense.weight"])
    assert np.array_equal(fresh_pooler.encoder.layers[0].linear1.weight.numpy(),
                          t_state["encoder.layers.1.linear1.weight"])
    tweaked = build_student({"layers": [1, 3], "overrides": {"hidden_dropout_prob": 0.0}}, t_enc)
    assert tweaked.config.hidden_dropout_prob == 0.0 and tweaked.config.num_hidden_layers == 2


def test_student_errors_name_the_key(teacher_setup):
    t_enc = Teacher.load(teacher_setup.path).backbone("intent")
    with pytest.raises(ConfigError, match=r"distill.student.layers\[1\]: layer 4 is out of range: the teacher has 4 layers"):
        build_student({"layers": [0, 4]}, t_enc)
    with pytest.raises(ConfigError, match="layer indices repeat"):
        student_from_teacher(t_enc, [1, 1])
    with pytest.raises(ConfigError, match="hidden_size would change parameter shapes"):
        build_student({"layers": [0], "overrides": {"hidden_size": 16}}, t_enc)
    with pytest.raises(ConfigError, match="give exactly one of 'layers'"):
        build_student({}, t_enc)
    with pytest.raises(ConfigError, match=r"distill.student.config.vocab_size: the student's vocab_size 50 "
                                          r"differs from the teacher's 85"):
        build_student({"config": tiny_config("bert", vocab_size=50)}, t_enc)
    with pytest.raises(ConfigError, match="distill.student.config: .*unknown encoder config key"):
        student_from_config(dict(tiny_config("bert"), hiden_size=3))


def test_heads_copied_or_fresh(teacher_setup):
    teacher = Teacher.load(teacher_setup.path)
    student = student_from_teacher(teacher.backbone("intent"), [0, 1])
    heads = build_heads(teacher, ["intent", "slot"], student, "copy")
    for task in ("intent", "slot"):
        t, s = _params(teacher.head(task)), _params(heads[task])
        assert t.keys() == s.keys() and all(np.array_equal(t[k], s[k]) for k in t)
        assert heads[task].training and all(not p.stop_gradient for p in heads[task].parameters())
    assert heads["slot"].crf is not None  # the CRF transitions come with the copy
    narrow = student_from_config(tiny_config("bert", hidden_size=16, num_attention_heads=2, intermediate_size=32))
    fresh = build_heads(teacher, ["intent"], narrow, "fresh")
    assert fresh["intent"].classifier.weight.shape == [16, 3]
    with pytest.raises(ConfigError, match="cannot copy task 'intent'.s head: the teacher's is 32 wide, the student 16"):
        build_heads(teacher, ["intent"], narrow, "copy")


def _hand_loop(setup, steps, cache=False, layers=(0, 2), student=None, matches=(), seed=0, sgd=False,
               start=0, stop=None, snapshot=None, **kwargs):
    """A minimal training loop around the Distiller (what the engine will do). Runs steps
    ``start..stop`` of ``steps``; ``snapshot`` (from a run's ``snapshot()``) resumes one."""
    paddle.seed(seed)
    teacher = Teacher.load(setup.path)
    student = student or student_from_teacher(teacher.backbone("intent"), list(layers))
    heads = build_heads(teacher, ["intent", "slot"], student,
                        "copy" if student.config.hidden_size == 32 else "fresh")
    readers = _readers(setup.vocab, setup.intent, setup.slot)
    distiller = Distiller(teacher, student, heads, matches=matches, cache=cache, readers=readers,
                          temperature={"start": 4.0, "end": 1.0}, **kwargs)
    params = list(student.parameters()) + [p for h in heads.values() for p in h.parameters()] + distiller.parameters()
    opt = (paddle.optimizer.SGD(learning_rate=0.1, parameters=params) if sgd else
           paddle.optimizer.AdamW(learning_rate=1e-2, parameters=params, weight_decay=0.0))
    layers_by_name = dict(student=student, **heads)
    if snapshot is not None:
        for name, layer in layers_by_name.items():
            layer.set_state_dict({k: paddle.to_tensor(v) for k, v in snapshot[name].items()})
        for task, reader in readers.items():
            reader.set_state_dict(snapshot["reader." + task])
        distiller.set_state_dict(snapshot["distiller"])
        paddle.set_rng_state(snapshot["rng"])
    batches = {t: r.iterator(num_epochs=None) for t, r in readers.items()}
    history = []
    for step in range(start, steps if stop is None else stop):
        task = ("intent", "slot")[step % 2]
        batch = to_tensors(next(batches[task]))
        distiller.on_step(step, steps)
        encoded = student(**encoder_inputs(batch, student), **distiller.encoder_kwargs(task))
        outputs = heads[task](encoded, batch)
        total, parts = distiller.loss(task, batch, outputs, encoded, outputs["loss"])
        total.backward()
        opt.step()
        opt.clear_grad()
        history.append(parts)

    def take_snapshot():
        state = {name: _params(layer) for name, layer in layers_by_name.items()}
        state.update({"reader." + t: r.state_dict() for t, r in readers.items()})
        return dict(state, distiller=distiller.state_dict(), rng=paddle.get_rng_state())

    return SimpleNamespace(teacher=teacher, student=student, heads=heads, distiller=distiller, history=history,
                           snapshot=take_snapshot)


MATCHES = [{"layer_T": 1, "layer_S": 0, "feature": "hidden", "loss": "mse", "weight": 1.0},
           {"layer_T": 3, "layer_S": 1, "feature": "attention", "loss": "attention_kl", "weight": 0.5},
           {"feature": "embeddings", "loss": "cosine", "weight": 0.1}]


def test_teacher_is_bit_identical_after_distillation(teacher_setup):
    before = Teacher.load(teacher_setup.path)
    expected = [p.numpy().copy() for p in before.parameters()]
    run = _hand_loop(teacher_setup, 8, matches=MATCHES)
    after = [p.numpy() for p in run.teacher.parameters()]
    assert len(after) == len(expected) > 0
    assert all(np.array_equal(a, b) for a, b in zip(after, expected))
    assert all(p.stop_gradient and p.grad is None for p in run.teacher.parameters())
    assert not run.teacher.backbone("intent").training
    student_first = run.student.encoder.layers[0].linear1.weight.numpy()
    assert not np.array_equal(student_first, expected_value(before, "encoder.layers.0.linear1.weight"))
    parts = run.history[-1]
    assert {"soft", "hard", "total", "temperature", "match.hidden.1->0.mse",
            "match.attention.3->1.attention_kl", "match.embeddings.cosine"} <= set(parts)
    assert run.history[0]["temperature"] == 4.0 and parts["temperature"] == pytest.approx(4.0 - 3.0 * 7 / 8)
    for p in run.history:
        weighted = 0.5 * p["soft"] + 0.5 * p["hard"] + p["match.hidden.1->0.mse"] + \
            0.5 * p["match.attention.3->1.attention_kl"] + 0.1 * p["match.embeddings.cosine"]
        assert p["total"] == pytest.approx(weighted, rel=1e-5)


def expected_value(teacher, name):
    return teacher.backbone("intent").state_dict()[name].numpy()


def test_projection_only_when_widths_differ_and_it_trains(teacher_setup):
    same = _hand_loop(teacher_setup, 2, matches=MATCHES)
    assert same.distiller.parameters() == [] and len(same.distiller.projections) == 0
    paddle.seed(3)
    narrow = student_from_config(tiny_config("bert", hidden_size=16, num_attention_heads=2,
                                             intermediate_size=32, num_hidden_layers=2))
    matches = MATCHES + [{"layer_T": 2, "layer_S": 1, "feature": "attention", "loss": "mse"}]
    # build once to read the projections' initial values under the same seed as the run
    paddle.seed(0)
    probe = Distiller(Teacher.load(teacher_setup.path), narrow,
                      build_heads(Teacher.load(teacher_setup.path), ["intent", "slot"], narrow, "fresh"),
                      matches=matches)
    assert sorted(probe.projections.keys()) == ["match0", "match2"]  # hidden and embeddings, not attention
    assert probe.projections["match0"].weight.shape == [16, 32]
    run = _hand_loop(teacher_setup, 6, student=narrow, matches=matches)
    params = run.distiller.parameters()
    assert len(params) == 4
    initial = probe.state_dict()["projections"]
    trained = run.distiller.state_dict()["projections"]
    assert not np.allclose(trained["match0.weight"], initial["match0.weight"])
    assert not np.allclose(trained["match2.weight"], initial["match2.weight"])


def test_cached_and_on_the_fly_teacher_give_the_same_student(teacher_setup, monkeypatch):
    calls = []
    original = Teacher.forward

    def counting(self, task, batch, *args, **kwargs):
        calls.append(task)
        return original(self, task, batch, *args, **kwargs)

    monkeypatch.setattr(Teacher, "forward", counting)
    # 12 steps per task: several epochs of 10 intents / 8 slot sentences at batch 3, so cached rows
    # are reused in batches of other composition and width. A teacher row computed in another
    # batch differs in float rounding only (~1e-7); SGD keeps that size, while Adam's m / sqrt(v)
    # would blow rounding noise on near-zero gradients up to lr-sized steps.
    steps = 24
    fly = _hand_loop(teacher_setup, steps, cache=False, matches=MATCHES, sgd=True)
    fly_calls = len(calls)
    calls.clear()
    cached = _hand_loop(teacher_setup, steps, cache=True, matches=MATCHES, sgd=True)
    assert fly_calls == steps and len(calls) < steps / 2
    assert cached.distiller.cache.size("intent") == len(INTENTS)
    assert cached.distiller.cache.size("slot") == len(SLOTS)
    for a, b in zip(fly.student.parameters(), cached.student.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, rtol=0)
    for task in ("intent", "slot"):
        for a, b in zip(fly.heads[task].parameters(), cached.heads[task].parameters()):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, rtol=0)
    for p, q in zip(fly.history, cached.history):
        assert p["total"] == pytest.approx(q["total"], abs=1e-5)


def test_masking_reader_is_never_cached(teacher_setup, caplog):
    mlm = palm.reader.MaskLMReader(teacher_setup.vocab, 16, seed=0)
    augments, why = reader_augments(mlm)
    assert augments and "draws new masks" in why
    assert reader_augments(palm.reader.ClassifyReader(teacher_setup.vocab, 16)) == (False, "")

    class Noisy(palm.reader.ClassifyReader):
        def collate(self, features, rng):
            return super().collate(features, rng)

    assert reader_augments(Noisy(teacher_setup.vocab, 16))[0]
    Noisy.random_augmentation = False
    assert not reader_augments(Noisy(teacher_setup.vocab, 16))[0]
    teacher = Teacher.load(teacher_setup.path)
    student = student_from_teacher(teacher.backbone("intent"), [0])
    heads = build_heads(teacher, ["intent", "slot"], student)
    caplog.clear()
    distiller = Distiller(teacher, student, heads, cache=True, readers={"intent": mlm})
    assert "task 'intent': teacher outputs computed on the fly (not cached): MaskLMReader draws new masks" in caplog.text
    assert not distiller.cache.enabled("intent") and distiller.cache.enabled("slot")


def test_state_dict_round_trip(teacher_setup):
    narrow = student_from_config(tiny_config("bert", hidden_size=16, num_attention_heads=2, intermediate_size=32))
    run = _hand_loop(teacher_setup, 3, student=narrow, matches=MATCHES[:1], soft_weight={"start": 1.0, "end": 0.0})
    state = run.distiller.state_dict()
    fresh = Distiller(run.teacher, narrow, run.heads, matches=MATCHES[:1], temperature={"start": 4.0, "end": 1.0},
                      soft_weight={"start": 1.0, "end": 0.0})
    fresh.set_state_dict(state)
    assert fresh.temperature.value == run.distiller.temperature.value
    assert fresh.soft_weight.value == run.distiller.soft_weight.value == pytest.approx(1 - 2 / 3)
    np.testing.assert_array_equal(fresh.projections["match0"].weight.numpy(),
                                  run.distiller.projections["match0"].weight.numpy())
    with pytest.raises(ValueError, match="projections"):
        Distiller(run.teacher, narrow, run.heads).set_state_dict(state)


def test_distiller_needs_what_the_matches_use(teacher_setup):
    teacher = Teacher.load(teacher_setup.path)
    student = student_from_teacher(teacher.backbone("intent"), [0, 1])
    heads = build_heads(teacher, ["intent", "slot"], student)
    distiller = Distiller(teacher, student, heads, matches=[dict(MATCHES[1], tasks=["slot"])])
    assert distiller.encoder_kwargs("intent") == {"output_hidden_states": False, "output_attentions": False}
    assert distiller.encoder_kwargs("slot") == {"output_hidden_states": False, "output_attentions": True}
    assert distiller.encoder_kwargs(["intent", "slot"]) == {"output_hidden_states": False, "output_attentions": True}
    assert distiller.encoder_kwargs("aux") == {"output_hidden_states": False, "output_attentions": False}
    reader = _readers(teacher_setup.vocab, teacher_setup.intent, teacher_setup.slot)["slot"]
    batch = to_tensors(next(iter(reader.iterator(num_epochs=1))))
    encoded = student(**encoder_inputs(batch, student))
    with pytest.raises(RuntimeError, match=r"no attentions; run the student with \*\*distiller.encoder_kwargs"):
        distiller.loss("slot", batch, heads["slot"](encoded, batch), encoded, None)
    encoded = student(**encoder_inputs(batch, student), **distiller.encoder_kwargs("slot"))
    total, parts = distiller.loss("slot", batch, heads["slot"](encoded, batch), encoded, None)
    assert "hard" not in parts and parts["total"] == pytest.approx(0.5 * parts["soft"] + 0.5 * parts[
        "match.attention.3->1.attention_kl"], rel=1e-5)


def test_bad_distillation_input_errors(teacher_setup, tmp_path):
    teacher = Teacher.load(teacher_setup.path)
    student = student_from_teacher(teacher.backbone("intent"), [0, 1])
    heads = build_heads(teacher, ["intent"], student)
    with pytest.raises(ConfigError, match=r"distill.teacher: teacher model .* has no task 'ner' \(it has: intent, slot\)"):
        Teacher.load(teacher_setup.path, tasks=["intent", "ner"])
    with pytest.raises(ConfigError, match=r"distill.teacher.ner: teacher model .* has no task 'ner'"):
        Teacher.load({"ner": teacher_setup.path})
    assert Teacher.load({"ner": {"path": teacher_setup.path, "task": "slot"}}).head("ner") is not None
    with pytest.raises(ConfigError, match="distill.teacher.intent: cannot load teacher model"):
        Teacher.load({"intent": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="distill.teacher: the teacher has no task 'other'"):
        Distiller(teacher, student, dict(heads, other=heads["intent"]))
    with pytest.raises(ConfigError, match=r"distill.matches\[0\].layer_S: layer 2 is out of range: the student has 2 layers"):
        Distiller(teacher, student, heads, matches=[{"layer_T": 3, "layer_S": 2, "feature": "hidden"}])
    with pytest.raises(ConfigError, match=r"distill.matches\[0\].layer_T: layer 9 is out of range: the teacher has 4"):
        Distiller(teacher, student, heads, matches=[{"layer_T": 9, "layer_S": 0}])
    with pytest.raises(ConfigError, match=r"distill.matches\[0\].loss: 'cosine' does not apply to feature 'attention'"):
        Match.from_dict({"layer_T": 0, "layer_S": 0, "feature": "attention", "loss": "cosine"}, "distill.matches[0]")
    with pytest.raises(ConfigError, match=r"distill.matches\[1\].feature: unknown feature 'logits'"):
        Distiller(teacher, student, heads, matches=[MATCHES[0], {"feature": "logits"}])
    with pytest.raises(ConfigError, match="distill.temperature: must stay > 0"):
        Distiller(teacher, student, heads, temperature={"start": 2.0, "end": 0.0})
    with pytest.raises(ConfigError, match="distill.kd_loss: expected one of kl, soft_ce"):
        Distiller(teacher, student, heads, kd_loss="mse")
    # label maps: same labels in another order, and an unknown label
    readers = _readers(teacher_setup.vocab, teacher_setup.intent, teacher_setup.slot,
                       intent_labels=("play", "book", "weather"))
    with pytest.raises(ConfigError, match="task 'intent': the student's label map .* differs from the teacher's "
                                          r"\(.*paddlepalm_model.json\): same labels in another id order"):
        check_label_map(teacher, "intent", readers["intent"])
    other = palm.reader.ClassifyReader(teacher_setup.vocab, 16, label_map=["book", "play", "weather", "music"])
    with pytest.raises(ConfigError, match=r"student-only labels \['music'\]"):
        check_label_map(teacher, "intent", other)
    check_label_map(teacher, "slot", _readers(teacher_setup.vocab, teacher_setup.intent, teacher_setup.slot)["slot"])
    # vocabularies: a student reader on another vocab file
    words = [w for w in open(teacher_setup.vocab, encoding="utf-8").read().split("\n")[5:] if w]
    odd = write_vocab(str(tmp_path / "odd"), words=list(reversed(words)))
    with pytest.raises(ConfigError, match=r"task 'intent': the student's vocabulary \(.*odd/vocab.txt\) differs "
                                          r"from the teacher's .* at id 5"):
        check_tokenizer(teacher, "intent", palm.reader.ClassifyReader(odd, 16))
    short = write_vocab(str(tmp_path / "short"), words=words[:10])
    with pytest.raises(ConfigError, match="15 tokens.* differs from the teacher's"):
        check_tokenizer(teacher, "intent", palm.reader.ClassifyReader(short, 16))
    check_tokenizer(teacher, "intent", palm.reader.ClassifyReader(teacher_setup.vocab, 16))


@pytest.mark.parametrize("cache", [False, True])
def test_resume_is_bit_exact(teacher_setup, cache):
    """Schedules and projections come back from the distiller's state; the cache is rebuilt by the
    same fixed pass, so a resumed run continues exactly (cached or not)."""
    def narrow():
        paddle.seed(5)
        return student_from_config(tiny_config("bert", hidden_size=16, num_attention_heads=2,
                                               intermediate_size=32, hidden_dropout_prob=0.1))

    kwargs = dict(matches=MATCHES, cache=cache, sgd=True, soft_weight={"start": 1.0, "end": 0.2})
    full = _hand_loop(teacher_setup, 10, student=narrow(), **kwargs)
    first = _hand_loop(teacher_setup, 10, student=narrow(), stop=5, **kwargs)
    snapshot = first.snapshot()  # before narrow() reseeds Paddle's generator
    resumed = _hand_loop(teacher_setup, 10, student=narrow(), start=5, snapshot=snapshot, **kwargs)
    assert [p["total"] for p in resumed.history] == [p["total"] for p in full.history[5:]]
    assert [p["soft_weight"] for p in resumed.history] == [p["soft_weight"] for p in full.history[5:]]
    for a, b in zip(full.student.parameters() + full.distiller.parameters(),
                    resumed.student.parameters() + resumed.distiller.parameters()):
        assert np.array_equal(a.numpy(), b.numpy())
    assert len(resumed.distiller.parameters()) == 4


# ---------------------------------------------------------------------- MRC, masked LM, pairs
CONTEXT = "the weather in paris is sunny , and it will rain tomorrow ."
SQUAD = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": CONTEXT, "qas": [
    {"id": "q1", "question": "what is the weather in paris ?",
     "answers": [{"text": "sunny", "answer_start": CONTEXT.index("sunny")}]},
    {"id": "q2", "question": "when will it rain ?",
     "answers": [{"text": "tomorrow", "answer_start": CONTEXT.index("tomorrow")}]}]}]}]}


@pytest.fixture(scope="module")
def other_teacher(tmp_path_factory):
    """A saved teacher with an MRC, a masked-LM and a pairwise match task."""
    from paddlepalm.model import save_model

    root = str(tmp_path_factory.mktemp("distill_other"))
    vocab, intent, _ = _write_data(root)
    squad = os.path.join(root, "squad.json")
    with open(squad, "w", encoding="utf-8") as f:
        json.dump(SQUAD, f)
    pairs = os.path.join(root, "pairs.tsv")
    with open(pairs, "w", encoding="utf-8") as f:
        f.write("text_a\ttext_b\ttext_b_neg\n" + "".join(
            "%s\t%s\t%s\n" % (a[1], b[1], c[1]) for a, b, c in zip(INTENTS, INTENTS[3:], INTENTS[1:])))
    paddle.seed(1)
    backbone = palm.backbone.BERT.from_config(tiny_config("bert", num_hidden_layers=2))
    readers = {"qa": palm.reader.MRCReader(vocab, 40, 12, 16, seed=0).load_data(squad, batch_size=2),
               "mlm": palm.reader.MaskLMReader(vocab, 16, seed=0).load_data(intent, batch_size=4),
               "rank": palm.reader.MatchReader(vocab, 24, seed=0, learning_strategy="pairwise")
               .load_data(pairs, batch_size=3)}
    heads = {"qa": palm.head.MRC(12, 32), "mlm": palm.head.MaskLM(32, backbone.config.vocab_size),
             "rank": palm.head.Match(2, 32, learning_strategy="pairwise")}
    tasks = [SimpleNamespace(name=n, reader=readers[n], head=heads[n], predict_reader=None, pred_head=None,
                             mix_ratio=1.0, head_owner=n) for n in readers]
    path = os.path.join(root, "teacher")
    save_model(path, backbone, tasks, readers["qa"].tokenizer)
    return SimpleNamespace(path=path, readers=readers)


def test_mrc_mlm_and_pairwise_targets(other_teacher, caplog):
    teacher = Teacher.load(other_teacher.path)
    paddle.seed(0)
    student = student_from_teacher(teacher.backbone("qa"), [1])
    heads = build_heads(teacher, teacher.tasks, student)
    caplog.clear()
    distiller = Distiller(teacher, student, heads, temperature=2.0, soft_weight=1.0, hard_weight=0.0,
                          cache=True, readers=other_teacher.readers,
                          matches=[{"layer_T": 1, "layer_S": 0, "feature": "hidden"}])
    assert distiller.cache.enabled("qa")
    assert not distiller.cache.enabled("mlm") and not distiller.cache.enabled("rank")
    assert "task 'mlm': teacher outputs computed on the fly (not cached): MaskLMReader draws new masks" in caplog.text
    for task, reader in other_teacher.readers.items():
        batch = to_tensors(next(iter(reader.iterator(num_epochs=1))))
        encoded = student(**encoder_inputs(batch, student), **distiller.encoder_kwargs(task))
        outputs = heads[task](encoded, batch)
        total, parts = distiller.loss(task, batch, outputs, encoded, outputs["loss"])
        t_out, t_enc = teacher.forward(task, batch)
        if task == "qa":
            ctx = np.zeros(batch["input_ids"].shape, dtype=bool)
            for i, (lo, hi) in enumerate(zip(batch["context_start"].numpy(), batch["context_end"].numpy())):
                ctx[i, lo:hi] = True
            expected = float(span_kd(outputs["start_logits"], outputs["end_logits"], t_out["start_logits"],
                                     t_out["end_logits"], paddle.to_tensor(ctx), 2.0))
        elif task == "mlm":
            assert int(batch["mlm_mask"].sum()) == outputs["positions"].shape[0] > 0
            seq_s, seq_t = encoded.sequence_output, t_enc.sequence_output
            pos = outputs["positions"]
            s_logits = heads["mlm"].word_logits(paddle.gather(seq_s.reshape([-1, 32]), pos))
            t_logits = teacher.head("mlm").word_logits(paddle.gather(seq_t.reshape([-1, 32]), pos))
            expected = float(soft_label_kd(s_logits, t_logits, 2.0))  # the numbers: tested above
        else:
            rows = 2 * int(batch["pair_rows"])
            assert outputs["score"].shape[0] == rows
            expected = float(soft_label_kd(outputs["score"].unsqueeze(-1), t_out["score"].unsqueeze(-1), 2.0,
                                           distribution="sigmoid"))
        assert parts["soft"] == pytest.approx(expected, rel=1e-5), task
        assert parts["total"] == pytest.approx(parts["soft"] + parts["match.hidden.1->0.mse"], rel=1e-5)
        total.backward()
        grad = student.encoder.layers[0].linear1.weight.grad
        assert grad is not None and float(paddle.abs(grad).sum()) > 0
        student.clear_gradients()
        for h in heads.values():
            h.clear_gradients()
    assert distiller.cache.size("qa") == len(other_teacher.readers["qa"].features)


# ---------------------------------------------------------------------- the distill: section
def _yaml(setup, distill: str, extra_tasks: str = "") -> str:
    import textwrap

    text = textwrap.dedent("""\
        backbone:
          config: {hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 85}
        tokenizer:
          vocab: %s
        tasks:
          intent:
            reader: classify
            train: %s
            label_map: [book, play, weather]
          slot:
            reader: sequence_label
            head: {type: sequence_label, use_crf: true}
            train: %s
            label_map: %s
        %s""") % (setup.vocab, setup.intent, setup.slot, json.dumps(SLOT_TAGS), extra_tasks)
    path = os.path.join(setup.root, "distill_%d.yaml" % (abs(hash(distill + extra_tasks)) % 10 ** 8))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + textwrap.dedent(distill))
    return path


GOOD_DISTILL = """\
distill:
  teacher: teacher
  student: {layers: [0, 3], overrides: {hidden_dropout_prob: 0.0}}
  temperature: {start: 4.0, end: 1.0}
  soft_weight: 0.7
  hard_weight: 0.3
  cache: true
  task_weights: {slot: 2.0}
  matches:
    - {layer_T: 3, layer_S: 1, feature: hidden, loss: mse}
    - {layer_T: 3, layer_S: 1, feature: attention, loss: attention_kl, weight: 0.5, tasks: [slot]}
"""


def test_distill_section_validates_and_builds(teacher_setup):
    from paddlepalm.config import load_config
    from paddlepalm.distill.build import build_distillation

    settings = load_config(_yaml(teacher_setup, GOOD_DISTILL)).settings
    d = settings["distill"]
    assert d["teacher"] == teacher_setup.path  # relative to the config file's folder
    assert d["student"]["heads"] == "copy" and d["kd_loss"] == "kl" and d["scale_by_t2"] is True
    readers = _readers(teacher_setup.vocab, teacher_setup.intent, teacher_setup.slot)
    built = build_distillation(d, ["intent", "slot"], readers)
    assert built.student.config.num_hidden_layers == 2 and built.student.config.hidden_dropout_prob == 0.0
    assert set(built.heads) == {"intent", "slot"}
    assert built.distiller.soft_weight.value == 0.7 and built.distiller.cache.enabled("slot")
    assert built.distiller.encoder_kwargs("slot")["output_attentions"]
    assert not built.distiller.encoder_kwargs("intent")["output_attentions"]
    only_slot = load_config(_yaml(teacher_setup, GOOD_DISTILL.replace("  cache: true\n", "  tasks: [slot]\n")
                                  .replace("{slot: 2.0}", "{}"))).settings["distill"]
    part = build_distillation(only_slot, ["intent", "slot"], readers)
    assert list(part.heads) == ["slot"] and part.distiller.distills("slot") and not part.distiller.distills("intent")
    with pytest.raises(ConfigError, match=r"distill.tasks: 'ner' not among the run's tasks"):
        build_distillation(dict(only_slot, tasks=["ner"]), ["intent", "slot"], readers)
    plain = load_config(_yaml(teacher_setup, "")).settings
    assert plain["distill"] is None  # no section: no distillation
    # a student reader with another label order fails at build time, naming both files
    wrong = _readers(teacher_setup.vocab, teacher_setup.intent, teacher_setup.slot,
                     intent_labels=("weather", "play", "book"))
    with pytest.raises(ConfigError, match="distill: task 'intent': the student's label map"):
        build_distillation(d, ["intent", "slot"], wrong)


def test_distill_section_errors_name_line_and_key(teacher_setup):
    from paddlepalm.config import load_config

    bad = """\
    distill:
      teacher: teacher
      student: {layers: [0, 7], heads: copied}
      temperature: {start: 0.0, end: 1.0}
      tempreature: 2
      task_weights: {intnet: 1.0}
      matches:
        - {layer_T: 9, layer_S: 0, feature: hidden}
        - {layer_T: 0, layer_S: 0, feature: attention, loss: cosine}
        - {layer_T: 0, layer_S: 5}
    """
    with pytest.raises(ConfigError) as info:
        load_config(_yaml(teacher_setup, bad))
    text = str(info.value)
    for expected in ("distill.student.layers.1: layer 7 is out of range: the teacher has 4 layers (0..3)",
                     "distill.student.heads: 'copied' is not one of copy, fresh",
                     "distill.temperature: must stay > 0",
                     "distill.tempreature: unknown key 'tempreature' (did you mean 'temperature'?)",
                     "distill.task_weights.intnet: 'intnet' is not a declared task (did you mean 'intent'?)",
                     "distill.matches.0.layer_T: layer 9 is out of range: the teacher has 4 layers",
                     "distill.matches.1.loss: 'cosine' does not apply to feature 'attention'",
                     "distill.matches.2.layer_S: layer 5 is out of range: the student has 2 layers"):
        assert expected in text, (expected, text)
    assert re.search(r"distill_\d+\.yaml:\d+: distill\.student\.heads", text)
    missing = """\
    distill:
      teacher: {intent: teacher, slot: {path: teacher, task: ner}}
      student: {config: {num_hidden_layers: 1}}
    """
    with pytest.raises(ConfigError, match=r"distill.teacher.slot: the teacher .*paddlepalm_model.json has no "
                                          r"task 'ner' \(it has: intent, slot\)"):
        load_config(_yaml(teacher_setup, missing))
    nowhere = "distill:\n  teacher: nowhere\n  student: {layers: [0]}\n"
    with pytest.raises(ConfigError, match=r"distill.teacher: not a saved paddlepalm model \(no paddlepalm_model.json"):
        load_config(_yaml(teacher_setup, nowhere))
    extra = "  ner:\n    reader: sequence_label\n    train: %s\n    label_map: %s\n" % (
        teacher_setup.slot, json.dumps(SLOT_TAGS))
    with pytest.raises(ConfigError, match=r"distill.teacher: the teacher .* has no task 'ner' \(it has: intent, slot\)"):
        load_config(_yaml(teacher_setup, GOOD_DISTILL, extra_tasks=extra))


def test_fresh_crf_without_hard_loss_warns(teacher_setup, caplog):
    teacher = Teacher.load(teacher_setup.path)
    student = student_from_teacher(teacher.backbone("intent"), [0])
    fresh = build_heads(teacher, ["slot"], student, "fresh")
    assert not fresh["slot"].crf.transitions.numpy().any()
    Distiller(teacher, student, fresh, hard_weight=0.0)
    assert "the student's CRF transitions are untrained" in caplog.text
    caplog.clear()
    copied = build_heads(teacher, ["slot"], student, "copy")
    copied["slot"].crf.transitions.set_value(np.ones([5, 5], dtype=np.float32))  # as a trained teacher's
    Distiller(teacher, student, copied, hard_weight=0.0)
    Distiller(teacher, student, fresh, hard_weight=0.5)
    assert "CRF transitions" not in caplog.text
