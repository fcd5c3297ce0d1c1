"""The engine: callbacks and their state on resume, control, strategy, verbs, defaults, layout."""
import ast
import json
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.engine import Callback, TrainingArguments
from tests.conftest import ROOT
from tests.helpers import INTENT_ROWS, tiny_config, two_task_files

ROWS = INTENT_ROWS


@pytest.fixture
def data(tmp_path):
    return two_task_files(tmp_path)


def _engine(data, seed=0, dropout=0.1, dev=True):
    vocab, a, b = data
    paddle.seed(seed)
    backbone = palm.backbone.BERT.from_config(tiny_config("bert", hidden_dropout_prob=dropout))
    ta = palm.Trainer("a", reader=palm.reader.ClassifyReader(vocab, 16, seed=1).load_data(a, batch_size=4),
                      head=palm.head.Classify(3, 32, dropout),
                      dev_reader=palm.reader.ClassifyReader(vocab, 16, phase="dev").load_data(a, 4) if dev else None)
    tb = palm.Trainer("b", mix_ratio=0.5, reader=palm.reader.ClassifyReader(vocab, 16, seed=2).load_data(b, 4),
                      head=palm.head.Classify(2, 32, dropout))
    return palm.MultiHeadTrainer([ta, tb], backbone=backbone, seed=seed)


class LossSum(Callback):
    """A stateful user callback: running sum of the step losses and a count per task."""

    def __init__(self):
        self.total, self.counts = 0.0, {}

    def on_step_end(self, loop, state, control, step):
        self.total += float(step.loss)
        self.counts[step.task] = self.counts.get(step.task, 0) + 1

    def state_dict(self):
        return {"total": self.total, "counts": self.counts}

    def load_state_dict(self, state):
        self.total, self.counts = state["total"], dict(state["counts"])


def _rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_resume_is_bit_exact_with_a_stateful_user_callback(data, tmp_path):
    kwargs = dict(optimizer=palm.optimizer.AdamW(lr=1e-3), num_epochs=6, print_steps=1, eval_steps=4,
                  save_steps=3, progress=False)
    whole = LossSum()
    _engine(data).fit(save_path=str(tmp_path / "whole"), callbacks=[whole], **kwargs)
    part = LossSum()
    _engine(data).fit(save_path=str(tmp_path / "part"), callbacks=[part], stop_after=7, **kwargs)
    assert part.counts and sum(part.counts.values()) == 7
    resumed = LossSum()  # a fresh callback: its state comes from ckpt.step6
    engine = _engine(data, seed=123)  # other initial weights: the checkpoint must replace them
    summary = engine.fit(save_path=str(tmp_path / "part"), callbacks=[resumed], resume="latest",
                         **dict(kwargs, optimizer=palm.optimizer.AdamW(lr=1e-3)))
    assert resumed.total == whole.total and resumed.counts == whole.counts  # bit-exact
    losses = lambda p: [(r["step"], r["loss"]) for r in _rows(p) if "loss" in r]
    assert losses(tmp_path / "part" / "metrics.jsonl") == losses(tmp_path / "whole" / "metrics.jsonl")
    steps = [r["step"] for r in _rows(tmp_path / "part" / "metrics.jsonl") if "loss" in r]
    assert steps == sorted(set(steps))  # step 7, logged before the interruption, appears once
    assert summary["steps"] == engine.state.max_steps


def test_a_callback_can_stop_training_and_sees_gradients(data):
    seen = []

    class StopAt(Callback):
        def on_before_optimizer_step(self, loop, state, control):
            seen.append(sum(float((p.grad * p.grad).sum()) for p in loop.network.backbone.parameters()
                            if p.grad is not None))

        def on_step_end(self, loop, state, control, step):
            control.should_stop = state.global_step == 3

    engine = _engine(data)
    summary = engine.fit(num_epochs=10, print_steps=0, callbacks=[StopAt])
    assert summary["steps"] == 3 and summary["stopped_early"] and len(seen) == 3 and min(seen) > 0


def test_fit_rejects_unknown_arguments_and_defaults_are_one_source(data):
    from paddlepalm.config.schema import SCHEMA

    with pytest.raises(TypeError, match="unknown training argument.*num_epoch"):
        _engine(data).fit(num_epoch=2)
    defaults = TrainingArguments()
    schema = {k.name: k.default for k in SCHEMA.keys}
    assert schema["epochs"] == defaults.num_epochs
    for name in ("print_steps", "keep_last", "accumulate_steps", "eval_steps", "save_steps", "patience"):
        assert schema[name] == getattr(defaults, name), name


def test_predict_returns_predictions_and_evaluate_returns_metrics(data, tmp_path):
    engine = _engine(data)
    engine.fit(num_epochs=2, print_steps=0, save_path=str(tmp_path / "out"))
    metrics = engine.evaluate()
    assert set(metrics) == {"a"} and set(metrics["a"]) >= {"accuracy", "macro_f1"}
    preds = engine.predict("a", ["play jazz music", "book a table"])
    assert len(preds) == 2 and {"label", "probs"} <= set(preds[0])
    model = palm.load(str(tmp_path / "out"))  # a training output folder: its best/
    assert model.path.endswith("best")
    assert [p["label"] for p in model.predict("a", ["play jazz music", "book a table"])] == \
        [p["label"] for p in preds]
    got = model.evaluate("a", data[1], batch_size=4)
    assert got["accuracy"] == pytest.approx(metrics["a"]["accuracy"])


def test_set_saver_on_a_task_configures_the_multi_task_trainer(data, tmp_path):
    engine = _engine(data, dev=False)
    engine.trainers[0].set_saver(str(tmp_path / "out"), save_steps=2)  # PALM habit: on the task
    assert engine.save_path == str(tmp_path / "out") and engine.trainers[0]._solo is None
    engine.fit_readers_with_mixratio({t.name: t.reader for t in engine.trainers}, "a", 1)
    engine.train(print_steps=0)
    assert (tmp_path / "out" / "ckpt.step2").is_dir()


def test_world_size_never_joins_a_process_group(monkeypatch):
    import paddle.distributed

    from paddlepalm import distributed

    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    monkeypatch.setenv("PADDLE_TRAINER_ID", "1")
    monkeypatch.setattr(paddle.distributed, "init_parallel_env", lambda: pytest.fail("joined a process group"))
    assert distributed.is_launched() and not distributed.is_initialized()
    assert distributed.world_size() == 1 and distributed.rank() == 1 and not distributed.is_main_process()
    from paddlepalm.engine.strategy import DataParallel, default_strategy

    assert isinstance(default_strategy(), DataParallel)


def test_resume_latest_without_checkpoint_logs_or_raises_when_strict(data, tmp_path, caplog):
    from paddlepalm.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        _engine(data).fit(num_epochs=1, print_steps=0, save_path=str(tmp_path / "o"), resume="latest",
                          resume_strict=True)
    _engine(data).fit(num_epochs=1, print_steps=0, save_path=str(tmp_path / "o2"), resume="latest")
    assert "no checkpoint under" in caplog.text


def test_saves_are_readable_by_others_and_stale_temp_folders_go(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = out / (".tmp-ckpt.step4-%s-abc123" % dead)  # a writer killed mid-save
    stale.mkdir()
    live = out / (".tmp-ckpt.step9-%d-xyz789" % os.getpid())  # a writer still running (us)
    live.mkdir()
    old = os.umask(0o022)
    try:
        _engine(data).fit(num_epochs=1, print_steps=0, save_path=str(out))
    finally:
        os.umask(old)
    assert not stale.exists() and live.exists()
    ckpt = next(p for p in out.iterdir() if p.name.startswith("ckpt.step"))
    assert oct(ckpt.stat().st_mode & 0o777) == oct(0o755)
    assert oct((ckpt / "paddlepalm_model.json").stat().st_mode & 0o777) == oct(0o644)


def test_damaged_model_files_raise_checkpoint_error_naming_the_file(data, tmp_path):
    from paddlepalm.errors import CheckpointError

    engine = _engine(data, dev=False)
    engine.fit(num_epochs=1, print_steps=0)
    engine.save(str(tmp_path / "m"))
    meta = tmp_path / "m" / "paddlepalm_model.json"
    meta.write_text(meta.read_text()[:40])
    with pytest.raises(CheckpointError, match=re.escape(str(meta)) + ".*truncated"):
        palm.load(str(tmp_path / "m"))
    engine.save(str(tmp_path / "m2"))
    heads = tmp_path / "m2" / "heads.pdparams"
    heads.write_bytes(heads.read_bytes()[:30])
    with pytest.raises(CheckpointError, match=re.escape(str(heads))):
        palm.load(str(tmp_path / "m2"))


def test_callbacks_doc_example_runs(tmp_path):
    text = open(os.path.join(ROOT, "docs", "callbacks.md"), encoding="utf-8").read()
    script = tmp_path / "doc.py"
    script.write_text("\n\n".join(re.findall(r"```python\n(.*?)```", text, re.S)))
    proc = subprocess.run([sys.executable, str(script)], cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "stopped at step" in proc.stdout and "(early: True)" in proc.stdout


# ----------------------------------------------------------------------------- package layout
def _imports(path, module):
    tree = ast.parse(open(path, encoding="utf-8").read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            yield base
            yield from ("%s.%s" % (base, a.name) for a in node.names)


def _package_graph():
    root = os.path.join(ROOT, "paddlepalm")
    modules = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                modules[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    # a submodule naming its own package (``from . import x``) is no cycle: Python has already
    # initialised the package before any of its submodules
    return {m: sorted({i for i in _imports(p, m) if i in modules and i != m and not m.startswith(i + ".")})
            for m, p in modules.items()}, modules


def test_no_import_cycle_in_the_package():
    graph, _ = _package_graph()
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: %s" % [" -> ".join(c) for c in cycles]


def test_engine_has_no_class_over_300_and_no_function_over_60_lines():
    _, modules = _package_graph()
    too_long = []
    for name, path in modules.items():
        if not name.startswith("paddlepalm.engine"):
            continue
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            limit = 300 if isinstance(node, ast.ClassDef) else 60 if isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
            if limit and node.end_lineno - node.lineno + 1 > limit:
                too_long.append("%s:%s (%d lines)" % (name, node.name, node.end_lineno - node.lineno + 1))
    assert not too_long, too_long


def test_compat_is_imported_by_no_engine_or_component_module():
    graph, _ = _package_graph()
    offenders = [m for m, deps in graph.items() if any(d.startswith("paddlepalm.compat") for d in deps)
                 and not m.startswith(("paddlepalm.compat", "paddlepalm.trainer", "paddlepalm.multihead_trainer",
                                       "paddlepalm.config"))]
    assert not offenders, offenders


# ----------------------------------------------------------------------------- callbacks from YAML
class CountSteps(Callback):
    """Used by the YAML test below (``tests.test_engine:CountSteps``)."""

    runs = []

    def __init__(self, label="x"):
        self.label, self.steps = label, 0
        CountSteps.runs.append(self)

    def on_step_end(self, loop, state, control, step):
        self.steps += 1


def _yaml_run(tmp_path, data, callbacks, **extra):
    import yaml

    vocab, a, _ = data
    (tmp_path / "model.json").write_text(json.dumps(tiny_config("bert")))
    config = {"backbone": {"type": "bert", "config": "model.json"}, "tokenizer": {"vocab": vocab},
              "max_len": 16, "batch_size": 4, "tasks": {"a": {"reader": "classify", "train": a}},
              "epochs": 1, "print_steps": 0, "output_dir": str(tmp_path / "out"), "callbacks": callbacks,
              **extra}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_yaml_callbacks_by_dotted_path_run_after_the_built_ins(data, tmp_path):
    from paddlepalm.cli import main

    CountSteps.runs.clear()
    path = _yaml_run(tmp_path, data, ["tests.test_engine:CountSteps",
                                      {"type": "tests.test_engine:CountSteps", "label": "y"}])
    assert main(["train", str(path)]) == 0
    assert [(cb.label, cb.steps) for cb in CountSteps.runs] == [("x", 2), ("y", 2)]


def test_yaml_callback_errors_name_the_file_line_and_key(data, tmp_path, capsys):
    from paddlepalm.cli import main

    path = _yaml_run(tmp_path, data, ["tests.test_engine:NoSuchCallback", {"type": "tests.test_engine:CountSteps",
                                                                           "colour": 3}])
    assert main(["train", str(path)]) != 0
    err = capsys.readouterr().err
    lines = path.read_text().splitlines()
    line0 = next(i for i, l in enumerate(lines, 1) if "NoSuchCallback" in l)
    assert "%s:%d: callbacks.0: cannot build the callback" % (path, line0) in err
    assert "callbacks.1: cannot build the callback" in err and "colour" in err
    assert "Traceback" not in err


def test_a_full_disk_during_a_save_names_the_folder_and_keeps_the_old_one(data, tmp_path, monkeypatch):
    import errno

    from paddlepalm.errors import CheckpointError

    engine = _engine(data, dev=False)
    engine.fit(num_epochs=1, print_steps=0)
    engine.save(str(tmp_path / "m"))
    before = sorted(os.listdir(tmp_path / "m"))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(paddle, "save", full)
    with pytest.raises(CheckpointError, match=re.escape(str(tmp_path / "m")) + ".*no space left on the device"):
        engine.save(str(tmp_path / "m"))
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "m")) == before and palm.load(str(tmp_path / "m")).tasks == ["a", "b"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_a_truncated_encoder_file_raises_checkpoint_error_naming_the_checkpoint(data, tmp_path):
    from paddlepalm.errors import CheckpointError

    engine = _engine(data, dev=False)
    engine.fit(num_epochs=1, print_steps=0)
    engine.save(str(tmp_path / "m"))
    weights = tmp_path / "m" / "backbone" / "encoder.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=re.escape(str(tmp_path / "m" / "backbone")) + ".*truncated"):
        palm.load(str(tmp_path / "m"))


# ----------------------------------------------------------------------------- step modes, shared inputs
def test_shared_input_tasks_take_one_encoder_pass_and_the_gradient_of_the_sum(data):
    vocab, a, _ = data
    paddle.seed(0)
    backbone = palm.backbone.BERT.from_config(tiny_config("bert"))  # dropout 0
    reader = palm.reader.ClassifyReader(vocab, 16, seed=1).load_data(a, batch_size=4)
    tasks = [palm.Trainer("x", reader=reader, head=palm.head.Classify(3, 32, 0.0)),
             palm.Trainer("y", reader=reader, head=palm.head.Classify(3, 32, 0.0), loss_weight=0.5)]
    engine = palm.MultiHeadTrainer(tasks, backbone=backbone)
    engine.fit_readers_with_mixratio([reader, reader], "x", 1)
    assert engine.loop.units == [[0, 1]] and "x+y" in engine.sampler.format_plan()
    batch = next(iter(reader.iterator(num_epochs=1)))
    calls = []
    original = backbone.forward
    backbone.forward = lambda *args, **kw: calls.append(1) or original(*args, **kw)
    engine.loop.train_unit(batch, [0, 1])
    assert len(calls) == 1  # one encoder pass for both heads
    joint = {n: p.grad.numpy().copy() for n, p in engine.named_parameters()}
    for p in engine.network.parameters():
        p.clear_gradient(False)
    for i in (0, 1):
        engine.loop.train_unit(batch, [i])  # separately: accumulates
    separate = {n: p.grad.numpy() for n, p in engine.named_parameters()}
    assert len(calls) == 3
    for name in joint:
        np.testing.assert_allclose(joint[name], separate[name], atol=1e-5, err_msg=name)


def test_joint_step_mode_runs_every_task_each_step(data, tmp_path):
    engine = _engine(data, dev=False)
    engine.step_mode = "joint"
    summary = engine.fit(num_epochs=2, print_steps=1, save_path=str(tmp_path / "out"))
    assert summary["steps"] == 4 and summary["task_steps"] == {"a": 4, "b": 4}  # a: 2 steps/epoch x 2
    rows = [r for r in _rows(tmp_path / "out" / "metrics.jsonl") if "loss" in r]
    assert all(set(r["loss"]) == {"a", "b"} for r in rows)
    engine3 = _engine(data, dev=False)
    engine3.step_mode, engine3.tasks_per_step = "joint", 1
    assert engine3.fit(num_epochs=2, print_steps=0)["task_steps"] == {"a": 4, "b": 0}


def test_yaml_joint_step_mode(data, tmp_path):
    from paddlepalm.cli import main

    CountSteps.runs.clear()
    b = data[2]
    path = _yaml_run(tmp_path, data, ["tests.test_engine:CountSteps"],
                     sampling={"step_mode": "joint"}, epochs=2, print_steps=1)
    import yaml

    config = yaml.safe_load(path.read_text())
    config["tasks"]["b"] = {"reader": "classify", "train": b, "mix_ratio": 0.2}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["train", str(path)]) == 0
    rows = [r for r in _rows(tmp_path / "out" / "metrics.jsonl") if "task_steps" in r]
    assert CountSteps.runs[-1].steps == 4 and rows[-1]["task_steps"] == {"a": 4, "b": 4}


# ----------------------------------------------------------------------------- balancers in the loop
@pytest.mark.parametrize("method", ["fixed", "uncertainty", "dwa", "gradnorm", "pcgrad", "cagrad"])
def test_every_balancer_trains_a_joint_run_logs_weights_and_resumes_exactly(data, tmp_path, method):
    from paddlepalm.registry import BALANCERS

    import paddlepalm.balancing  # noqa: F401

    def run(out, **kw):
        engine = _engine(data, dev=False)
        engine.step_mode, engine.balancer = "joint", BALANCERS.get(method)()
        return engine, engine.fit(optimizer=palm.optimizer.AdamW(lr=1e-3), num_epochs=4, print_steps=1,
                                  save_steps=3, diagnostics_steps=2, save_path=str(out), **kw)

    run(tmp_path / "whole")
    run(tmp_path / "part", stop_after=4)
    engine, _ = run(tmp_path / "part", resume="latest")
    rows = lambda p: [r for r in _rows(p / "metrics.jsonl")]
    whole, part = rows(tmp_path / "whole"), rows(tmp_path / "part")
    losses = lambda rs: [(r["step"], r["loss"]) for r in rs if "loss" in r]
    assert losses(part) == losses(whole) and len(losses(whole)) == 8
    balance = [r["balance"] for r in whole if "balance" in r]
    assert len(balance) == 8 and set(balance[-1]["weights"]) == {"a", "b"}
    diagnosed = [b for b in balance if "grad_cosine" in b]
    assert len(diagnosed) == 4 and -1.0 <= diagnosed[-1]["grad_cosine"]["a|b"] <= 1.0
    if method == "uncertainty":  # its log-variances are trained by the run's optimizer
        assert any(n.startswith("balancing.") for n, _ in engine.named_parameters())


def test_yaml_balancing_section(data, tmp_path, capsys):
    import yaml

    from paddlepalm.cli import main

    path = _yaml_run(tmp_path, data, [], sampling={"step_mode": "joint"}, print_steps=1, diagnostics_steps=1,
                     balancing={"type": "pcgrad", "seed": 3})
    config = yaml.safe_load(path.read_text())
    config["tasks"]["b"] = {"reader": "classify", "train": data[2]}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["train", str(path)]) == 0
    balance = [r["balance"] for r in _rows(tmp_path / "out" / "metrics.jsonl") if "balance" in r]
    assert balance and "a|b" in balance[-1]["grad_cosine"]
    config["balancing"] = {"type": "pcgrad", "colour": 1}
    config["output_dir"] = str(tmp_path / "out2")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["train", str(path)]) != 0
    assert "balancing: cannot build the balancer" in capsys.readouterr().err
