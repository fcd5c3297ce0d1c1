import json

import numpy as np
import pytest

import paddlepalm as palm
from paddlepalm.errors import DataError
from tests.helpers import overfit, predict_all, tiny_model, write_vocab

POINTWISE = [("1", "play jazz music", "play a jazz song"), ("0", "play jazz music", "weather in paris"),
             ("1", "book a table", "book the restaurant"), ("0", "book a table", "rate this novel"),
             ("1", "will it rain", "weather tomorrow"), ("0", "will it rain", "add to my playlist")]
TRIPLES = [("play jazz music", "play a jazz song", "weather in paris"),
           ("book a table", "book the restaurant", "rate this novel"),
           ("will it rain", "weather tomorrow", "add to my playlist"),
           ("who wrote this novel", "rate this novel", "play rock")]


@pytest.fixture
def vocab(tmp_path):
    return write_vocab(str(tmp_path / "vocab"))


def _write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def _tsv(path, header, rows):
    return _write(path, "\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows))


def test_pointwise_learns_and_round_trips(tmp_path, vocab):
    path = _tsv(tmp_path / "train.tsv", ("label", "text_a", "text_b"), POINTWISE)
    reader = palm.reader.MatchReader(vocab, 32, seed=0).load_data(path, batch_size=6, num_epochs=1)
    assert reader.features[0]["token_type_ids"].count(1) == 5  # "play a jazz song" + [SEP]
    backbone = tiny_model("bert")
    reader.register_with(backbone)
    head = palm.head.Match(2, 32)
    losses = overfit(reader, head, backbone, steps=60)
    assert losses[-1] < 0.05 < losses[0]
    pred_reader = reader.clone("predict").load_data(path, batch_size=4)
    _, metrics = predict_all(pred_reader, head, backbone, str(tmp_path / "out"))
    assert metrics == {"accuracy": 1.0, "macro_f1": 1.0}
    lines = [json.loads(l) for l in open(tmp_path / "out" / "predictions.json")]
    assert [l["label"] for l in lines] == [int(r[0]) for r in POINTWISE]
    assert [l["index"] for l in lines] == list(range(6)) and set(lines[0]) >= {"logits", "probs"}


def test_pointwise_label_names(tmp_path, vocab):
    rows = [("a", "b", "same"), ("a", "c", "different")]
    path = _tsv(tmp_path / "t.tsv", ("text_a", "text_b", "label"), rows)
    reader = palm.reader.MatchReader(vocab, 16).load_data(path, batch_size=2)
    assert reader.label_vocab() == ["different", "same"] and reader.num_classes == 2
    assert [f["label"] for f in reader.features] == [1, 0]


def test_pairwise_batches_have_2b_rows_and_hinge_goes_to_zero(tmp_path, vocab):
    path = _tsv(tmp_path / "pairs.tsv", ("text_a", "text_b", "text_b_neg"), TRIPLES)
    reader = palm.reader.MatchReader(vocab, 32, learning_strategy="pairwise", seed=0)
    reader.load_data(path, batch_size=4, num_epochs=1, shuffle_train=False)
    batch = next(iter(reader.iterator(num_epochs=1)))
    assert batch["input_ids"].shape[0] == batch["attention_mask"].shape[0] == 8
    assert int(batch["pair_rows"]) == 4 and batch["feature_index"].tolist() == [0, 1, 2, 3]
    tok = reader.tokenizer
    assert tok.decode(batch["input_ids"][1]) == "[CLS] book a table [SEP] book the restaurant [SEP] [PAD]"
    assert tok.decode(batch["input_ids"][5]) == "[CLS] book a table [SEP] rate this novel [SEP] [PAD]"
    assert not any(k.startswith("neg_") for k in batch)
    backbone = tiny_model("bert")
    head = palm.head.Match(2, 32, learning_strategy="pairwise", margin=0.5)
    reader.load_data(path, batch_size=4, num_epochs=1)
    losses = overfit(reader, head, backbone, steps=40)
    assert losses[0] > 0.1 and losses[-1] == 0.0
    dev = reader.clone("dev").load_data(path, batch_size=3)
    _, metrics = predict_all(dev, head, backbone, str(tmp_path / "out"))
    assert metrics == {"pairwise_accuracy": 1.0}
    lines = [json.loads(l) for l in open(tmp_path / "out" / "predictions.json")]
    assert all(l["score"] > l["score_neg"] for l in lines) and [l["index"] for l in lines] == [0, 1, 2, 3]

    # single pairs at predict time: one row each, scored
    pairs = [t[:2] for t in TRIPLES] + [t[::2] for t in TRIPLES]  # positives, then negatives
    singles = _tsv(tmp_path / "singles.tsv", ("text_a", "text_b"), pairs)
    pred = reader.clone("predict").load_data(singles, batch_size=8)
    assert "pair_rows" not in next(iter(pred.iterator(num_epochs=1)))
    records, metrics = predict_all(pred, head, backbone, str(tmp_path / "single"))
    assert metrics == {}
    lines = [json.loads(l) for l in open(tmp_path / "single" / "predictions.json")]
    scores = np.array([l["score"] for l in lines])
    assert (scores[:4] > scores[4:]).all() and all(0 < l["probs"] < 1 for l in lines)


@pytest.mark.parametrize("strategy, content, message, line", [
    ("pointwise", "label\ttext_a\ttext_b\n1\ta\n", "expected 3 tab-separated columns", 2),
    ("pointwise", "label\ttext_a\ttext_b\n1\ta\tb\nx\ta\tb\n", "label 'x' is not an integer", 3),
    ("pointwise", "label\ttext_a\n1\ta\n", "missing column(s) text_b", 1),
    ("pairwise", "text_a\ttext_b\na\tb\n", "missing column(s) text_b_neg", 1),
    ("pairwise", "", "empty file", None),
])
def test_bad_input_names_file_and_line(tmp_path, vocab, strategy, content, message, line):
    path = _write(tmp_path / "bad.tsv", content)
    with pytest.raises(DataError) as err:
        palm.reader.MatchReader(vocab, 16, learning_strategy=strategy).load_data(path, batch_size=2)
    assert message in str(err.value) and "bad.tsv" in str(err.value)
    assert err.value.line == line


def test_bad_strategy(vocab):
    with pytest.raises(ValueError, match="learning_strategy"):
        palm.reader.MatchReader(vocab, 16, learning_strategy="listwise")
    with pytest.raises(ValueError, match="learning_strategy"):
        palm.head.Match(2, 32, learning_strategy="listwise")
