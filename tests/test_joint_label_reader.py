"""JointLabelReader: one tokenization, a sentence label and word tags in the same batch."""
import os

import numpy as np
import pytest

from paddlepalm.errors import DataError
from paddlepalm.head import Classify, SequenceLabel
from paddlepalm.reader import READERS, ClassifyReader, JointLabelReader, SequenceLabelReader
from paddlepalm.reader.snips import load_snips, write_palm_tsv
from tests.helpers import minilm_dir, tiny_model, write_file, write_vocab

SEP = "\x02"


def _write_joint(path, rows, header="text_a\tlabel\ttags"):
    lines = [header] + ["%s\t%s\t%s" % (SEP.join(words), label, SEP.join(tags)) for words, label, tags in rows]
    return write_file(path, "\n".join(lines) + "\n")


ROWS = [
    (["play", "jazz", "by", "my", "playlist"], "PlayMusic", ["O", "B-genre", "O", "O", "B-playlist"]),
    (["what", "will", "the", "weather", "be", "in", "paris", "tomorrow"], "GetWeather",
     ["O", "O", "O", "O", "O", "O", "B-city", "B-date"]),
    (["book", "a", "table", "for", "two"], "BookRestaurant", ["O", "O", "O", "O", "B-party"]),
    (["rate", "this", "novel", "5", "stars"], "RateBook", ["O", "O", "B-type", "B-value", "I-value"]),
]


@pytest.fixture
def vocab(tmp_path):
    return write_vocab(str(tmp_path / "vocab"))


def _separate_files(tmp_path, rows):
    intents = sorted({r[1] for r in rows})
    cls = write_file(tmp_path / "intent.tsv", "label\ttext_a\n" + "".join(
        "%d\t%s\n" % (intents.index(label), " ".join(words)) for words, label, _ in rows))
    seq = write_file(tmp_path / "slot.tsv", "text_a\tlabel\n" + "".join(
        "%s\t%s\n" % (SEP.join(words), SEP.join(tags)) for words, _, tags in rows))
    return intents, cls, seq


def _assert_same_inputs_as_separate_readers(vocab, joint_file, cls_file, seq_file, intents, max_len=64):
    joint = JointLabelReader(vocab, max_len, label_map=intents).load_data(joint_file, batch_size=4)
    cls = ClassifyReader(vocab, max_len).load_data(cls_file, batch_size=4)
    seq = SequenceLabelReader(vocab, max_len).load_data(seq_file, batch_size=4)
    assert len(joint.features) == len(cls.features) == len(seq.features)
    for fj, fc, fs in zip(joint.features, cls.features, seq.features):
        assert fj["input_ids"] == fs["input_ids"] == fc["input_ids"]
        assert fj["token_type_ids"] == fs["token_type_ids"] == fc["token_type_ids"]
        assert fj["word_starts"] == fs["word_starts"] and fj["num_words"] == fs["num_words"]
        assert fj["word_labels"] == fs["word_labels"]
        assert fj["label"] == fc["label"]
    assert joint.label_vocab("word_labels") == seq.label_vocab()
    assert joint.label_vocab("label") == intents
    return joint


def test_same_input_ids_and_labels_as_the_two_separate_readers(tmp_path, vocab):
    intents, cls_file, seq_file = _separate_files(tmp_path, ROWS)
    joint_file = _write_joint(tmp_path / "joint.tsv", ROWS)
    _assert_same_inputs_as_separate_readers(vocab, joint_file, cls_file, seq_file, intents)


def test_real_snips_same_input_ids_as_the_two_separate_readers(tmp_path, datasets_dir):
    snips_dir = os.path.join(datasets_dir, "snips")
    if not os.path.isdir(snips_dir):
        pytest.skip("no SNIPS data")
    utterances = load_snips(snips_dir, seed=0)["dev"]  # 700 utterances, every intent
    intents = write_palm_tsv(utterances, str(tmp_path / "intent.tsv"), str(tmp_path / "slot.tsv"))
    joint_file = _write_joint(tmp_path / "joint.tsv", [(u.words, u.intent, u.tags) for u in utterances])
    joint = _assert_same_inputs_as_separate_readers(os.path.join(minilm_dir(), "vocab.txt"), joint_file,
                                                    str(tmp_path / "intent.tsv"), str(tmp_path / "slot.tsv"),
                                                    intents, max_len=128)
    assert joint.num_truncated == 0 and len(joint.features) == 700


def test_long_sentences_are_cut_between_words_like_the_sequence_reader(tmp_path, vocab):
    rows = [(["what", "will", "the", "weather", "be", "in", "paris", "tomorrow"], "GetWeather",
             ["O"] * 6 + ["B-city", "B-date"])]
    joint = JointLabelReader(vocab, max_len=6).load_data(_write_joint(tmp_path / "j.tsv", rows), batch_size=1)
    seq = SequenceLabelReader(vocab, max_len=6).load_data(_separate_files(tmp_path, rows)[2], batch_size=1)
    assert joint.features[0]["input_ids"] == seq.features[0]["input_ids"]
    assert joint.features[0]["num_words"] == 4 and joint.num_truncated == 1


def test_one_batch_one_encoder_pass_two_heads(tmp_path, vocab):
    import paddle

    from paddlepalm.forward import encoder_inputs, to_tensors

    reader = JointLabelReader(vocab, 32, seed=0).load_data(_write_joint(tmp_path / "j.tsv", ROWS), batch_size=4)
    batch = next(iter(reader.iterator(num_epochs=1)))
    assert {"input_ids", "label", "word_starts", "num_words", "word_labels"} <= set(batch)
    heads = {"intent": Classify(reader.view("label").num_classes, 32),
             "slot": SequenceLabel(reader.view("word_labels").num_classes, 32)}
    encoder = tiny_model()
    tensors = to_tensors(batch)
    out = encoder(**encoder_inputs(tensors, encoder))  # the one encoder pass
    losses = {t: h(out, tensors)["loss"] for t, h in heads.items()}
    assert all(float(v) > 0 for v in losses.values())
    # each head finds its label names through its view
    assert reader.for_head(heads["intent"]).label_vocab() == sorted({r[1] for r in ROWS})
    assert reader.for_head(heads["slot"]).label_vocab()[0] == "O"
    with paddle.no_grad():
        outputs = {k: v.numpy() for k, v in heads["slot"](out, tensors).items()}
    records = heads["slot"].batch_postprocess(outputs, batch)
    metrics = heads["slot"].epoch_postprocess(records, reader.for_head(heads["slot"]), str(tmp_path / "pred"))
    assert set(metrics) >= {"f1", "token_accuracy"}
    assert os.path.isfile(tmp_path / "pred" / "predictions.json")


def test_dev_clone_predict_file_and_column_mapping(tmp_path, vocab):
    train = JointLabelReader(vocab, 32).load_data(_write_joint(tmp_path / "train.tsv", ROWS), batch_size=2)
    dev = train.clone("dev").load_data(_write_joint(tmp_path / "dev.tsv", ROWS[:2]), batch_size=2)
    assert dev.label_vocabs() == train.label_vocabs()
    assert [f["label"] for f in dev.features] == [train.features[0]["label"], train.features[1]["label"]]
    predict = train.clone("predict").load_data(
        write_file(tmp_path / "p.tsv", "text_a\nplay%sjazz\n" % SEP), batch_size=2)
    assert "label" not in predict.features[0] and "word_labels" not in predict.features[0]
    mapped = JointLabelReader(vocab, 32, fields={"text_a": "words", "label": "intent", "tags": "slots"})
    mapped.load_data(_write_joint(tmp_path / "m.tsv", ROWS, header="words\tintent\tslots"), batch_size=2)
    assert [f["input_ids"] for f in mapped.features] == [f["input_ids"] for f in train.features]


def test_bad_files_name_file_line_and_field(tmp_path, vocab):
    missing = write_file(tmp_path / "missing.tsv", "text_a\tlabel\nplay\tPlayMusic\n")
    with pytest.raises(DataError, match="tags") as e:
        JointLabelReader(vocab).load_data(missing, batch_size=2)
    assert "missing.tsv" in str(e.value)
    bad = _write_joint(tmp_path / "bad.tsv", ROWS[:1] + [(["play", "jazz"], "PlayMusic", ["O"])])
    with pytest.raises(DataError, match="2 words but 1 tags") as e:
        JointLabelReader(vocab).load_data(bad, batch_size=2)
    assert e.value.line == 3 and e.value.field == "tags"
    no_label = write_file(tmp_path / "nolabel.tsv", "text_a\tlabel\ttags\nplay\t\tO\n")
    with pytest.raises(DataError, match="missing label"):
        JointLabelReader(vocab).load_data(no_label, batch_size=2)
    with pytest.raises(DataError, match="sentence label column"):
        JointLabelReader(vocab).load_data(write_file(tmp_path / "x.conll", "play O\n"), batch_size=1,
                                          file_format="conll")
    reader = JointLabelReader(vocab).load_data(_write_joint(tmp_path / "ok.tsv", ROWS), batch_size=2)
    with pytest.raises(ValueError, match="two label sets"):
        reader.label_vocab()
    with pytest.raises(KeyError, match="unknown label field"):
        reader.view("tags")


def test_registered():
    assert READERS.get("joint_label") is JointLabelReader
    assert np.all([f in JointLabelReader.required_fields for f in ("text_a", "label", "tags")])
