"""Canine, NEZHA and ERNIE 3.0 train in a multi-task run (SNIPS intent + slots, tiny random
configs) from YAML and from Python, save, load (``palm.load``) and export; Canine labels Chinese
characters (XQuAD zh answers as spans) end to end."""
import json
import os
import re

import numpy as np
import pytest
import yaml

import paddlepalm as palm
from paddlepalm.cli import main
from tests.conftest import data_root
from tests.helpers import SPECIALS, tiny_config

PER_INTENT_TRAIN, PER_INTENT_DEV, SEED, MAX_LEN = 8, 2, 3, 48

CANINE = dict(model_type="canine", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=64, num_hash_functions=4, num_hash_buckets=512, local_transformer_stride=16,
              type_vocab_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def backbone_config(kind: str, vocab_size: int) -> dict:
    if kind == "canine":
        return dict(CANINE)
    if kind == "nezha":
        return tiny_config("nezha", vocab_size=vocab_size, max_relative_position=8)
    # ERNIE 3.0's switches: task-type embedding on, 4 token types
    return tiny_config("ernie", vocab_size=vocab_size, type_vocab_size=4, task_type_vocab_size=3)


@pytest.fixture(scope="module")
def snips(tmp_path_factory):
    from paddlepalm.reader.snips import read_snips_file, slot_label_map, write_palm_tsv

    data = os.path.join(data_root(), "snips")
    if not os.path.isdir(data):
        pytest.skip("SNIPS data not found at %s" % data)
    intents = sorted(m.group(1) for m in (re.fullmatch(r"train_(\w+)_full\.json", n) for n in os.listdir(data)) if m)
    train = [u for i in intents for u in read_snips_file(os.path.join(data, "train_%s_full.json" % i))[:PER_INTENT_TRAIN]]
    dev = [u for i in intents for u in read_snips_file(os.path.join(data, "validate_%s.json" % i))[:PER_INTENT_DEV]]
    d = tmp_path_factory.mktemp("snips_backbones")
    labels = write_palm_tsv(train, str(d / "intent_train.tsv"), str(d / "slot_train.tsv"))
    write_palm_tsv(dev, str(d / "intent_dev.tsv"), str(d / "slot_dev.tsv"), intent_labels=labels)
    (d / "slot_labels.json").write_text(json.dumps(slot_label_map(train + dev)))
    words = sorted({p for u in train + dev for w in u.words for p in re.findall(r"\w+|[^\w\s]", w.lower())})
    (d / "vocab.txt").write_text("\n".join(SPECIALS + words) + "\n", encoding="utf-8")
    return d, len(labels), len(slot_label_map(train + dev)), len(SPECIALS) + len(words)


def _yaml_config(d, kind, vocab_size, out):
    (d / ("%s.json" % kind)).write_text(json.dumps(backbone_config(kind, vocab_size)))
    tokenizer = {"type": "codepoint"} if kind == "canine" else {"vocab": "vocab.txt"}
    return {
        "backbone": {"type": kind if kind != "ernie3" else "ernie", "config": "%s.json" % kind},
        "tokenizer": tokenizer, "max_len": MAX_LEN, "batch_size": 16,
        "tasks": {"intent": {"reader": "classify", "train": "intent_train.tsv", "dev": "intent_dev.tsv"},
                  "slot": {"reader": "sequence_label", "train": "slot_train.tsv", "dev": "slot_dev.tsv",
                           "label_map": "slot_labels.json"}},
        "main_task": "intent", "optimizer": {"type": "adamw", "lr": 3e-3}, "epochs": 2,
        "print_steps": 4, "seed": SEED, "output_dir": str(out)}


@pytest.mark.parametrize("kind", ["canine", "nezha", "ernie3"])
def test_multi_task_from_yaml_then_load_and_export(snips, kind):
    d, _, _, vocab_size = snips
    out = d / ("yaml_" + kind)
    (d / ("%s.yaml" % kind)).write_text(yaml.safe_dump(_yaml_config(d, kind, vocab_size, out)))
    assert main(["train", str(d / ("%s.yaml" % kind))]) == 0
    results = json.loads((out / "results.json").read_text())
    assert 0.0 <= results["intent"]["accuracy"] <= 1.0 and "f1" in results["slot"]
    logged = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    slot_losses = [r["loss"]["slot"] for r in logged if "slot" in r.get("loss", {})]
    assert len(slot_losses) >= 2 and slot_losses[-1] < slot_losses[0]  # the shared encoder + slot head learn
    final = max((p for p in os.listdir(out) if p.startswith("ckpt.step")), key=lambda p: int(p[9:]))
    model = palm.load(str(out / final))
    expected_class = {"canine": "Canine", "nezha": "NEZHA", "ernie3": "ERNIE"}[kind]
    assert type(model.backbone).__name__ == expected_class
    slots = model.predict("slot", ["play some jazz music by miles davis"])
    assert len(slots) == 1 and len(slots[0]["labels"]) == 7
    assert main(["export", str(d / ("%s.yaml" % kind)), "--ckpt", str(out / final), "--out",
                 str(d / ("serving_" + kind))]) == 0
    assert {"intent", "slot"} <= set(os.listdir(d / ("serving_" + kind)))


@pytest.mark.parametrize("kind", ["canine", "nezha", "ernie3"])
def test_multi_task_from_python_saves_loads_and_exports(snips, tmp_path, kind):
    import paddle

    from paddlepalm.export import Predictor, export_model

    d, num_intents, num_tags, vocab_size = snips
    paddle.seed(SEED)
    config = backbone_config(kind, vocab_size)
    backbone = palm.backbone.build_encoder(config)
    vocab = None if kind == "canine" else str(d / "vocab.txt")
    tok = "codepoint" if kind == "canine" else "wordpiece"
    labels = str(d / "slot_labels.json")
    intent = palm.Trainer("intent", reader=palm.reader.ClassifyReader(vocab, MAX_LEN, tokenizer=tok, seed=SEED)
                          .load_data(str(d / "intent_train.tsv"), 16),
                          head=palm.head.Classify(num_intents, 32))
    slot = palm.Trainer("slot", reader=palm.reader.SequenceLabelReader(vocab, MAX_LEN, labels, tokenizer=tok, seed=SEED)
                        .load_data(str(d / "slot_train.tsv"), 16),
                        head=palm.head.SequenceLabel(num_tags, 32))
    engine = palm.MultiHeadTrainer([intent, slot], backbone=backbone, seed=SEED)
    engine.fit(palm.optimizer.AdamW(lr=3e-3), num_epochs=2, save_path=str(tmp_path / "run"), print_steps=0)
    saved = engine.save(str(tmp_path / "model"))
    texts = ["book a table for two in paris tonight please", "what is the weather tomorrow"]
    predict_reader = palm.reader.ClassifyReader(vocab, MAX_LEN, tokenizer=tok, phase="predict")
    batch = next(iter(predict_reader.load_examples(predict_reader.make_examples(texts), 2).iterator(num_epochs=1)))
    expected = engine.predict_one_batch("intent", batch)
    loaded = palm.load(saved).predict("intent", texts)
    np.testing.assert_allclose(np.array([r["probs"] for r in loaded]), expected["probs"], atol=1e-5)
    path = export_model(engine, str(tmp_path / "export"))
    got = Predictor(path, "intent").run(batch)  # a length the export's sample did not have
    np.testing.assert_allclose(got["probs"], expected["probs"], atol=1e-5)


def _xquad_zh_spans(path, count, width=40):
    """Characters around each answer, tagged B-ANS/I-ANS on the answer, O elsewhere."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    rows = []
    for article in data:
        for para in article["paragraphs"]:
            context = para["context"]
            for qa in para["qas"]:
                ans = qa["answers"][0]
                start, text = ans["answer_start"], ans["text"]
                lo, hi = max(0, start - width // 2), min(len(context), start + len(text) + width // 2)
                chars, tags = [], []
                for k in range(lo, hi):
                    if context[k].isspace():
                        continue
                    chars.append(context[k])
                    tags.append("O" if not start <= k < start + len(text) else
                                ("B-ANS" if k == start else "I-ANS"))
                rows.append((chars, tags))
                if len(rows) == count:
                    return rows
    return rows


def test_canine_sequence_labelling_on_chinese_xquad(tmp_path):
    import paddle

    path = os.path.join(data_root(), "xquad", "xquad.zh.json")
    if not os.path.isfile(path):
        pytest.skip("XQuAD not found at %s" % path)
    rows = _xquad_zh_spans(path, 24)
    with open(tmp_path / "train.tsv", "w", encoding="utf-8") as f:
        f.write("text_a\tlabel\n")
        for chars, tags in rows:
            f.write("\x02".join(chars) + "\t" + "\x02".join(tags) + "\n")
    paddle.seed(0)
    backbone = palm.backbone.Canine(dict(CANINE))
    reader = palm.reader.SequenceLabelReader(None, 96, tokenizer="codepoint", seed=0).load_data(
        str(tmp_path / "train.tsv"), 8)
    # one character a word, no spaces between Chinese characters: the ids are the running text
    first = reader.features[0]
    assert first["input_ids"][1:1 + 5] == [ord(c) for c in rows[0][0][:5]]
    assert first["word_starts"][:5] == [1, 2, 3, 4, 5]
    head = palm.head.SequenceLabel(len(reader.label_map), 32)
    dev = reader.clone("dev").load_data(str(tmp_path / "train.tsv"), 8)
    trainer = palm.Trainer("ans", reader=reader, head=head, dev_reader=dev)
    engine = palm.MultiHeadTrainer([trainer], backbone=backbone, seed=0)
    before = engine.evaluate()["ans"]["f1"]
    engine.fit(palm.optimizer.AdamW(lr=5e-3), num_epochs=20, save_path=str(tmp_path / "run"), print_steps=0)
    assert engine.global_step == 60
    after = engine.evaluate()["ans"]
    # it fits the answer spans it was trained on (memorisation of 24 rows, not a quality claim)
    assert after["f1"] > max(0.6, before)
    model = palm.load(engine.save(str(tmp_path / "model")))
    predicted = model.predict("ans", [chars for chars, _ in rows])
    assert [len(p["labels"]) for p in predicted] == [len(chars) for chars, _ in rows]
    gold = [tags for _, tags in rows]
    from paddlepalm.head.sequence_label import sequence_metrics

    assert sequence_metrics(gold, [p["labels"] for p in predicted])["f1"] == pytest.approx(after["f1"])
