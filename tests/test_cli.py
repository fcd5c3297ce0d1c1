"""The command line: SNIPS intent + slot trained, evaluated, predicted and exported through
``paddlepalm.cli.main`` alone, with the same metrics as the plain Python API; --help everywhere."""
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

import paddlepalm as palm
from paddlepalm.cli import main
from tests.conftest import ROOT, data_root
from tests.helpers import SPECIALS, tiny_config

PER_INTENT_TRAIN, PER_INTENT_DEV, SEED = 30, 8, 7


@pytest.fixture(scope="module")
def snips(tmp_path_factory):
    """A SNIPS subset as PALM TSVs, a vocabulary of its words and a tiny random BERT config."""
    from paddlepalm.reader.snips import read_snips_file, slot_label_map, write_palm_tsv

    data = os.path.join(data_root(), "snips")
    if not os.path.isdir(data):
        pytest.skip("SNIPS data not found at %s (set PADDLEPALM_DATA)" % data)
    intents = sorted(re.fullmatch(r"train_(\w+)_full\.json", n).group(1) for n in os.listdir(data)
                     if re.fullmatch(r"train_(\w+)_full\.json", n))
    def first(name, count):
        return read_snips_file(os.path.join(data, name))[:count]

    train = [u for i in intents for u in first("train_%s_full.json" % i, PER_INTENT_TRAIN)]
    dev = [u for i in intents for u in first("validate_%s.json" % i, PER_INTENT_DEV)]
    d = tmp_path_factory.mktemp("snips")
    labels = write_palm_tsv(train, str(d / "intent_train.tsv"), str(d / "slot_train.tsv"))
    write_palm_tsv(dev, str(d / "intent_dev.tsv"), str(d / "slot_dev.tsv"), intent_labels=labels)
    (d / "slot_labels.json").write_text(json.dumps(slot_label_map(train + dev)))
    words = sorted({piece for u in train + dev for w in u.words for piece in re.findall(r"\w+|[^\w\s]", w.lower())})
    (d / "vocab.txt").write_text("\n".join(SPECIALS + words) + "\n", encoding="utf-8")
    model = tiny_config("bert", vocab_size=len(SPECIALS) + len(words), hidden_dropout_prob=0.1,
                        initializer_range=0.1)
    (d / "model_config.json").write_text(json.dumps(model))
    config = {
        "backbone": {"type": "bert", "config": "model_config.json"},
        "tokenizer": {"vocab": "vocab.txt"},
        "max_len": 32,
        "batch_size": 16,
        "tasks": {
            "intent": {"reader": "classify", "train": "intent_train.tsv", "dev": "intent_dev.tsv"},
            "slot": {"reader": "sequence_label", "train": "slot_train.tsv", "dev": "slot_dev.tsv",
                     "label_map": "slot_labels.json"},
        },
        "main_task": "intent",
        "optimizer": {"type": "adamw", "lr": 5e-3},
        "schedule": {"type": "triangular", "warmup_ratio": 0.1},
        "epochs": 4,
        "eval_steps": 40,
        "objective": {"intent.accuracy": 0.5, "slot.f1": 0.5},
        "print_steps": 0,
        "seed": SEED,
        "output_dir": str(d / "out"),
    }
    (d / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return d, len(labels), len(slot_label_map(train + dev))


def plain_api_metrics(d, num_intents, num_tags):
    """The same run written as a Python script against the plain API."""
    import paddle

    paddle.seed(SEED)
    with open(d / "model_config.json") as f:
        backbone = palm.backbone.BERT.from_config(json.load(f))
    vocab, labels = str(d / "vocab.txt"), str(d / "slot_labels.json")
    intent = palm.Trainer(
        "intent",
        reader=palm.reader.ClassifyReader(vocab, 32, seed=SEED).load_data(str(d / "intent_train.tsv"), 16),
        dev_reader=palm.reader.ClassifyReader(vocab, 32, seed=SEED, phase="dev").load_data(
            str(d / "intent_dev.tsv"), 16),
        head=palm.head.Classify(num_intents, 32))
    slot = palm.Trainer(
        "slot",
        reader=palm.reader.SequenceLabelReader(vocab, 32, labels, seed=SEED).load_data(str(d / "slot_train.tsv"), 16),
        dev_reader=palm.reader.SequenceLabelReader(vocab, 32, labels, seed=SEED, phase="dev").load_data(
            str(d / "slot_dev.tsv"), 16),
        head=palm.head.SequenceLabel(num_tags, 32))
    engine = palm.MultiHeadTrainer([intent, slot], backbone=backbone, seed=SEED)
    optimizer = palm.optimizer.AdamW(lr=5e-3, lr_scheduler=palm.lr_sched.TriangularScheduler(warmup_ratio=0.1))
    engine.fit(optimizer, num_epochs=4, main_task="intent", save_path=str(d / "script"), eval_steps=40,
               objective={"intent.accuracy": 0.5, "slot.f1": 0.5}, print_steps=0)
    if engine.history[-1]["step"] != engine.global_step:
        return engine.evaluate()
    return engine.history[-1]["eval"]


def test_snips_through_the_cli_matches_the_python_api(snips, capsys):
    d, num_intents, num_tags = snips
    config, out = str(d / "config.yaml"), d / "out"
    assert main(["train", config]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(os.listdir(out)) >= {"config.resolved.yaml", "metrics.jsonl", "results.json", "best"}
    final = max((p for p in os.listdir(out) if p.startswith("ckpt.step")), key=lambda p: int(p[9:]))
    assert results["intent"]["accuracy"] > 2 / 7 and set(results["slot"]) >= {"f1", "precision", "recall"}
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    assert resolved["tasks"]["intent"]["head"] == {"type": "classify", "num_classes": num_intents, "input_dim": 32}
    assert any("eval" in json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines())

    assert plain_api_metrics(d, num_intents, num_tags) == results  # exactly: same seed, same steps

    capsys.readouterr()
    assert main(["evaluate", config, "--ckpt", str(out / final), "--output", str(d / "eval.json")]) == 0
    assert json.loads((d / "eval.json").read_text()) == results
    assert json.loads(capsys.readouterr().out) == results

    assert main(["predict", config, "--ckpt", str(out / final), "--input", str(d / "intent_dev.tsv"),
                 "--output", str(d / "intent.jsonl"), "--task", "intent"]) == 0
    predicted = [json.loads(l)["label"] for l in (d / "intent.jsonl").read_text().splitlines()]
    gold = [int(l.split("\t")[0]) for l in (d / "intent_dev.tsv").read_text().splitlines()[1:]]
    assert len(predicted) == len(gold) == 7 * PER_INTENT_DEV
    assert sum(p == g for p, g in zip(predicted, gold)) / len(gold) == results["intent"]["accuracy"]
    assert main(["predict", config, "--ckpt", str(out), "--input", str(d / "slot_dev.tsv"),
                 "--output", str(d / "slot.jsonl"), "--task", "slot", "--set", "tasks.slot.batch_size=5"]) == 0
    assert len((d / "slot.jsonl").read_text().splitlines()) == 7 * PER_INTENT_DEV

    # a config naming some of a checkpoint's tasks exports just those
    intent_only = yaml.safe_load((d / "config.yaml").read_text())
    del intent_only["tasks"]["slot"], intent_only["objective"]
    (d / "intent_only.yaml").write_text(yaml.safe_dump(intent_only))
    assert main(["export", str(d / "intent_only.yaml"), "--ckpt", str(out / "best"), "--out", str(d / "serving")]) == 0
    assert {"intent", "paddlepalm_export.json"} <= set(os.listdir(d / "serving"))


def test_train_refuses_a_used_output_dir_and_reports_config_errors(snips, capsys):
    d, _, _ = snips
    if not (d / "out" / "best").is_dir():
        assert main(["train", str(d / "config.yaml"), "--set", "max_steps=2"]) == 0
    capsys.readouterr()
    assert main(["train", str(d / "config.yaml")]) == 1
    assert "output_dir: %s already holds a training run" % (d / "out") in capsys.readouterr().err
    assert main(["check", str(d / "config.yaml"), "--set", "optimizer.lr=fast", "tasks.intent.mix_ration=1"]) == 1
    err = capsys.readouterr().err
    assert "paddlepalm check: error: 2 problems in" in err
    assert "--set optimizer.lr=fast: optimizer.lr: expected number, got 'fast' (string)" in err
    assert "tasks.intent.mix_ration: unknown key 'mix_ration' (did you mean 'mix_ratio'?)" in err


def test_check_prints_the_resolved_config(snips, capsys):
    d, _, _ = snips
    assert main(["check", str(d / "config.yaml"), "--set", "optimizer.lr=3e-5", "tasks.slot.mix_ratio=0.5"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optimizer"]["lr"] == 3e-5 and printed["tasks"]["slot"]["mix_ratio"] == 0.5
    assert printed["tasks"]["slot"]["head"] == {"type": "sequence_label"}


SUBCOMMAND_OPTIONS = {
    "train": ["CONFIG", "--set", "--resume"],
    "evaluate": ["CONFIG", "--ckpt", "--split", "--set"],
    "predict": ["CONFIG", "--ckpt", "--input", "--output", "--task", "--set"],
    "export": ["CONFIG", "--ckpt", "--out", "--set"],
    "check": ["CONFIG", "--set"],
}


@pytest.mark.parametrize("name", sorted(SUBCOMMAND_OPTIONS))
def test_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: paddlepalm %s" % name)
    for option in SUBCOMMAND_OPTIONS[name]:
        assert option in text, option


def test_python_m_paddlepalm_help():
    done = subprocess.run([sys.executable, "-m", "paddlepalm", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    for name in SUBCOMMAND_OPTIONS:
        assert name in done.stdout
