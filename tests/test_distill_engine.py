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
    assert os.path.isfile(tmp_path / "out" / "results.json")
