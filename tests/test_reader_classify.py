import json
import os

import numpy as np
import pytest

import paddlepalm as palm
from paddlepalm.errors import DataError
from tests.helpers import overfit, predict_all, tiny_model, write_file, write_vocab


@pytest.fixture
def vocab(tmp_path):
    return write_vocab(str(tmp_path / "vocab"))


ROWS = [("0", "play jazz music"), ("1", "what is the weather in paris"), ("2", "book a table for two"),
        ("0", "play rock songs"), ("1", "will it rain tomorrow"), ("2", "book the restaurant")]


def test_palm_tsv_learns_and_round_trips(tmp_path, vocab):
    path = write_file(tmp_path / "train.tsv", "label\ttext_a\n" + "".join("%s\t%s\n" % r for r in ROWS))
    reader = palm.reader.ClassifyReader(vocab, 16, seed=1)
    reader.load_data(path, batch_size=6, num_epochs=1)
    assert reader.num_examples == 6 and reader.steps_per_epoch == 1
    backbone = tiny_model("bert")
    reader.register_with(backbone)
    head = palm.head.Classify(3, 32)
    losses = overfit(reader, head, backbone, steps=60)
    assert losses[-1] < 0.05 < losses[0]
    pred_reader = reader.clone("predict")
    pred_reader.load_data(path, batch_size=4)
    records, metrics = predict_all(pred_reader, head, backbone, str(tmp_path / "out"))
    assert metrics["accuracy"] == 1.0
    lines = [json.loads(l) for l in open(tmp_path / "out" / "predictions.json")]
    assert [l["label"] for l in lines] == [int(r[0]) for r in ROWS]
    assert [l["index"] for l in lines] == list(range(6))
    assert np.allclose([sum(l["probs"]) for l in lines], 1.0, atol=1e-5)


def test_label_names_csv_and_jsonl(tmp_path, vocab):
    csv_path = write_file(tmp_path / "t.csv", "intent,utterance\nmusic,\"play jazz, now\"\nweather,rain\n")
    reader = palm.reader.ClassifyReader(vocab, 16, fields={"label": "intent", "text_a": "utterance"})
    reader.load_data(csv_path, batch_size=2, file_format="csv")
    assert reader.label_vocab() == ["music", "weather"]
    assert [f["label"] for f in reader.features] == [0, 1]
    jl = write_file(tmp_path / "t.jsonl", '{"label": "b", "text_a": "hello"}\n{"label": "a", "text_a": "world"}\n')
    reader = palm.reader.ClassifyReader(vocab, 16, label_map=["a", "b"])
    reader.load_data(jl, batch_size=2, file_format="jsonl")
    assert [f["label"] for f in reader.features] == [1, 0]


def test_dynamic_padding_and_buckets(tmp_path, vocab):
    rows = ["0\t" + " ".join(["play"] * n) for n in [1, 9, 2, 8, 3, 7, 4, 6]]
    path = write_file(tmp_path / "t.tsv", "label\ttext_a\n" + "\n".join(rows) + "\n")
    reader = palm.reader.ClassifyReader(vocab, 64, seed=3, bucket_by_length=True)
    reader.load_data(path, batch_size=2, num_epochs=1)
    batches = list(reader)
    assert len(batches) == 4
    for b in batches:
        assert b["input_ids"].shape[1] == b["attention_mask"].sum(1).max()  # padded to the longest only
    widths = sorted(b["input_ids"].shape[1] for b in batches)
    assert widths == [4, 6, 9, 11]  # sorted pairs: (1,2) (3,4) (6,7) (8,9) + [CLS]/[SEP]
    first = [b["feature_index"].tolist() for b in batches]
    again = palm.reader.ClassifyReader(vocab, 64, seed=3, bucket_by_length=True).load_data(path, 2, 1)
    assert [b["feature_index"].tolist() for b in again] == first


def test_training_examples_from_memory_are_shuffled_like_a_file(tmp_path, vocab):
    rows = [{"text_a": " ".join(["play"] * (n + 1)), "label": "0"} for n in range(40)]
    path = write_file(tmp_path / "t.tsv", "label\ttext_a\n" + "".join("0\t%s\n" % r["text_a"] for r in rows))

    def order(reader, epochs=2):
        return [i for b in reader.iterator(num_epochs=epochs) for i in b["feature_index"].tolist()]

    memory = palm.reader.ClassifyReader(vocab, 64, seed=3)
    memory.load_examples(memory.make_examples(rows), 4)
    from_file = palm.reader.ClassifyReader(vocab, 64, seed=3).load_data(path, 4)
    got = order(memory)
    assert got == order(from_file)  # the same seeded reshuffle as load_data
    assert got[:40] != list(range(40)) and got[:40] != got[40:] and sorted(got[:40]) == list(range(40))
    kept = palm.reader.ClassifyReader(vocab, 64, seed=3)
    kept.load_examples(kept.make_examples(rows), 4, shuffle_train=False)
    assert order(kept, 1) == list(range(40))
    predict = palm.reader.ClassifyReader(vocab, 64, phase="predict")
    predict.load_examples(predict.make_examples([r["text_a"] for r in rows]), 4)
    assert order(predict, 1) == list(range(40))  # prediction keeps the input order


def test_tokenization_happens_once(tmp_path, vocab, monkeypatch):
    path = write_file(tmp_path / "t.tsv", "label\ttext_a\n" + "".join("%s\t%s\n" % r for r in ROWS))
    reader = palm.reader.ClassifyReader(vocab, 16, seed=0)
    calls = []
    original = reader.tokenizer.encode_batch
    monkeypatch.setattr(reader.tokenizer, "encode_batch", lambda *a, **k: calls.append(1) or original(*a, **k))
    reader.load_data(path, batch_size=2, num_epochs=3)
    assert sum(1 for _ in reader) == 9 and len(calls) == 1


@pytest.mark.parametrize("content, message, line", [
    ("label\ttext_a\n0\tplay\textra\n", "expected 2 tab-separated columns", 2),
    ("label\ttext_a\n0\tplay\nx\tjazz\n", "label 'x' is not an integer", 3),
    ("", "empty file", None),
    ("label\ttext_a\n", "no examples", None),
    ("text\n0\n", "missing column(s) label, text_a", 1),
])
def test_bad_input_names_file_and_line(tmp_path, vocab, content, message, line):
    path = write_file(tmp_path / "bad.tsv", content)
    with pytest.raises(DataError) as err:
        palm.reader.ClassifyReader(vocab, 16).load_data(path, batch_size=2)
    assert message in str(err.value) and "bad.tsv" in str(err.value)
    assert err.value.line == line


def test_non_utf8_and_unknown_label(tmp_path, vocab):
    path = write_file(tmp_path / "latin.tsv", "label\ttext_a\n0\tcaf\xe9\n".encode("latin-1"), "wb")
    with pytest.raises(DataError, match=r"latin\.tsv, line 2: not valid UTF-8"):
        palm.reader.ClassifyReader(vocab, 16).load_data(path, batch_size=2)
    path = write_file(tmp_path / "t.tsv", "label\ttext_a\nmusic\tplay\nsport\tgo\n")
    with pytest.raises(DataError, match=r"t\.tsv, line 3, field 'label': unknown label 'sport'"):
        palm.reader.ClassifyReader(vocab, 16, label_map=["music"]).load_data(path, batch_size=2)


def test_multi_label(tmp_path, vocab):
    path = write_file(tmp_path / "t.tsv", "label\ttext_a\nmusic,jazz\tplay jazz\nweather\train\njazz\tjazz\n")
    reader = palm.reader.ClassifyReader(vocab, 16, multi_label=True, seed=0)
    reader.load_data(path, batch_size=3, num_epochs=1)
    assert reader.label_vocab() == ["jazz", "music", "weather"]
    backbone = tiny_model("bert")
    head = palm.head.Classify(3, 32, multi_label=True)
    losses = overfit(reader, head, backbone, steps=150)
    assert losses[-1] < 0.05
    records, metrics = predict_all(reader.clone("predict").load_data(path, 3), head, backbone)
    assert metrics["subset_accuracy"] == 1.0
    assert sorted(r["label"] for r in records) == [[0], [0, 1], [2]]


class KeywordReader(palm.reader.Reader):
    """A custom reader in a few lines: label = whether the text mentions music."""

    required_fields = ("sentence",)

    def to_features(self, example):
        feature = self.encode(example["sentence"])
        feature["label"] = int(any(w in example["sentence"] for w in ("music", "jazz", "song")))
        return feature


def test_custom_reader_subclass_trains(tmp_path, vocab):
    path = write_file(tmp_path / "c.jsonl", "".join(json.dumps({"sentence": s}) + "\n" for _, s in ROWS))
    reader = KeywordReader(vocab, 16, seed=0).load_data(path, batch_size=6, file_format="jsonl")
    assert reader.num_examples == 6
    backbone = tiny_model("bert")
    reader.register_with(backbone)
    head = palm.head.Classify(2, 32)
    losses = overfit(reader, head, backbone, steps=30)
    assert losses[-1] < 0.05
    _, metrics = predict_all(reader.clone("predict").load_data(path, 6, file_format="jsonl"), head, backbone)
    assert metrics["accuracy"] == 1.0


def test_register_with_rejects_bigger_vocab(tmp_path, vocab):
    reader = palm.reader.ClassifyReader(vocab, 16)
    small = tiny_model("bert", vocab_size=10)
    with pytest.raises(ValueError, match="embedding has 10 rows"):
        reader.register_with(small)
