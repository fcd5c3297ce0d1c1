"""Distillation runs on the engine: a student trained from a saved teacher by ``Engine.fit``, with
checkpoints, exact resume, a frozen teacher, an ordinary saved model, and the YAML route."""
import json
import os

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.distill import attach, build_distillation
from tests.helpers import tiny_config, two_task_files


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny 2-layer, 2-task teacher trained a little and saved."""
    d = tmp_path_factory.mktemp("teacher")
    data = two_task_files(d)
    engine = _engine(data, layers=2)
    engine.fit(optimizer=palm.optimizer.AdamW(lr=3e-3), num_epochs=6, print_steps=0)
    engine.save(str(d / "model"))
    return data, str(d / "model")


def _engine(data, layers=2, seed=0):
    vocab, a, b = data
    paddle.seed(seed)
    backbone = palm.backbone.BERT.from_config(tiny_config("bert", num_hidden_layers=layers))
    ta = palm.Trainer("a", reader=palm.reader.ClassifyReader(vocab, 16, seed=1).load_data(a, batch_size=4),
                      head=palm.head.Classify(3, 32, 0.0),
                      dev_reader=palm.reader.ClassifyReader(vocab, 16, phase="dev").load_data(a, 4))
    tb = palm.Trainer("b", mix_ratio=0.5, reader=palm.reader.ClassifyReader(vocab, 16, seed=2).load_data(b, 4),
                      head=palm.head.Classify(2, 32, 0.0))
    return palm.MultiHeadTrainer([ta, tb], backbone=backbone, seed=seed)


def _student_run(data, model_dir, **fit):
    engine = _engine(data)
    section = {"teacher": model_dir, "student": {"layers": [1]}, "temperature": 2.0,
               "matches": [{"layer_T": 1, "layer_S": 0, "feature": "hidden", "loss": "mse", "weight": 1.0}]}
    dist = build_distillation(section, ["a", "b"], readers={t.name: t.reader for t in engine.tasks})
    callback = attach(engine, dist)
    summary = engine.fit(optimizer=palm.optimizer.AdamW(lr=3e-3), num_epochs=4, callbacks=[callback], **fit)
    return engine, dist, summary


def test_a_student_distils_from_a_saved_teacher_and_saves_as_an_ordinary_model(teacher, tmp_path):
    data, model_dir = teacher
    before = {n: p.numpy().copy() for n, p in palm.load(model_dir).backbone.named_parameters()}
    engine, dist, summary = _student_run(data, model_dir, print_steps=1, save_path=str(tmp_path / "out"))
    assert engine.backbone is dist.student and engine.backbone.config.num_hidden_layers == 1
    after = {n: p.numpy() for n, p in dist.teacher.backbone("a").named_parameters()}
    assert all(np.array_equal(before[n], after[n]) for n in before)  # the teacher never changes
    rows = [json.loads(l) for l in open(tmp_path / "out" / "metrics.jsonl")]
    parts = [r["distill"] for r in rows if "distill" in r]
    assert parts and {"soft", "hard", "total", "temperature"} <= set(parts[-1])
    engine.save(str(tmp_path / "student"))
    student = palm.load(str(tmp_path / "student"))
    assert student.backbone.config.num_hidden_layers == 1
    assert len(student.predict("a", ["play jazz music"])) == 1
    assert summary["steps"] == engine.state.max_steps


def test_distillation_resumes_exactly(teacher, tmp_path):
    data, model_dir = teacher
    kw = dict(print_steps=1, save_steps=3)
    _student_run(data, model_dir, save_path=str(tmp_path / "whole"), **kw)
    _student_run(data, model_dir, save_path=str(tmp_path / "part"), stop_after=4, **kw)
    _student_run(data, model_dir, save_path=str(tmp_path / "part"), resume="latest", **kw)
    losses = lambda p: [(r["step"], r["loss"]) for r in map(json.loads, open(p)) if "loss" in r]
    whole, part = losses(tmp_path / "whole" / "metrics.jsonl"), losses(tmp_path / "part" / "metrics.jsonl")
    assert part == whole and len(whole) >= 6


def test_yaml_distill_section_trains_the_student(teacher, tmp_path):
    import yaml

    from paddlepalm.cli import main

    (vocab, a, b), model_dir = teacher
    (tmp_path / "model.json").write_text(json.dumps(tiny_config("bert", num_hidden_layers=2)))
    config = {"backbone": {"type": "bert", "config": "model.json"}, "tokenizer": {"vocab": vocab},
              "max_len": 16, "batch_size": 4,
              "tasks": {"a": {"reader": "classify", "train": a, "dev": a}, "b": {"reader": "classify", "train": b}},
              "epochs": 2, "print_steps": 1, "output_dir": str(tmp_path / "out"),
              "distill": {"teacher": model_dir, "student": {"layers": [0]}, "temperature": 2.0}}
    path = tmp_path / "distill.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["distill", str(path)]) == 0
    student = palm.load(str(tmp_path / "out"))
    assert student.backbone.config.num_hidden_layers == 1
    assert any("distill" in json.loads(l) for l in open(tmp_path / "out" / "metrics.jsonl"))
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    # the teacher scored on the same dev file, and how much of it the student kept
    assert set(results) == {"a", "teacher", "retention"} and set(results["teacher"]) == {"a"}
    assert results["teacher"]["a"]["accuracy"] == pytest.approx(palm.load(model_dir).evaluate("a", a)["accuracy"])
    kept = results["retention"]["a"]
    assert kept["metric"] == "accuracy" and kept["student"] == results["a"]["accuracy"]
    assert kept["kept_percent"] == pytest.approx(100 * kept["student"] / kept["teacher"])


# ----------------------------------------------------------------------------- shared-input views
JOINT_ROWS = [
    (["play", "jazz", "by", "my", "playlist"], "PlayMusic", ["O", "B-genre", "O", "O", "B-playlist"]),
    (["what", "will", "the", "weather", "be", "in", "paris", "tomorrow"], "GetWeather",
     ["O", "O", "O", "O", "O", "O", "B-city", "B-date"]),
    (["book", "a", "table", "for", "two"], "BookRestaurant", ["O", "O", "O", "O", "B-party"]),
    (["rate", "this", "novel", "5", "stars"], "RateBook", ["O", "O", "B-type", "B-value", "I-value"]),
    (["play", "rock", "songs"], "PlayMusic", ["O", "B-genre", "O"]),
    (["is", "it", "sunny", "in", "paris"], "GetWeather", ["O", "O", "O", "O", "B-city"]),
]


def _joint_engine(vocab, path, layers=2, seed=0, balancer="uncertainty"):
    """Slot (CRF) and intent over ONE JointLabelReader, a view per task (the flagship's shared input)."""
    paddle.seed(seed)
    backbone = palm.backbone.BERT.from_config(tiny_config("bert", num_hidden_layers=layers))
    reader = palm.reader.JointLabelReader(vocab, 16, seed=1).load_data(path, batch_size=4)
    slot, intent = reader.view("word_labels"), reader.view("label")
    trainers = [palm.Trainer("slot", reader=slot, head=palm.head.SequenceLabel(slot.num_classes, 32, 0.0,
                                                                                 use_crf=True)),
                palm.Trainer("intent", reader=intent, head=palm.head.Classify(intent.num_classes, 32, 0.0))]
    return palm.MultiHeadTrainer(trainers, backbone=backbone, seed=seed, balancer=balancer)


@pytest.fixture(scope="module")
def joint_teacher(tmp_path_factory):
    """A tiny 2-layer shared-input teacher (slot CRF + intent over one reader), trained a little and saved."""
    from tests.helpers import write_vocab

    d = tmp_path_factory.mktemp("joint_teacher")
    vocab = write_vocab(str(d / "vocab"))
    path = d / "joint.tsv"
    path.write_text("text_a\tlabel\ttags\n" + "".join("%s\t%s\t%s\n" % ("\x02".join(w), l, "\x02".join(t))
                                                      for w, l, t in JOINT_ROWS), encoding="utf-8")
    engine = _joint_engine(vocab, str(path), balancer=None)
    engine.fit(optimizer=palm.optimizer.AdamW(lr=3e-3), num_epochs=6, print_steps=0)
    engine.save(str(d / "model"))
    return vocab, str(path), str(d / "model")


@pytest.mark.parametrize("cache", [False, True])
def test_shared_input_views_distil_with_one_teacher_pass_per_batch(joint_teacher, tmp_path, cache):
    """Both tasks of a shared-input step see one batch: the teacher encodes it once (like the
    student), a cache is filled by one pass for both views, both tasks' loss parts are logged, and
    the uncertainty balancer weighs the distilled losses."""
    vocab, path, model_dir = joint_teacher
    engine = _joint_engine(vocab, path)
    dist = build_distillation({"teacher": model_dir, "student": {"layers": [1]}, "temperature": 2.0,
                               "soft_weight": 0.9, "hard_weight": 0.1, "cache": cache},
                              ["slot", "intent"], readers={t.name: t.reader for t in engine.tasks})
    before = {n: p.numpy().copy() for n, p in dist.teacher.backbone("slot").named_parameters()}
    calls = []
    dist.teacher.backbone("slot").register_forward_pre_hook(lambda layer, inputs: calls.append(1))
    callback = attach(engine, dist)
    summary = engine.fit(optimizer=palm.optimizer.AdamW(lr=3e-3), num_epochs=2, print_steps=1,
                         save_path=str(tmp_path / "out"), callbacks=[callback])
    assert summary["task_steps"] == {"slot": summary["steps"], "intent": summary["steps"]} and summary["steps"] == 4
    # one teacher encoder pass per step for both tasks; cached: one pass over the 6 utterances, for both
    assert len(calls) == (1 if cache else summary["steps"])
    assert dist.distiller.cache.size("slot") == dist.distiller.cache.size("intent") == (6 if cache else 0)
    rows = [json.loads(l) for l in open(tmp_path / "out" / "metrics.jsonl")]
    parts = [r["distill"] for r in rows if "distill" in r]
    assert len(parts) == 4 and {"slot.soft", "slot.hard", "slot.total", "intent.soft", "intent.hard",
                                "intent.total", "temperature", "soft_weight", "hard_weight"} == set(parts[-1])
    assert parts[-1]["soft_weight"] == pytest.approx(0.9) and parts[-1]["hard_weight"] == pytest.approx(0.1)
    for task in ("slot", "intent"):
        assert parts[-1][task + ".total"] == pytest.approx(0.9 * parts[-1][task + ".soft"]
                                                           + 0.1 * parts[-1][task + ".hard"], rel=1e-5)
    assert any("balance" in r and set(r["balance"]["weights"]) == {"slot", "intent"} for r in rows)
    after = {n: p.numpy() for n, p in dist.teacher.backbone("slot").named_parameters()}
    assert all(np.array_equal(before[n], after[n]) for n in before)
    engine.save(str(tmp_path / "student"))
    student = palm.load(str(tmp_path / "student"))
    assert student.backbone.config.num_hidden_layers == 1
    assert len(student.predict("slot", ["play jazz by my playlist"])[0]["labels"]) == 5
    assert student.predict("intent", ["play rock songs"])[0]["label_name"] in {r[1] for r in JOINT_ROWS}


def test_yaml_distill_with_a_shared_input_task(joint_teacher, tmp_path):
    """`input_of` and `distill:` together from YAML: both views distilled from the joint teacher,
    the teacher scored on the same dev batches."""
    import yaml

    from paddlepalm.cli import main

    vocab, path, model_dir = joint_teacher
    (tmp_path / "model.json").write_text(json.dumps(tiny_config("bert", num_hidden_layers=2)))
    config = {"backbone": {"type": "bert", "config": "model.json"}, "tokenizer": {"vocab": vocab},
              "max_len": 16, "batch_size": 4,
              "tasks": {"slot": {"reader": {"type": "joint_label"}, "head": {"type": "sequence_label", "use_crf": True},
                                 "train": path, "dev": path},
                        "intent": {"input_of": "slot", "head": {"type": "classify"}}},
              "main_task": "slot", "balancing": {"type": "uncertainty"}, "epochs": 2, "print_steps": 1,
              "output_dir": str(tmp_path / "out"),
              "distill": {"teacher": model_dir, "student": {"layers": [1]}, "temperature": 2.0}}
    cfg = tmp_path / "distill.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["distill", str(cfg)]) == 0
    rows = [json.loads(l) for l in open(tmp_path / "out" / "metrics.jsonl")]
    parts = [r["distill"] for r in rows if "distill" in r]
    assert parts and {"slot.soft", "intent.soft"} <= set(parts[-1])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["teacher"]) == {"slot", "intent"} and set(results["retention"]) == {"slot", "intent"}
    teacher = palm.load(model_dir)
    assert results["teacher"]["intent"]["accuracy"] == pytest.approx(teacher.evaluate("intent", path)["accuracy"])
    assert results["teacher"]["slot"]["f1"] == pytest.approx(teacher.evaluate("slot", path)["f1"])
    student = palm.load(str(tmp_path / "out"))
    assert student.backbone.config.num_hidden_layers == 1
    assert len(student.predict("slot", ["play jazz by my playlist"])[0]["labels"]) == 5
