"""PALM 2.0 scripts run unchanged (but for paths) -- the multi-task example from PALM's docs."""
import json
import os

import numpy as np
import pytest

import paddlepalm as palm
from paddlepalm.reader.snips import load_snips, slot_label_map, write_palm_tsv


@pytest.fixture(scope="module")
def snips_tsvs(tmp_path_factory):
    root = os.environ.get("PADDLEPALM_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets"))
    if not os.path.isdir(os.path.join(root, "snips")):
        pytest.skip("SNIPS not found under %s" % root)
    split = load_snips(os.path.join(root, "snips"), seed=0)
    by_intent = {}
    for u in split["train"]:
        by_intent.setdefault(u.intent, []).append(u)
    train = [u for us in by_intent.values() for u in us[:12]]
    test = split["test"][::50]
    out = tmp_path_factory.mktemp("snips")
    intents = sorted(by_intent)
    files = {}
    for name, utts in (("train", train), ("test", test)):
        files[name + "_intent"], files[name + "_slot"] = str(out / (name + "_intent.tsv")), str(out / (name + "_slot.tsv"))
        write_palm_tsv(utts, intent_path=files[name + "_intent"], slot_path=files[name + "_slot"], intent_labels=intents)
    labels = slot_label_map(train + test)
    files["label_map"] = str(out / "label_map.json")
    json.dump(labels, open(files["label_map"], "w"))
    words = sorted({w.lower() for u in train + test for w in u.words})
    files["vocab"] = str(out / "vocab.txt")
    open(files["vocab"], "w").write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    files["config"] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": len(words) + 5,
                       "max_position_embeddings": 64, "sent_type_vocab_size": 4, "task_type_vocab_size": 3,
                       "hidden_act": "relu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
                       "initializer_range": 0.02}
    return files, len(labels), len(intents), test


def test_palm_multitask_script_runs_unchanged(snips_tsvs, tmp_path):
    f, num_classes, num_classes_intent, test = snips_tsvs
    vocab_path, max_seqlen, random_seed, batch_size, num_epochs = f["vocab"], 32, 1, 8, 2
    input_dim, dropout_prob, lr, weight_decay = 32, 0.1, 5e-3, 0.01
    config, label_map, train_slot, train_intent = f["config"], f["label_map"], f["train_slot"], f["train_intent"]
    # ---- the script from PALM's docs, unchanged but for paths ----
    seq_label_reader = palm.reader.SequenceLabelReader(vocab_path, max_seqlen, label_map, seed=random_seed)
    cls_reader = palm.reader.ClassifyReader(vocab_path, max_seqlen, seed=random_seed)
    seq_label_reader.load_data(train_slot, file_format='tsv', num_epochs=None, batch_size=batch_size)
    cls_reader.load_data(train_intent, batch_size=batch_size, num_epochs=None)
    ernie = palm.backbone.ERNIE.from_config(config)
    seq_label_reader.register_with(ernie)
    cls_reader.register_with(ernie)
    seq_label_head = palm.head.SequenceLabel(num_classes, input_dim, dropout_prob)
    cls_head = palm.head.Classify(num_classes_intent, input_dim, dropout_prob)
    trainer_seq_label = palm.Trainer("slot", mix_ratio=1.0)
    trainer_cls = palm.Trainer("intent", mix_ratio=1.0)
    trainer = palm.MultiHeadTrainer([trainer_seq_label, trainer_cls])
    loss1 = trainer_cls.build_forward(ernie, cls_head)
    loss2 = trainer_seq_label.build_forward(ernie, seq_label_head)
    loss_var = trainer.build_forward()
    n_steps = seq_label_reader.num_examples * 1.5 * num_epochs
    sched = palm.lr_sched.TriangularSchedualer(int(0.1 * n_steps), n_steps)
    adam = palm.optimizer.Adam(loss_var, lr, sched)
    trainer.build_backward(optimizer=adam, weight_decay=weight_decay)
    trainer.fit_readers_with_mixratio([seq_label_reader, cls_reader], "slot", num_epochs)
    pretrain = tmp_path / "pretrain"
    ernie.save_pretrained(str(pretrain))  # stands in for './pretrain/ERNIE-v2-en-base'
    trainer.load_pretrain(str(pretrain))
    trainer.set_saver(save_path=str(tmp_path / "outputs"), save_steps=10)
    trainer.train(print_steps=10)
    # ---- predict flow, per task ----
    assert loss1 is trainer_cls and loss2 is trainer_seq_label
    ckpt = sorted(os.listdir(tmp_path / "outputs"))
    assert "ckpt.step10" in ckpt
    last = palm.checkpoint.latest_checkpoint(str(tmp_path / "outputs"))
    results = {}
    for name, reader_cls, head, tsv in (
            ("intent", palm.reader.ClassifyReader, lambda: palm.head.Classify(num_classes_intent, input_dim, phase='predict'),
             f["test_intent"]),
            ("slot", lambda *a, **k: palm.reader.SequenceLabelReader(vocab_path, max_seqlen, label_map, **k),
             lambda: palm.head.SequenceLabel(num_classes, input_dim, phase='predict'), f["test_slot"])):
        predict_reader = (reader_cls(vocab_path, max_seqlen, seed=random_seed, phase='predict') if name == "intent"
                          else reader_cls(seed=random_seed, phase='predict'))
        predict_reader.load_data(tsv, batch_size)
        pred_ernie = palm.backbone.ERNIE.from_config(config, phase='predict')
        predict_reader.register_with(pred_ernie)
        t = trainer_cls if name == "intent" else trainer_seq_label
        t.build_predict_forward(pred_ernie, head())
        t.load_ckpt(last)
        t.fit_reader(predict_reader, phase='predict')
        results[name] = t.predict(print_steps=100, output_dir=str(tmp_path / "pred" / name))
        lines = open(tmp_path / "pred" / name / "predictions.json").read().splitlines()
        assert len(lines) == len(test)
    assert 0.0 <= results["intent"]["accuracy"] <= 1.0 and "f1" in results["slot"]
    slot_line = json.loads(open(tmp_path / "pred" / "slot" / "predictions.json").readline())
    assert slot_line["words"] == test[0].words and len(slot_line["labels"]) == len(test[0].words)
    rows = [json.loads(l) for l in open(tmp_path / "outputs" / "metrics.jsonl")]
    assert rows[-1]["step"] == trainer.overall_train_steps
    assert np.isfinite(list(rows[-1]["loss"].values())).all()
