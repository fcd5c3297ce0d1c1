import itertools
import json
import os

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.errors import DataError
from paddlepalm.head.crf import LinearChainCRF, viterbi_decode
from paddlepalm.head.sequence_label import sequence_metrics
from tests.conftest import data_root
from tests.helpers import overfit, predict_all, tiny_model, write_file, write_vocab

SEP = "\x02"
SENTENCES = [
    ("play jazz by rock stars", "O B-genre O B-artist I-artist"),
    ("book a table in paris", "O O O O B-city"),
    ("unable to find the movie", "O O O O B-object"),
    ("playing songs by the bad", "O B-object O B-artist I-artist"),
    ("weather in paris tomorrow", "O O B-city B-date"),
    ("add jazz to my playlist", "O B-genre O O B-object"),
]


@pytest.fixture
def vocab(tmp_path):
    return write_vocab(str(tmp_path / "vocab"))


def _palm_tsv(tmp_path, rows=SENTENCES, name="train.tsv"):
    lines = ["text_a\tlabel"] + [SEP.join(w.split()) + "\t" + SEP.join(t.split()) for w, t in rows]
    return write_file(tmp_path / name, "\n".join(lines) + "\n")


def _conll(rows):
    out = ["-DOCSTART- O", ""]
    for words, tags in rows:
        out += ["%s\t%s" % wt for wt in zip(words.split(), tags.split())] + [""]
    return "\n".join(out)


def test_reader_features_and_subword_alignment(tmp_path, vocab):
    reader = palm.reader.SequenceLabelReader(vocab, 32, seed=0)
    reader.load_data(_palm_tsv(tmp_path), batch_size=6)
    assert reader.label_vocab() == ["O", "B-artist", "B-city", "B-date", "B-genre", "B-object", "I-artist"]
    feature = reader.features[3]  # "playing songs by the bad": play ##ing / song ##s
    tokens = reader.tokenizer.convert_ids_to_tokens(feature["input_ids"])
    assert tokens == ["[CLS]", "play", "##ing", "song", "##s", "by", "the", "bad", "[SEP]"]
    assert feature["word_starts"] == [1, 3, 5, 6, 7]
    assert feature["num_words"] == 5 and feature["words"] == ["playing", "songs", "by", "the", "bad"]
    ids = reader.label_map.ids
    assert feature["word_labels"] == [ids["O"], ids["B-object"], ids["O"], ids["B-artist"], ids["I-artist"]]
    batch = next(iter(reader.iterator(num_epochs=1)))
    assert batch["word_starts"].shape == batch["word_labels"].shape == (6, 5)
    assert "words" not in batch and "tags" not in batch
    short = [i for i, n in enumerate(batch["num_words"]) if n == 4][0]
    assert batch["word_labels"][short, 4] == -100


def test_word_level_truncation_and_unknown_words(tmp_path, vocab):
    path = _palm_tsv(tmp_path, [("playing songs by the bad", "O B-object O B-artist I-artist")])
    reader = palm.reader.SequenceLabelReader(vocab, 7, seed=0)  # 5 pieces fit: play ##ing song ##s by
    reader.load_data(path, batch_size=1)
    f = reader.features[0]
    assert f["num_words"] == 3 and len(f["word_labels"]) == 3 and len(f["words"]) == 5
    assert len(f["input_ids"]) == 7 and reader.num_truncated == 1
    # a word longer than the whole budget is kept, cut; a word with no pieces becomes [UNK]
    path = _palm_tsv(tmp_path, [("playing jazz", "O O"), ("jazz \u200b rock", "O O O")], "odd.tsv")
    tiny = palm.reader.SequenceLabelReader(vocab, 3, seed=0).load_data(path, batch_size=1)
    assert tiny.features[0]["word_starts"] == [1] and tiny.features[0]["num_words"] == 1
    wide = palm.reader.SequenceLabelReader(vocab, 16, seed=0).load_data(path, batch_size=1)
    tokens = wide.tokenizer.convert_ids_to_tokens(wide.features[1]["input_ids"])
    assert tokens == ["[CLS]", "jazz", "[UNK]", "rock", "[SEP]"]


def test_in_memory_examples(vocab):
    reader = palm.reader.SequenceLabelReader(vocab, 16, label_map_config=["O"], phase="predict")
    examples = reader.make_examples(["play  jazz", ["rock", "stars"],
                                     {"text_a": "a\x02b", "label": "O\x02O"}])
    assert [e["words"] for e in examples] == [["play", "jazz"], ["rock", "stars"], ["a", "b"]]
    features = reader.to_features_batch(examples)
    assert [f["num_words"] for f in features] == [2, 2, 2] and features[2]["word_labels"] == [0, 0]
    with pytest.raises(DataError, match="<input>, line 2, field 'text_a': empty word at position 2"):
        reader.make_examples(["jazz", ["rock", " "]])


def test_sequence_metrics_schemes():
    gold = [["B-x", "E-x", "S-y", "O"]]
    assert sequence_metrics(gold, [["B-x", "E-x", "O", "O"]]) == pytest.approx(
        {"token_accuracy": 0.75, "precision": 1.0, "recall": 0.5, "f1": 2 / 3})
    assert sequence_metrics([["PER", "O"]], [["PER", "PER"]]) == {"token_accuracy": 0.5}  # not BIO: no F1
    assert sequence_metrics([[1, 0]], [[1, 1]]) == {"token_accuracy": 0.5}  # ids without a label map


@pytest.mark.parametrize("use_crf", [False, True])
def test_learns_and_round_trips(tmp_path, vocab, use_crf):
    path = _palm_tsv(tmp_path)
    reader = palm.reader.SequenceLabelReader(vocab, 32, seed=0)
    reader.load_data(path, batch_size=6, num_epochs=1)
    backbone = tiny_model("bert")
    reader.register_with(backbone)
    head = palm.head.SequenceLabel(reader.num_classes, 32, use_crf=use_crf, crf_lr=10.0)
    losses = overfit(reader, head, backbone, steps=80)
    assert losses[-1] < 0.1 < losses[0]
    pred_reader = reader.clone("predict")
    pred_reader.load_data(path, batch_size=4)
    _, metrics = predict_all(pred_reader, head, backbone, str(tmp_path / "out"))
    assert metrics["f1"] == metrics["token_accuracy"] == 1.0
    lines = [json.loads(l) for l in open(tmp_path / "out" / "predictions.json", encoding="utf-8")]
    assert [l["index"] for l in lines] == list(range(len(SENTENCES)))
    assert [" ".join(l["words"]) for l in lines] == [w for w, _ in SENTENCES]
    assert [" ".join(l["labels"]) for l in lines] == [t for _, t in SENTENCES]
    assert [reader.label_vocab()[i] for i in lines[0]["label_ids"]] == lines[0]["labels"]


def test_prediction_without_labels_pads_truncated_words(tmp_path, vocab):
    path = _palm_tsv(tmp_path)
    reader = palm.reader.SequenceLabelReader(vocab, 32, seed=0).load_data(path, batch_size=6)
    backbone = tiny_model("bert")
    head = palm.head.SequenceLabel(reader.num_classes, 32)
    overfit(reader, head, backbone, steps=40)
    text = write_file(tmp_path / "pred.tsv", "text_a\n" + SEP.join("play jazz by rock stars".split()) + "\n")
    short = palm.reader.SequenceLabelReader(vocab, 5, label_map_config=reader.label_map.to_dict(),
                                            phase="predict").load_data(text, batch_size=2)
    assert short.features[0]["num_words"] == 3 and "word_labels" not in short.features[0]
    records, metrics = predict_all(short, head, backbone, str(tmp_path / "out"))
    assert metrics == {}
    line = json.loads(open(tmp_path / "out" / "predictions.json").read())
    assert len(line["labels"]) == 5 and line["labels"][3:] == ["O", "O"]


def test_space_separated_tsv_and_label_map_file(tmp_path, vocab):
    path = write_file(tmp_path / "t.tsv", "label\ttext_a\nB-x O\tjazz rock\n")
    label_map = write_file(tmp_path / "map.json", json.dumps({"B-x": 0, "O": 1}))
    reader = palm.reader.SequenceLabelReader(vocab, 16, label_map, token_sep=" ").load_data(path, 1)
    assert reader.features[0]["word_labels"] == [0, 1] and reader.label_vocab() == ["B-x", "O"]


def test_conll_file(tmp_path, vocab):
    path = write_file(tmp_path / "small.conll", _conll(SENTENCES[:2]) + "\n\n")
    reader = palm.reader.SequenceLabelReader(vocab, 32).load_data(path, batch_size=2)
    assert [e["words"] for e in reader.examples] == [s.split() for s, _ in SENTENCES[:2]]
    assert [e["_line"] for e in reader.examples] == [3, 9]
    spaced = write_file(tmp_path / "spaced.txt", "jazz O\nparis B-city\n\nrock O\n")
    reader = palm.reader.SequenceLabelReader(vocab, 32).load_data(spaced, 2, file_format="conll")
    assert [e["tags"] for e in reader.examples] == [["O", "B-city"], ["O"]]
    words_only = write_file(tmp_path / "words.conll", "jazz\nparis\n")
    pred = palm.reader.SequenceLabelReader(vocab, 32, label_map_config=["O"], phase="predict")
    assert pred.load_data(words_only, 1).features[0]["words"] == ["jazz", "paris"]


def test_real_wnut17(vocab):
    path = os.path.join(data_root(), "wnut17", "wnut17train.conll")
    if not os.path.isfile(path):
        pytest.skip("WNUT-17 not found at %s" % path)
    reader = palm.reader.SequenceLabelReader(vocab, 64).load_data(path, 32, file_format="conll")
    assert reader.num_examples == 3394
    assert len(reader.label_vocab()) == 13 and reader.label_vocab()[0] == "O"
    assert reader.examples[0]["words"][:3] == ["@paulwalk", "It", "'s"]
    assert sum(len(e["words"]) for e in reader.examples) == 62730
    assert all(f["num_words"] == len(f["word_labels"]) for f in reader.features)


@pytest.mark.parametrize("name, content, message, line", [
    ("count.tsv", "text_a\tlabel\njazz\x02rock\tO\n", "2 words but 1 tags", 2),
    ("empty_word.tsv", "text_a\tlabel\njazz\x02\x02rock\tO\x02O\x02O\n", "empty word at position 2", 2),
    ("unknown.tsv", "text_a\tlabel\njazz\tO\nrock\tB-genre\n", "unknown tag 'B-genre'", 3),
    ("columns.tsv", "text_a\tlabel\njazz\tO\tO\n", "expected 2 tab-separated columns", 2),
    ("count.conll", "jazz\tO\n\nrock\n", "expected 2 non-empty column(s)", 3),
    ("unknown.conll", "jazz\tO\n\nrock\tO\nparis\tB-city\n", "unknown tag 'B-city'", 4),
    ("empty.conll", "", "no sentences", None),
    ("empty.tsv", "", "empty file", None),
])
def test_bad_input_names_file_and_line(tmp_path, vocab, name, content, message, line):
    path = write_file(tmp_path / name, content)
    reader = palm.reader.SequenceLabelReader(vocab, 16, label_map_config=["O"])
    with pytest.raises(DataError) as err:
        reader.load_data(path, batch_size=2)
    assert message in str(err.value) and name in str(err.value)
    assert err.value.line == line


def test_non_utf8_and_unknown_label_option(tmp_path, vocab):
    path = write_file(tmp_path / "latin.conll", "jazz\tO\ncaf\xe9\tO\n".encode("latin-1"), "wb")
    with pytest.raises(DataError, match=r"latin\.conll, line 2: not valid UTF-8") as err:
        palm.reader.SequenceLabelReader(vocab, 16).load_data(path, batch_size=2)
    assert err.value.line == 2
    path = write_file(tmp_path / "t.tsv", "text_a\tlabel\njazz\x02paris\tO\x02B-city\n")
    reader = palm.reader.SequenceLabelReader(vocab, 16, ["O"], unknown_label="O").load_data(path, 1)
    assert reader.features[0]["word_labels"] == [0, 0]
    assert reader.features[0]["tags"] == ["O", "B-city"]  # metrics use the gold tags as written


def _brute_force(emissions, tags, length, transitions, start, end):
    def score(path):
        s = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
        return s + sum(transitions[a, b] for a, b in zip(path, path[1:]))

    paths = list(itertools.product(range(emissions.shape[1]), repeat=length))
    scores = np.array([score(p) for p in paths])
    log_z = np.log(np.exp(scores - scores.max()).sum()) + scores.max()
    return log_z - score(tuple(tags[:length])), list(paths[int(scores.argmax())])


def test_crf_matches_brute_force():
    rng = np.random.default_rng(0)
    crf = LinearChainCRF(3)
    for p in (crf.transitions, crf.start, crf.end):
        p.set_value(rng.normal(size=p.shape).astype("float32"))
    emissions = rng.normal(size=(3, 4, 3)).astype("float32")
    lengths = np.array([4, 2, 1])
    tags = rng.integers(0, 3, size=(3, 4))
    tags[np.arange(4)[None, :] >= lengths[:, None]] = -100
    mask = np.arange(4)[None, :] < lengths[:, None]
    nll = crf.nll(paddle.to_tensor(emissions), paddle.to_tensor(tags), paddle.to_tensor(mask)).numpy()
    params = [p.numpy().astype(np.float64) for p in (crf.transitions, crf.start, crf.end)]
    decoded = crf.decode(emissions, lengths)
    for b in range(3):
        expected_nll, expected_path = _brute_force(emissions[b].astype(np.float64), tags[b], lengths[b],
                                                   *params)
        assert abs(nll[b] - expected_nll) < 1e-5
        assert decoded[b] == expected_path
    assert viterbi_decode(emissions, lengths, *params) == decoded


def test_viterbi_rows_in_any_length_order_match_brute_force():
    # the decoder visits rows longest first: unsorted lengths, repeats and padding past the longest
    rng = np.random.default_rng(1)
    emissions = rng.normal(size=(6, 6, 3))
    transitions, start, end = rng.normal(size=(3, 3)), rng.normal(size=3), rng.normal(size=3)
    lengths = np.array([2, 5, 1, 5, 3, 4])
    decoded = viterbi_decode(emissions, lengths, transitions, start, end)
    for b, n in enumerate(lengths):
        assert decoded[b] == _brute_force(emissions[b], np.zeros(6, int), n, transitions, start, end)[1]
    one_word = int(np.argmax(start + emissions[0, 0] + end))
    assert viterbi_decode(emissions[:1], [1], transitions, start, end) == [[one_word]]


def test_palm_learning_rate_is_the_crf_multiplier():
    positional = palm.head.SequenceLabel(3, 32, 0.0, 1e-3, 0.02, True)
    assert positional.crf.transitions.optimize_attr["learning_rate"] == 1e-3
    by_name = palm.head.SequenceLabel(3, 32, learning_rate=5.0, use_crf=True)
    assert by_name.crf.start.optimize_attr["learning_rate"] == 5.0
    assert palm.head.SequenceLabel(3, 32).crf is None
