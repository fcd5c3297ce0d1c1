import json
import os
import threading

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.sampling import Sampler, TaskInfo, annealed_probs, temperature_probs
from tests.helpers import INTENT_ROWS, tiny_config, two_task_files, write_vocab

ROWS = INTENT_ROWS


@pytest.fixture
def data(tmp_path):
    return two_task_files(tmp_path)


def _two_tasks(data, seed=0, batch=4, dropout=0.1):
    vocab, a, b = data
    paddle.seed(seed)
    backbone = palm.backbone.BERT.from_config(tiny_config("bert", hidden_dropout_prob=dropout))
    ra = palm.reader.ClassifyReader(vocab, 16, seed=1).load_data(a, batch_size=batch)
    rb = palm.reader.ClassifyReader(vocab, 16, seed=2).load_data(b, batch_size=batch)
    ta = palm.Trainer("a", reader=ra, head=palm.head.Classify(3, 32, dropout),
                      dev_reader=palm.reader.ClassifyReader(vocab, 16, phase="dev").load_data(a, 4))
    tb = palm.Trainer("b", mix_ratio=0.5, reader=rb, head=palm.head.Classify(2, 32, dropout))
    return palm.MultiHeadTrainer([ta, tb], backbone=backbone, seed=seed)


def test_palm_script_shape_runs_and_predicts(data, tmp_path, capsys):
    vocab, a, b = data
    r1 = palm.reader.ClassifyReader(vocab, 16, seed=1)
    r2 = palm.reader.ClassifyReader(vocab, 16, seed=1)
    r1.load_data(a, batch_size=4, num_epochs=None)
    r2.load_data(b, batch_size=4, num_epochs=None)
    ernie = palm.backbone.ERNIE.from_config(tiny_config("ernie"))
    r1.register_with(ernie)
    r2.register_with(ernie)
    h1, h2 = palm.head.Classify(3, 32, 0.1), palm.head.Classify(2, 32, 0.1)
    t1, t2 = palm.Trainer("intent", mix_ratio=1.0), palm.Trainer("other", mix_ratio=1.0)
    trainer = palm.MultiHeadTrainer([t1, t2])
    t1.build_forward(ernie, h1)
    t2.build_forward(ernie, h2)
    loss_var = trainer.build_forward()
    n_steps = r1.num_examples * 1.5 * 10
    sched = palm.lr_sched.TriangularSchedualer(int(0.1 * n_steps), n_steps)
    adam = palm.optimizer.Adam(loss_var, 3e-3, sched)
    trainer.build_backward(optimizer=adam, weight_decay=0.01)
    trainer.fit_readers_with_mixratio([r1, r2], "intent", 10)
    assert trainer.overall_train_steps == 40  # 10 epochs x 2 steps / share 0.5
    trainer.set_saver(save_path=str(tmp_path / "out"), save_steps=20)
    summary = trainer.train(print_steps=10)
    out = capsys.readouterr().out
    assert "step 10/40 (epoch" in out and "loss:" in out and "steps/s" in out
    assert sum(summary["task_steps"].values()) == 40
    assert sorted(os.listdir(tmp_path / "out")) == ["ckpt.step20", "ckpt.step40", "metrics.jsonl"]
    # PALM predict flow with a separate predict backbone and head
    pr = palm.reader.ClassifyReader(vocab, 16, seed=1, phase="predict")
    pr.load_data(a, batch_size=3)
    pred_ernie = palm.backbone.ERNIE.from_config(tiny_config("ernie"), phase="predict")
    pr.register_with(pred_ernie)
    pred_head = palm.head.Classify(3, 32, phase="predict")
    t1.build_predict_forward(pred_ernie, pred_head)
    t1.load_ckpt(str(tmp_path / "out" / "ckpt.step40"))
    t1.fit_reader(pr, phase="predict")
    metrics = t1.predict(output_dir=str(tmp_path / "pred"))
    lines = [json.loads(l) for l in open(tmp_path / "pred" / "predictions.json")]
    assert len(lines) == len(ROWS) and set(lines[0]) >= {"index", "label", "logits", "probs"}
    assert metrics["accuracy"] == np.mean([l["label"] == int(r[0]) for l, r in zip(lines, ROWS)])
    # the trained weights reached the predict backbone
    np.testing.assert_array_equal(pred_ernie.pooler.dense.weight.numpy(), ernie.pooler.dense.weight.numpy())


def test_sampling_frequencies_match_mix_ratios():
    tasks = [TaskInfo("main", 100, 10, 10, 1.0, True), TaskInfo("aux1", 50, 10, 5, 0.5),
             TaskInfo("aux2", 400, 10, 40, 0.25)]
    sampler = Sampler(tasks, "mix_ratio", num_epochs=1, seed=7, max_steps=10000)
    draws = [sampler.next() for _ in range(10000)]
    freq = np.bincount(draws, minlength=3) / 10000
    np.testing.assert_allclose(freq, [1 / 1.75, 0.5 / 1.75, 0.25 / 1.75], atol=0.02)
    again = Sampler(tasks, "mix_ratio", num_epochs=1, seed=7, max_steps=10000)
    assert [again.next() for _ in range(10000)] == draws
    # PALM step count: main runs num_epochs epochs in expectation
    assert Sampler(tasks, "mix_ratio", num_epochs=3).total_steps == round(30 / (1 / 1.75))


def test_temperature_and_annealed_sampling():
    np.testing.assert_allclose(temperature_probs([100, 400], 1.0), [0.2, 0.8])
    np.testing.assert_allclose(temperature_probs([100, 400], 2.0), [1 / 3, 2 / 3])
    np.testing.assert_allclose(annealed_probs([100, 400], 0.0), [0.2, 0.8])
    end = annealed_probs([100, 400], 1.0)  # alpha = 0.2
    np.testing.assert_allclose(end, np.array([100, 400]) ** 0.2 / (100 ** 0.2 + 400 ** 0.2))
    with pytest.raises(ValueError, match="unknown sampling strategy 'uniformish'"):
        Sampler([TaskInfo("a", 1, 1, 1, 1.0, True)], "uniformish")


def test_plan_is_printed(data, capsys, caplog):
    trainer = _two_tasks(data)
    trainer.fit(num_epochs=1, print_steps=0)
    assert "total steps=3" in caplog.text
    assert "a  " in caplog.text and "(main)" in caplog.text


def _losses(save_path):
    rows = [json.loads(l) for l in open(os.path.join(save_path, "metrics.jsonl"))]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_resume_gives_identical_losses(data, tmp_path):
    full = _two_tasks(data, seed=3)
    full.fit(num_epochs=4, save_path=str(tmp_path / "full"), save_steps=5, print_steps=1,
             optimizer=palm.optimizer.AdamW(lr=1e-3))
    reference = _losses(str(tmp_path / "full"))
    first = _two_tasks(data, seed=3)
    first.fit(num_epochs=4, save_path=str(tmp_path / "part"), save_steps=5, print_steps=1,
              optimizer=palm.optimizer.AdamW(lr=1e-3), stop_after=5)
    assert os.path.isdir(tmp_path / "part" / "ckpt.step5")
    resumed = _two_tasks(data, seed=3)
    resumed.fit(num_epochs=4, save_path=str(tmp_path / "part"), save_steps=5, print_steps=1,
                optimizer=palm.optimizer.AdamW(lr=1e-3), resume="latest")
    got = _losses(str(tmp_path / "part"))
    assert len(reference) >= 10
    for step in range(6, 11):
        assert got[step] == pytest.approx(reference[step], abs=1e-6), step


def test_interrupted_save_keeps_last_good_checkpoint(data, tmp_path, monkeypatch):
    trainer = _two_tasks(data)
    trainer.fit(num_epochs=1, save_path=str(tmp_path / "out"), save_steps=2, print_steps=0, stop_after=2)
    good = tmp_path / "out" / "ckpt.step2"
    assert good.is_dir()
    import paddlepalm.multihead_trainer as mht

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(paddle, "save", broken)
    trainer.state.global_step = 2  # save the same step again: replaces only if the write completes
    from paddlepalm.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"ckpt\.step2: could not be saved \(OSError: disk full\)"):
        trainer.save_checkpoint()
    monkeypatch.undo()
    model = palm.load(str(good))
    assert model.tasks == ["a", "b"]
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".tmp")]
    assert mht  # module import used above


def test_layerwise_lr_decay_and_head_lr(data):
    trainer = _two_tasks(data)
    trainer.build_forward()
    opt = palm.optimizer.AdamW(lr=1e-3, layer_decay=0.5, head_lr=2e-3)
    trainer.build_backward(opt)
    trainer.fit_readers_with_mixratio({"a": trainer.trainers[0].reader, "b": trainer.trainers[1].reader}, "a", 1)
    trainer.loop.build_optimizer()
    f = opt.lr_factors
    assert f["backbone.embeddings.word_embeddings.weight"] == 0.125
    assert f["backbone.encoder.layers.0.linear1.weight"] == 0.25
    assert f["backbone.encoder.layers.1.self_attn.q_proj.bias"] == 0.5
    assert f["backbone.pooler.dense.weight"] == 1.0
    assert f["heads.a.classifier.weight"] == 2.0 and f["heads.b.classifier.bias"] == 2.0
    params = dict(trainer.named_parameters())
    assert params["backbone.encoder.layers.0.linear1.weight"].optimize_attr["learning_rate"] == 0.25
    from paddlepalm.optimizer import decay_names

    decayed = decay_names(params)
    assert "backbone.encoder.layers.0.linear1.weight" in decayed
    assert "backbone.encoder.layers.0.norm1.weight" not in decayed
    assert "backbone.encoder.layers.0.linear1.bias" not in decayed


def test_schedules():
    tri = palm.lr_sched.TriangularScheduler(warmup_steps=10, num_train_steps=100)
    assert tri.multiplier(0) == pytest.approx(0.1) and tri.multiplier(9) == pytest.approx(1.0)
    assert tri.multiplier(50) == pytest.approx(0.5) and tri.multiplier(100) == 0.0
    cos = palm.lr_sched.WarmupCosineScheduler(warmup_steps=10, num_train_steps=110)
    assert cos.multiplier(10) == pytest.approx(1.0) and cos.multiplier(60) == pytest.approx(0.5)
    const = palm.lr_sched.ConstantWarmupScheduler(4)
    assert [const.multiplier(i) for i in (0, 3, 50)] == [0.25, 1.0, 1.0]
    assert palm.lr_sched.WarmupSchedualer(2).multiplier(0) == 0.5  # PALM name, no longer None
    ratio = palm.lr_sched.TriangularScheduler(warmup_ratio=0.1).resolve(200)
    assert ratio.warmup_steps == 20 and ratio.num_train_steps == 200


def test_gradient_accumulation_equals_big_batch(data):
    vocab, a, _ = data

    def run(batch, accumulate):
        paddle.seed(0)
        backbone = palm.backbone.BERT.from_config(tiny_config("bert"))
        reader = palm.reader.ClassifyReader(vocab, 16, seed=0).load_data(a, batch_size=batch, shuffle_train=False)
        t = palm.Trainer("a", reader=reader, head=palm.head.Classify(3, 32))
        mt = palm.MultiHeadTrainer([t], backbone=backbone)
        mt.fit(optimizer=palm.optimizer.AdamW(lr=1e-2, grad_clip=None), max_steps=accumulate,
               accumulate_steps=accumulate, print_steps=0)
        return backbone.encoder.layers[0].linear1.weight.numpy()

    np.testing.assert_allclose(run(4, 2), run(8, 1), atol=1e-6)


def test_evaluation_best_checkpoint_and_early_stopping(data, tmp_path):
    trainer = _two_tasks(data)
    summary = trainer.fit(num_epochs=30, save_path=str(tmp_path / "out"), eval_steps=2,
                          objective={"a.accuracy": 1.0}, patience=2, print_steps=0,
                          optimizer=palm.optimizer.AdamW(lr=0.0))
    assert summary["stopped_early"] and summary["steps"] == 6  # no progress at lr=0: 3 evals
    assert os.path.isfile(tmp_path / "out" / "best" / "paddlepalm_model.json")
    evals = [json.loads(l) for l in open(tmp_path / "out" / "metrics.jsonl") if '"eval"' in l]
    assert [e["step"] for e in evals] == [2, 4, 6] and "accuracy" in evals[0]["eval"]["a"]
    with pytest.raises(KeyError, match="objective 'a.f1'"):
        from paddlepalm.multihead_trainer import _objective_score

        _objective_score("a.f1", {"a": {"accuracy": 1.0}})


def test_saved_model_predicts_the_same_from_four_threads(data, tmp_path):
    trainer = _two_tasks(data)
    trainer.fit(num_epochs=2, print_steps=0)
    trainer.save(str(tmp_path / "model"))
    model = palm.load(str(tmp_path / "model"))
    other = palm.load(str(tmp_path / "model"))  # a second copy side by side
    texts = [t for _, t in ROWS] * 3
    expected = model.predict("a", texts)
    assert [p["label"] for p in expected] == [p["label"] for p in other.predict("a", texts)]
    direct = trainer.predict_task(trainer.trainers[0], trainer.trainers[0].dev_reader)
    assert direct["accuracy"] == np.mean([p["label"] == int(r[0]) for p, r in zip(expected, ROWS)])
    results, errors = [None] * 4, []

    def work(i):
        try:
            results[i] = model.predict("a", texts)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    for r in results:
        assert [p["label"] for p in r] == [p["label"] for p in expected]
        np.testing.assert_allclose([p["probs"] for p in r], [p["probs"] for p in expected], atol=1e-6)
    with pytest.raises(KeyError, match="unknown task 'c'"):
        model.predict("c", texts)


def test_export_matches_dygraph(data, tmp_path):
    from paddlepalm.export import Predictor, export_model

    trainer = _two_tasks(data)
    trainer.fit(num_epochs=1, print_steps=0)
    export_model(trainer, str(tmp_path / "export"))
    batch = next(iter(trainer.trainers[0].dev_reader.iterator(num_epochs=1)))
    expected = trainer.predict_one_batch("a", batch)
    got = Predictor(str(tmp_path / "export"), "a").run(batch)
    np.testing.assert_allclose(got["logits"], expected["logits"], atol=1e-5)
    np.testing.assert_allclose(got["probs"], expected["probs"], atol=1e-5)


def test_amp_on_cpu_warns_and_trains_fp32(data, caplog):
    trainer = _two_tasks(data)
    trainer.fit(num_epochs=1, print_steps=0, amp="bf16")
    assert "AMP (bf16) needs a GPU" in caplog.text and trainer.loop.amp is None


def test_tasks_can_share_one_head(data, tmp_path):
    vocab, a, _ = data
    backbone = palm.backbone.BERT.from_config(tiny_config("bert"))
    head = palm.head.Classify(3, 32)
    t1 = palm.Trainer("a", reader=palm.reader.ClassifyReader(vocab, 16, seed=1).load_data(a, 4), head=head)
    t2 = palm.Trainer("a2", reader=palm.reader.ClassifyReader(vocab, 16, seed=2).load_data(a, 4),
                      reuse_head_with=t1)
    mt = palm.MultiHeadTrainer([t1, t2], backbone=backbone)
    mt.fit(num_epochs=1, print_steps=0)
    assert t2.head is head
    names = [n for n, _ in mt.named_parameters() if n.startswith("heads.")]
    assert names == ["heads.a.classifier.weight", "heads.a.classifier.bias"]  # once, not per task
    mt.save(str(tmp_path / "m"))
    model = palm.load(str(tmp_path / "m"))
    assert model.heads["a"] is model.heads["a2"]
    assert [p["label"] for p in model.predict("a", ["play jazz"])] == [p["label"] for p in model.predict("a2", ["play jazz"])]


def test_palm_head_inference_api(data):
    trainer = _two_tasks(data)
    trainer.build_forward()
    fetch = trainer.build_predict_forward().merge_inference_readers(
        {"a": trainer.trainers[0].dev_reader})
    batch = next(iter(fetch("a")))
    out = trainer.predict_one_batch("a", batch)
    assert out["probs"].shape == (4, 3)


def test_export_sequence_label_reads_only_what_it_needs(tmp_path):
    from paddlepalm.export import Predictor, export_model

    vocab = write_vocab(str(tmp_path / "v"))
    path = tmp_path / "slot.tsv"
    path.write_text("text_a\tlabel\nplay\x02jazz\x02music\tO\x02B-genre\x02O\nbook\x02a\x02table\tO\x02O\x02B-obj\n",
                    encoding="utf-8")
    reader = palm.reader.SequenceLabelReader(vocab, 16).load_data(str(path), 2)
    t = palm.Trainer("slot", reader=reader, head=palm.head.SequenceLabel(reader.num_classes, 32),
                     dev_reader=reader.clone("dev").load_data(str(path), 2))
    trainer = palm.MultiHeadTrainer([t], backbone=palm.backbone.BERT.from_config(tiny_config("bert")))
    trainer.fit(num_epochs=1, print_steps=0)
    export_model(trainer, str(tmp_path / "export"))
    predictor = Predictor(str(tmp_path / "export"), "slot")
    assert predictor.spec["inputs"] == ["input_ids", "attention_mask", "token_type_ids", "word_starts"]
    batch = next(iter(t.dev_reader.iterator(num_epochs=1)))
    np.testing.assert_allclose(predictor.run(batch)["logits"], trainer.predict_one_batch("slot", batch)["logits"],
                               atol=1e-5)


def test_get_one_batch_and_train_one_step(data):
    trainer = _two_tasks(data)
    trainer.fit(num_epochs=1, print_steps=0)
    t = trainer.trainers[0]
    batch = t.get_one_batch()
    assert batch["input_ids"].shape[0] == 4
    outputs = t.train_one_step(batch)
    assert float(outputs["loss"]) > 0
    assert t.get_one_batch("dev")["input_ids"].shape[0] == 4
    with pytest.raises(ValueError, match="no predict reader"):
        t.get_one_batch("predict")
