"""Tasks over the same inputs in a YAML config (``tasks.<name>.input_of``): one ``joint_label``
reader feeds an intent task and a slot task -- one tokenization, one encoder pass per batch --
in every mode (train, evaluate, predict, export, check), equal to the same run written in Python."""
import json
import os
import textwrap

import pytest

from paddlepalm.config import build_run, load_config
from paddlepalm.errors import ConfigError
from tests.helpers import tiny_config, write_vocab
from tests.test_joint_label_reader import ROWS, _write_joint

SEED = 0
INTENTS = sorted({r[1] for r in ROWS})
TAGS = sorted({t for r in ROWS for t in r[2]})
# 12 utterances: batches of 4 give 3 steps per epoch
TRAIN_ROWS = [ROWS[i % 4] if i % 3 else ROWS[(i + 1) % 4] for i in range(12)]

# Line numbers below are read off this text (the broken cases edit it).
CONFIG = """\
backbone: {config: tiny.json}
tokenizer: {vocab: vocab.txt}
batch_size: 4
tasks:
  slot:
    reader: joint_label
    head: {type: sequence_label, use_crf: true, dropout_prob: 0.1}
    train: joint.tsv
    dev: joint_dev.tsv
    test: joint_dev.tsv
    label_map: tags.json
  intent:
    input_of: slot
    head: {type: classify, dropout_prob: 0.1}
    label_map: intents.json
optimizer: {type: adamw, lr: 1.0e-3, head_lr: 5.0e-3, weight_decay: 0.01}
schedule: {type: triangular, warmup_ratio: 0.1}
balancing: {type: uncertainty}
max_steps: 5
eval_steps: 3
objective: {slot.f1: 1.0, intent.accuracy: 1.0}
print_steps: 1
seed: 0
"""


@pytest.fixture
def d(tmp_path):
    """A folder with the files CONFIG names."""
    write_vocab(str(tmp_path))
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_config()))
    _write_joint(tmp_path / "joint.tsv", TRAIN_ROWS)
    _write_joint(tmp_path / "joint_dev.tsv", ROWS)
    (tmp_path / "intents.json").write_text(json.dumps(INTENTS))
    (tmp_path / "tags.json").write_text(json.dumps(TAGS))
    return tmp_path


def write(d, text: str, name: str = "config.yaml") -> str:
    path = d / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ----------------------------------------------------------------------------- resolving and building
def test_settings_take_the_source_tasks_reader_sizes_and_weight(d):
    config = load_config(write(d, CONFIG.replace("batch_size: 4\n", "batch_size: 4\nmax_len: 48\n")
                               .replace("    label_map: tags.json\n", "    label_map: tags.json\n"
                                                                      "    mix_ratio: 0.5\n")))
    slot, intent = config.settings["tasks"]["slot"], config.settings["tasks"]["intent"]
    assert intent["input_of"] == "slot" and intent["reader"] is None and intent["train"] is None
    assert (intent["batch_size"], intent["max_len"], intent["mix_ratio"]) == (4, 48, 0.5)
    assert intent["label_map"] == str(d / "intents.json") and slot["label_map"] == str(d / "tags.json")


def test_both_tasks_read_views_of_one_reader_in_one_input_group(d):
    from paddlepalm.engine.spec import input_groups
    from paddlepalm.reader import JointLabelReader, LabelView

    run = build_run(load_config(write(d, CONFIG)))
    slot, intent = run.trainers
    for kind in ("reader", "dev_reader"):
        a, b = getattr(slot, kind), getattr(intent, kind)
        assert isinstance(a, LabelView) and isinstance(b, LabelView)
        assert type(a.input_source) is JointLabelReader and a.input_source is b.input_source
    assert (slot.reader.field, intent.reader.field) == ("word_labels", "label")
    assert slot.reader.label_vocab() == TAGS and intent.reader.label_vocab() == INTENTS  # both label maps
    assert (slot.head.num_classes, intent.head.num_classes) == (len(TAGS), len(INTENTS))
    assert intent.mix_ratio == slot.mix_ratio == 1.0
    assert input_groups(run.engine.tasks) == [[0, 1]]  # one unit: one batch, one encoder pass


def test_training_runs_one_encoder_pass_per_step(d):
    from paddlepalm.config.run import training_arguments

    config = load_config(write(d, CONFIG.replace("    dev: joint_dev.tsv\n", "").replace("eval_steps: 3\n", "")
                               .replace("objective: {slot.f1: 1.0, intent.accuracy: 1.0}\n", "")))
    run = build_run(config)
    calls = []
    hook = run.backbone.register_forward_pre_hook(lambda layer, inputs: calls.append(1))
    try:
        summary = run.engine.fit(optimizer=run.optimizer, args=training_arguments(
            config.settings, str(d / "out"), run.objective))
    finally:
        hook.remove()
    assert run.engine.loop.units == [[0, 1]]
    assert summary["steps"] == 5 and summary["task_steps"] == {"slot": 5, "intent": 5}
    assert len(calls) == 5  # one encoder forward per step, for both heads


def python_route(d, out_dir):
    """CONFIG written by hand against the Python API (examples/multi-task/run.py's shared input)."""
    import paddle

    import paddlepalm as palm

    paddle.seed(SEED)
    backbone = palm.backbone.BERT.from_config(tiny_config())
    vocab = str(d / "vocab.txt")
    make = lambda phase, seed=None: palm.reader.JointLabelReader(  # noqa: E731
        vocab, 64, label_map=str(d / "intents.json"), tag_map=str(d / "tags.json"), phase=phase, seed=seed)
    train = make("train", SEED).load_data(str(d / "joint.tsv"), 4)
    dev = make("dev").load_data(str(d / "joint_dev.tsv"), 4)
    heads = {"slot": palm.head.SequenceLabel(len(TAGS), 32, 0.1, use_crf=True),
             "intent": palm.head.Classify(len(INTENTS), 32, 0.1)}
    trainers = [palm.Trainer(task, reader=train.for_head(head), head=head, dev_reader=dev.for_head(head))
                for task, head in heads.items()]
    engine = palm.MultiHeadTrainer(trainers, backbone=backbone, seed=SEED, balancer="uncertainty")
    optimizer = palm.optimizer.AdamW(lr=1e-3, head_lr=5e-3, weight_decay=0.01,
                                     lr_scheduler=palm.lr_sched.TriangularScheduler(warmup_ratio=0.1))
    engine.fit(optimizer, num_epochs=3, max_steps=5, eval_steps=3, print_steps=1, save_path=str(out_dir),
               objective={"slot.f1": 1.0, "intent.accuracy": 1.0})
    return engine


def test_yaml_run_equals_the_python_route(d):
    from paddlepalm.config import run_train

    results = run_train(load_config(write(d, CONFIG), ["output_dir=%s" % (d / "yaml")]))
    engine = python_route(d, d / "python")
    yaml_rows, python_rows = rows(d / "yaml" / "metrics.jsonl"), rows(d / "python" / "metrics.jsonl")
    losses = lambda rs: [(r["step"], r["loss"]) for r in rs if "loss" in r]  # noqa: E731
    assert [s for s, _ in losses(yaml_rows)] == [1, 2, 3, 4, 5]
    for (step, a), (_, b) in zip(losses(yaml_rows), losses(python_rows)):
        assert set(a) == set(b) == {"slot", "intent"}
        for task in a:
            assert a[task] == pytest.approx(b[task], abs=1e-6), (step, task)
    weights = lambda rs: [r["balance"]["weights"] for r in rs if "balance" in r]  # noqa: E731
    assert len(weights(yaml_rows)) == len(weights(python_rows)) == 5
    for a, b in zip(weights(yaml_rows), weights(python_rows)):  # approx takes flat dicts only (pytest 9.2)
        assert a == pytest.approx(b, abs=1e-6)
    evals = lambda rs: [r["eval"] for r in rs if "eval" in r]  # noqa: E731
    assert len(evals(yaml_rows)) == 2 and evals(yaml_rows) == evals(python_rows)
    assert results == engine.evaluate()


def test_evaluate_predict_and_export_through_the_cli(d, capsys):
    from paddlepalm import cli

    import paddlepalm as palm

    config = write(d, CONFIG)
    out = d / "out"
    assert cli.main(["train", config, "--set", "output_dir=%s" % out]) == 0
    results = json.loads((out / "results.json").read_text())
    capsys.readouterr()
    assert cli.main(["evaluate", config, "--ckpt", str(out), "--split", "test"]) == 0
    assert json.loads(capsys.readouterr().out) == results  # test file = dev file here

    # predict files are read like the source task's: words (and no labels)
    (d / "new.tsv").write_text("text_a\n" + "".join("\x02".join(w) + "\n" for w, _, _ in ROWS))
    for task in ("intent", "slot"):
        assert cli.main(["predict", config, "--ckpt", str(out), "--input", str(d / "new.tsv"),
                         "--output", str(d / ("%s.jsonl" % task)), "--task", task]) == 0
    intents = rows(d / "intent.jsonl")
    slots = rows(d / "slot.jsonl")
    assert len(intents) == len(slots) == len(ROWS)
    assert all(r["label_name"] in INTENTS for r in intents)
    assert [len(r["labels"]) for r in slots] == [len(w) for w, _, _ in ROWS] and \
        all(t in TAGS for r in slots for t in r["labels"])
    model = palm.load(str(out))  # the saved model rebuilds the shared reader with both label maps
    assert [p["label_name"] for p in model.predict("intent", [{"text_a": w} for w, _, _ in ROWS])] == \
        [r["label_name"] for r in intents]

    assert cli.main(["export", config, "--ckpt", str(out), "--out", str(d / "serving")]) == 0
    assert {"intent", "slot", "paddlepalm_export.json"} <= set(os.listdir(d / "serving"))


# ----------------------------------------------------------------------------- check
def test_check_reads_the_shared_file_once_with_both_label_maps(d, monkeypatch):
    from paddlepalm.reader import formats

    reads = []
    original = formats.read_records
    monkeypatch.setattr(formats, "read_records", lambda path, *a, **k: reads.append(path) or original(path, *a, **k))
    load_config(write(d, CONFIG))
    assert sorted(reads) == sorted([str(d / "joint.tsv"), str(d / "joint_dev.tsv"), str(d / "joint_dev.tsv")])


def problems_of(path):
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems, str(info.value)


def on_intent(line: str, text: str = CONFIG) -> str:
    """``text`` with ``line`` added to the intent task (as its line 16)."""
    return text.replace("    label_map: intents.json\n", "    label_map: intents.json\n" + line)


def another_task(lines: str, text: str = CONFIG) -> str:
    """``text`` with a third task (from line 16)."""
    return text.replace("optimizer:", lines + "optimizer:")


TRAIN_ONLY = CONFIG.replace("    dev: joint_dev.tsv\n    test: joint_dev.tsv\n", "").replace("eval_steps: 3\n", "") \
    .replace("objective: {slot.f1: 1.0, intent.accuracy: 1.0}\n", "")
BROKEN = [
    ("unknown task", CONFIG.replace("input_of: slot", "input_of: slott"), 13, "tasks.intent.input_of",
     "'slott' is not a declared task (did you mean 'slot'?)"),
    ("itself", CONFIG.replace("input_of: slot", "input_of: intent"), 13, "tasks.intent.input_of",
     "a task cannot read its own batches"),
    ("a chain", another_task("  again:\n    input_of: intent\n    head: classify\n"), 17, "tasks.again.input_of",
     "task 'intent' itself reads the batches of 'slot' (input_of does not chain)"),
    ("source reader feeds one head", CONFIG.replace("reader: joint_label", "reader: classify")
     .replace("    head: {type: sequence_label, use_crf: true, dropout_prob: 0.1}\n", "    head: classify\n")
     .replace("tags.json", "intents.json").replace("intent.accuracy", "intent.macro_f1").replace("slot.f1", "slot.accuracy"),
     13, "tasks.intent.input_of", "task 'slot' reads with 'classify', whose batches feed one head; input_of needs "
     "a reader whose batches carry several tasks' labels (joint_label)"),
    ("both read the sentence label", CONFIG.replace("    head: {type: sequence_label, use_crf: true, dropout_prob: 0.1}",
                                                    "    head: classify").replace("    label_map: tags.json\n", "")
     .replace("slot.f1", "slot.accuracy"),
     13, "tasks.intent.head.type", "reads 'label' of the shared batches, as task 'slot' does: each label field "
     "feeds one task"),
    ("a train file on the reading task", CONFIG.replace("    input_of: slot\n", "    input_of: slot\n    train: joint.tsv\n"),
     14, "tasks.intent.train", "comes from task 'slot' (input_of), not here: this task reads that task's batches"),
    ("a dev file on the reading task", CONFIG.replace("    input_of: slot\n", "    input_of: slot\n    dev: nowhere.tsv\n"),
     14, "tasks.intent.dev", "comes from task 'slot' (input_of), not here"),
    ("a reader on the reading task", CONFIG.replace("    input_of: slot\n", "    input_of: slot\n    reader: classify\n"),
     14, "tasks.intent.reader", "comes from task 'slot' (input_of), not here"),
    ("mix_ratio on the reading task", on_intent("    mix_ratio: 0.5\n"), 16, "tasks.intent.mix_ratio",
     "comes from task 'slot' (input_of), not here: the two tasks run together, one batch and one encoder pass"),
    ("batch_size on the reading task", on_intent("    batch_size: 8\n"), 16, "tasks.intent.batch_size",
     "comes from task 'slot' (input_of), not here"),
    ("no head on the reading task", CONFIG.replace("    head: {type: classify, dropout_prob: 0.1}\n", ""), 12,
     "tasks.intent", "missing key 'head': a task with input_of needs the head that reads its part of the batches"),
    ("a head reading neither field", CONFIG.replace("head: {type: classify, dropout_prob: 0.1}", "head: mask_lm"), 14,
     "tasks.intent.head", "MaskLM reads the label field(s) 'mlm_labels'; the batches of a joint_label reader carry "
     "'label' and 'word_labels'"),
    ("reading task's label map missing", CONFIG.replace("intents.json", "nowhere.json"), 15,
     "tasks.intent.label_map", "file not found: "),
    ("a tag_map reader option", CONFIG.replace("reader: joint_label", "reader: {type: joint_label, tag_map: tags.json}"),
     6, "tasks.slot.reader.tag_map", "is set by tasks.<name>.label_map of the task whose head reads the tags"),
    ("sentence label not in the reading task's map", TRAIN_ONLY.replace("label_map: intents.json",
                                                                    "label_map: [PlayMusic, GetWeather]"),
     8, "tasks.slot.train", "joint.tsv, line 4, field 'label': unknown label 'BookRestaurant' (known: PlayMusic, "
     "GetWeather); task 'intent' reads this field (input_of: slot)"),
    ("tag not in the source task's map", TRAIN_ONLY.replace("label_map: tags.json", "label_map: [O, B-genre]"),
     8, "tasks.slot.train", "joint.tsv, line 2, field 'tags': tag 'B-city' is not in the label map"),
    ("objective of the reading task", CONFIG.replace("    dev: joint_dev.tsv\n", "").replace("eval_steps: 3\n", ""),
     19, "objective.slot.f1", "task 'slot' has no 'dev' file to evaluate"),
]


@pytest.mark.parametrize("name, text, line, key, message", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_shared_input_reports_file_line_key_and_message(d, name, text, line, key, message):
    path = write(d, text)
    problems, full = problems_of(path)
    if name == "objective of the reading task":  # both objective keys: intent has no dev either
        assert [p.key for p in problems] == ["objective.slot.f1", "objective.intent.accuracy"], full
        assert problems[1].message == "task 'intent' has no 'dev' file to evaluate (it reads the files of task " \
                                      "'slot', input_of)"
    else:
        assert len(problems) == 1, full
    p = problems[0]
    assert p.key == key, full
    if line is not None:
        assert p.origin == "%s:%d" % (path, line), full
    assert message in p.message, full


def test_a_cycle_is_named_on_each_task(d):
    text = CONFIG.replace("    reader: joint_label\n", "    input_of: intent\n").replace(
        "    train: joint.tsv\n    dev: joint_dev.tsv\n    test: joint_dev.tsv\n", "").replace(
        "objective: {slot.f1: 1.0, intent.accuracy: 1.0}\n", "")
    problems, full = problems_of(write(d, text))
    assert [(p.key, p.message) for p in problems] == [
        ("tasks.slot.input_of", "input_of goes round in a cycle: slot -> intent -> slot: one of these tasks must "
                                "have the reader and files"),
        ("tasks.intent.input_of", "input_of goes round in a cycle: intent -> slot -> intent: one of these tasks must "
                                  "have the reader and files")], full


def test_a_reading_task_needs_no_reader_or_train_but_others_do(d):
    _, full = problems_of(write(d, another_task("  lone:\n    head: classify\n")))
    assert "config.yaml:16: tasks.lone: missing required key 'reader'" in full
    assert "config.yaml:16: tasks.lone: missing required key 'train'" in full


def test_the_yaml_in_docs_balancing_md_validates(d):
    import re

    from tests.conftest import ROOT

    with open(os.path.join(ROOT, "docs", "balancing.md"), encoding="utf-8") as f:
        section = f.read().split("## Tasks over the same inputs", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    os.makedirs(d / "data")
    for split in ("train", "dev", "test"):
        _write_joint(d / "data" / ("joint_%s.tsv" % split), TRAIN_ROWS)
    (d / "data" / "intent_labels.json").write_text(json.dumps(INTENTS))
    (d / "data" / "slot_label_map.json").write_text(json.dumps(TAGS))
    config = load_config(write(d, "backbone: {config: tiny.json}\ntokenizer: {vocab: vocab.txt}\n" + block))
    assert config.settings["tasks"]["intent"]["input_of"] == "slot"
    assert config.settings["balancing"] == {"type": "uncertainty"}
