"""Data that used to be refused or misread: JSON arrays, headerless TSV/CSV by position, labels
differing in case or whitespace, nulls, predict files with labels on some lines only, keep_last:
null, custom readers from a module file next to the config."""
import json
import logging
import os

import pytest

from paddlepalm import cli
from paddlepalm.config import build_run, load_config
from paddlepalm.errors import DataError
from paddlepalm.reader import ClassifyReader
from paddlepalm.reader.formats import read_records
from tests.test_config import INTENTS, VALID, workdir, write  # noqa: F401 - the fixture

ROWS = [{"label": l, "text_a": t} for l, t in INTENTS]


def _reader(workdir, phase="train", **kwargs):
    return ClassifyReader(str(workdir / "vocab.txt"), max_len=32, phase=phase, **kwargs)


# ----------------------------------------------------------------------------- JSON arrays
def test_json_array_file_is_read_with_the_line_of_each_object(workdir):
    text = "[\n" + ",\n".join("  " + json.dumps(r) for r in ROWS[:2]) + ",\n  {\n    \"label\": \"2\",\n" \
        "    \"text_a\": \"book a table\"\n  }\n]\n"
    (workdir / "data.json").write_text(text)
    records = list(read_records(str(workdir / "data.json"), "json", required=("label", "text_a")))
    assert [line for line, _ in records] == [2, 3, 4]
    assert [r["text_a"] for _, r in records] == ["play jazz music", "what is the weather in paris", "book a table"]
    reader = _reader(workdir).load_data(str(workdir / "data.json"), 2, file_format=None)  # guessed: json
    assert reader.num_examples == 3 and [f["label"] for f in reader.features] == [0, 1, 2]


def test_json_format_also_reads_json_lines_and_an_empty_array(workdir):
    (workdir / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert len(list(read_records(str(workdir / "lines.json"), "json"))) == len(ROWS)
    (workdir / "empty.json").write_text("[ ]\n")
    with pytest.raises(DataError, match="empty.json: no examples"):
        list(read_records(str(workdir / "empty.json"), "json"))


# ----------------------------------------------------------------------------- columns by position
def test_headerless_tsv_with_columns_by_position_trains_from_yaml(workdir):
    (workdir / "noheader.tsv").write_text("".join("%s\tid%d\t%s\n" % (l, i, t) for i, (l, t) in enumerate(INTENTS)))
    config = load_config(write(workdir, VALID.replace("intent.tsv", "noheader.tsv").replace(
        "reader: classify", "reader: {type: classify, header: false}") + "    fields: {text_a: 3, label: 1}\n"))
    reader = build_run(config).trainers[0].reader
    assert reader.num_examples == len(INTENTS)  # the first line is data, not a header
    assert [e["text_a"] for e in reader.examples] == [t for _, t in INTENTS]
    assert reader.examples[0]["column2"] == "id0" and reader.examples[0]["_line"] == 1
    assert [f["label"] for f in reader.features] == [int(l) for l, _ in INTENTS]


def test_positions_also_work_with_a_header_and_in_csv(workdir):
    (workdir / "pos.csv").write_text("a,b\n" + "".join('"%s, really",%s\n' % (t, l) for l, t in INTENTS))
    records = list(read_records(str(workdir / "pos.csv"), "csv", required=("label", "text_a"),
                                fields={"text_a": 1, "label": 2}))
    assert records[0] == (2, {"a": "play jazz music, really", "b": "0", "text_a": "play jazz music, really",
                              "label": "0"})


# ----------------------------------------------------------------------------- nulls and labels
def test_null_text_is_an_error_not_the_word_none(workdir):
    (workdir / "null.jsonl").write_text('{"label": "0", "text_a": "play"}\n{"label": "1", "text_a": null}\n')
    with pytest.raises(DataError) as err:
        _reader(workdir).load_data(str(workdir / "null.jsonl"), 2, file_format="jsonl")
    assert str(err.value) == "%s, line 2, field 'text_a': is null; give a value (or drop the line)" \
        % (workdir / "null.jsonl")


def test_label_normalize_merges_near_duplicates_explicitly(workdir):
    (workdir / "case.tsv").write_text("label\ttext_a\npos\tgood\nneg\tbad\nPos\tgreat\npos \tnice\n")
    with pytest.raises(DataError, match=r"case.tsv, line 4, field 'label': label 'Pos' and label 'pos' \(line 2\) "
                                        r"differ only in case or whitespace"):
        _reader(workdir).load_data(str(workdir / "case.tsv"), 2)
    reader = _reader(workdir, label_normalize="lower").load_data(str(workdir / "case.tsv"), 2)
    assert reader.label_vocab() == ["neg", "pos"] and [f["label"] for f in reader.features] == [1, 0, 1, 1]
    with pytest.raises(DataError, match=r"line 4, field 'label': label 'Pos' and label 'pos'"):
        _reader(workdir, label_normalize="strip").load_data(str(workdir / "case.tsv"), 2)  # case still differs
    (workdir / "space.tsv").write_text("label\ttext_a\npos\tgood\nneg\tbad\npos \tnice\n")
    reader = _reader(workdir, label_normalize="strip").load_data(str(workdir / "space.tsv"), 2)
    assert reader.label_vocab() == ["neg", "pos"] and [f["label"] for f in reader.features] == [1, 0, 1]


def test_label_normalize_applies_to_the_label_map_too(workdir):
    (workdir / "case.tsv").write_text("label\ttext_a\npos\tgood\nNEG\tbad\n")
    reader = _reader(workdir, label_normalize="lower", label_map=["POS", "Neg"]).load_data(str(workdir / "case.tsv"), 2)
    assert reader.label_vocab() == ["pos", "neg"] and [f["label"] for f in reader.features] == [0, 1]
    with pytest.raises(DataError, match=r"label 'pos ' is not in the label map, but 'pos' is"):
        (workdir / "space.tsv").write_text("label\ttext_a\npos \tgood\n")
        _reader(workdir, label_map=["pos", "neg"]).load_data(str(workdir / "space.tsv"), 2)


# ----------------------------------------------------------------------------- predict without labels
def _train_tiny(workdir, extra=""):
    path = write(workdir, VALID + "max_steps: 3\nprint_steps: 0\noutput_dir: out\n" + extra)
    assert cli.main(["train", path]) == 0
    return path


def test_predict_file_where_a_line_lacks_the_label_works(workdir, capsys, caplog, monkeypatch):
    monkeypatch.chdir(workdir)
    config = _train_tiny(workdir)
    (workdir / "new.jsonl").write_text('{"text_a": "play jazz music", "label": "0"}\n{"text_a": "book a table"}\n'
                                       '{"text_a": "will it rain", "label": null}\n')
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="paddlepalm"):
        rc = cli.main(["predict", config, "--ckpt", "out", "--input", "new.jsonl", "--output", "preds.jsonl"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Traceback" not in captured.err
    predictions = [json.loads(l) for l in (workdir / "preds.jsonl").read_text().splitlines()]
    assert len(predictions) == 3 and all(p["label"] in (0, 1, 2) for p in predictions)
    assert "new.jsonl, line 2 has no label: predicting without label (no metrics)" in caplog.text
    # a dev/train file with a label on some lines only is an error naming the line
    (workdir / "partial.jsonl").write_text('{"text_a": "play", "label": "0"}\n{"text_a": "book"}\n')
    with pytest.raises(DataError, match=r"partial.jsonl, line 2, field 'label': no label here although other "
                                        r"lines have one; a dev file needs it on every line"):
        _reader(workdir, phase="dev").load_data(str(workdir / "partial.jsonl"), 2, file_format="jsonl")


def test_keep_last_null_keeps_every_checkpoint(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    assert load_config(write(workdir, VALID + "keep_last: null\n")).settings["keep_last"] is None
    _train_tiny(workdir, "keep_last: null\nsave_steps: 1\n")
    assert sorted(n for n in os.listdir(workdir / "out") if n.startswith("ckpt.step")) == [
        "ckpt.step1", "ckpt.step2", "ckpt.step3"]


# ----------------------------------------------------------------------------- custom reader files
READER_FILE = '''\
from paddlepalm.reader import ClassifyReader


class RepeatReader(ClassifyReader):
    """Repeats each text ``repeat`` times (an option from YAML)."""

    def __init__(self, vocab_path=None, max_len=128, repeat=2, **kwargs):
        super().__init__(vocab_path, max_len, **kwargs)
        self.repeat = repeat

    def to_features_batch(self, examples):
        return super().to_features_batch([dict(e, text_a=" ".join([e["text_a"]] * self.repeat)) for e in examples])
'''


def test_reader_from_a_module_file_relative_to_the_config(workdir, tmp_path_factory, monkeypatch):
    (workdir / "plugins").mkdir()
    (workdir / "plugins" / "palm_test_repeat_readers.py").write_text(READER_FILE)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # the path is relative to the config, not the cwd
    config = load_config(write(workdir, VALID.replace(
        "reader: classify", "reader: {type: plugins/palm_test_repeat_readers.py:RepeatReader, repeat: 3}")
        + "    head: classify\n"))
    reader_type = config.settings["tasks"]["intent"]["reader"]["type"]
    assert reader_type == "%s:RepeatReader" % (workdir / "plugins" / "palm_test_repeat_readers.py")
    reader = build_run(config).trainers[0].reader
    assert type(reader).__name__ == "RepeatReader" and reader.repeat == 3
    assert len(reader.features[0]["input_ids"]) == 2 + 3 * 3  # [CLS] play jazz music x3 [SEP]
    assert type(reader).__module__ == "palm_test_repeat_readers"


def test_module_file_may_not_hide_an_installed_module(workdir):
    (workdir / "json.py").write_text(READER_FILE)
    with pytest.raises(Exception) as err:
        load_config(write(workdir, VALID.replace("reader: classify", "reader: json.py:RepeatReader")))
    assert "would hide the installed module 'json'" in str(err.value) or \
           "a different module named 'json' is already imported" in str(err.value)
