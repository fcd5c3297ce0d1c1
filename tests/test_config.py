"""Config files: schema and docs, YAML line numbers, --set overrides, validation of broken configs,
building through the registries."""
import json
import os
import re
import textwrap

import pytest

from paddlepalm.config import build_run, check, load_config, parse_yaml
from paddlepalm.config.loader import load_yaml
from paddlepalm.config.schema import EXAMPLE, SCHEMA, lookup, render_markdown, walk, with_defaults
from paddlepalm.errors import ConfigError
from paddlepalm.reader import ClassifyReader
from tests.helpers import tiny_config, write_vocab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTENTS = [("0", "play jazz music"), ("1", "what is the weather in paris"), ("2", "book a table for two"),
           ("0", "play rock songs"), ("1", "will it rain tomorrow"), ("2", "book the restaurant")]
SLOTS = [("play jazz music", "O B-genre O"), ("book a table for two", "O O O O B-party")]

# The smallest valid config; the broken ones below are edits of it, written out in full so
# that the expected line numbers can be read off the text.
VALID = """\
backbone:
  config: tiny.json
tokenizer:
  vocab: vocab.txt
tasks:
  intent:
    reader: classify
    train: intent.tsv
    dev: intent.tsv
"""


@pytest.fixture
def workdir(tmp_path):
    """A folder with the files the configs refer to."""
    write_vocab(str(tmp_path))
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_config()))
    (tmp_path / "intent.tsv").write_text("label\ttext_a\n" + "".join("%s\t%s\n" % r for r in INTENTS))
    (tmp_path / "slot.tsv").write_text("text_a\tlabel\n" + "".join("%s\t%s\n" % r for r in SLOTS))
    (tmp_path / "labels.json").write_text(json.dumps(["a", "b", "c", "d", "e", "f", "g"]))
    (tmp_path / "letters.tsv").write_text("label\ttext_a\n" + "".join("%s\t%s\n" % ("abc"[i % 3], text)
                                                                     for i, (_, text) in enumerate(INTENTS)))
    return tmp_path


def write(workdir, text: str, name: str = "config.yaml") -> str:
    path = workdir / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def problems_of(path, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value.problems, str(info.value)


# ----------------------------------------------------------------------------- schema and docs
def test_docs_config_md_is_generated_from_the_schema():
    with open(os.path.join(ROOT, "docs", "config.md"), encoding="utf-8") as f:
        committed = f.read()
    assert committed == render_markdown(), "regenerate docs/config.md (see paddlepalm/config/schema.py)"


def test_every_key_is_documented_once():
    paths = [p for p, _ in walk()]
    assert len(paths) == len(set(paths))
    text = render_markdown()
    for path, key in walk():
        assert key.doc, path
        assert "`%s`" % path in text
    for key in ("backbone.pretrained", "tasks.<name>.reader", "tasks.<name>.mix_ratio", "objective",
                "optimizer.layer_decay", "schedule.warmup_ratio", "sampling.temperature"):
        assert key in paths


def test_documented_example_has_only_schema_keys(workdir):
    config = parse_yaml(EXAMPLE, str(workdir / "example.yaml"))
    problems, _ = check(config)
    assert all("not found" in p.message or "neither a checkpoint" in p.message for p in problems), problems


def test_lookup_and_defaults():
    assert lookup(("tasks", "slot", "mix_ratio")).default == 1.0
    assert lookup(("optimizer", "lr")).default == 5e-5
    assert lookup(("nope",)) is None
    filled = with_defaults({"tasks": {"a": {"reader": "classify"}}})
    assert filled["tasks"]["a"]["mix_ratio"] == 1.0 and filled["sampling"]["strategy"] == "mix_ratio"
    assert list(filled)[:2] == ["backbone", "tokenizer"]
    assert SCHEMA.child("tasks").required


# ----------------------------------------------------------------------------- loading
def test_yaml_origins_and_yaml12_floats(workdir):
    config = load_yaml(write(workdir, VALID + "optimizer:\n  lr: 3e-5\n"))
    assert config.data["optimizer"]["lr"] == 3e-5  # YAML 1.1 would read the string '3e-5'
    assert config.where(("tasks", "intent", "train")).endswith("config.yaml:8")
    assert config.where(("tasks", "intent", "head", "num_classes")).endswith("config.yaml:6")


def test_valid_config_resolves_defaults_and_paths(workdir):
    config = load_config(write(workdir, VALID))
    s = config.settings
    task = s["tasks"]["intent"]
    assert task["train"] == str(workdir / "intent.tsv")
    assert task["head"] == {"type": "classify"} and task["batch_size"] == 32
    assert task["max_len"] == 64  # the default 128, lowered to the tiny encoder's 64 positions
    assert s["main_task"] == "intent" and s["tokenizer"]["vocab"] == str(workdir / "vocab.txt")
    assert os.path.isabs(s["output_dir"])


# ----------------------------------------------------------------------------- --set
def test_set_overrides_nested_values_and_parses_yaml_scalars(workdir):
    (workdir / "xyz.tsv").write_text("label\tsentence\nx\tplay jazz\ny\tbook a table\n")
    path = write(workdir, VALID.replace("intent.tsv", "xyz.tsv"))
    config = load_config(path, ["optimizer.lr=3e-5", "tasks.intent.mix_ratio=0.5", "amp=null",
                                "tasks.intent.reader.multi_label=true", "backbone.overrides={hidden_dropout_prob: 0}",
                                "tasks.intent.fields={text_a: sentence}", "tasks.intent.label_map=[x, y, z]",
                                "output_dir=runs/a b", "seed=3"])
    s = config.settings
    assert s["optimizer"]["lr"] == 3e-5 and isinstance(s["optimizer"]["lr"], float)
    assert s["tasks"]["intent"]["mix_ratio"] == 0.5 and s["amp"] is None and s["seed"] == 3
    assert s["tasks"]["intent"]["reader"] == {"type": "classify", "multi_label": True}  # name -> mapping
    assert s["backbone"]["overrides"] == {"hidden_dropout_prob": 0}
    assert s["tasks"]["intent"]["label_map"] == ["x", "y", "z"]
    assert s["output_dir"].endswith(os.path.join("runs", "a b"))
    assert config.where(("optimizer", "lr")) == "--set optimizer.lr=3e-5"


@pytest.mark.parametrize("override, text", [
    ("optimizer.lrr=3e-5", "--set optimizer.lrr=3e-5: optimizer.lrr: AdamW takes no option 'lrr' (did you mean 'lr'?)"),
    ("sampling.temprature=2", "--set sampling.temprature=2: sampling.temprature: unknown key 'temprature' "
                              "(did you mean 'temperature'?)"),
    ("optimiser.lr=1", "--set optimiser.lr=1: optimiser: unknown key 'optimiser' (did you mean 'optimizer'?)"),
    ("tasks.slott.mix_ratio=0.5", "--set tasks.slott.mix_ratio=0.5: tasks.slott: no task 'slott'; tasks: intent"),
    ("max_len.x=3", "--set max_len.x=3: max_len: is not a mapping: cannot set 'x' in it"),
    ("tasks.intent.train.x=3", "--set tasks.intent.train.x=3: tasks.intent.train: is not a mapping"),
    ("optimizer.lr", "--set optimizer.lr: expected KEY=VALUE"),
    ("optimizer.lr=fast", "--set optimizer.lr=fast: optimizer.lr: expected number, got 'fast' (string)"),
    ("tasks.intent.mix_ratio=[1, 2]", "tasks.intent.mix_ratio: expected number, got [1, 2] (list)"),
])
def test_bad_set_override_is_an_error_naming_it(workdir, override, text):
    _, message = problems_of(write(workdir, VALID), [override])
    assert text in message


# ----------------------------------------------------------------------------- broken configs
BROKEN = [
    ("unknown top-level key", VALID + "optimiser:\n  lr: 0.1\n",
     10, "optimiser", "unknown key 'optimiser' (did you mean 'optimizer'?)"),
    ("unknown task key", VALID + "    mix_ration: 0.5\n",
     10, "tasks.intent.mix_ration", "unknown key 'mix_ration' (did you mean 'mix_ratio'?)"),
    ("wrong type", VALID + "optimizer:\n  lr: fast\n",
     11, "optimizer.lr", "expected number, got 'fast' (string)"),
    ("negative mix_ratio", VALID + "    mix_ratio: -0.5\n",
     10, "tasks.intent.mix_ratio", "must be >= 0, got -0.5"),
    ("missing train file", VALID.replace("train: intent.tsv", "train: nowhere.tsv"),
     8, "tasks.intent.train", "file not found: "),
    ("main_task not declared", VALID + "main_task: intnet\n",
     10, "main_task", "'intnet' is not a declared task (did you mean 'intent'?)"),
    ("unknown reader name", VALID.replace("reader: classify", "reader: clasify"),
     7, "tasks.intent.reader", "unknown reader 'clasify' (did you mean 'classify'?)"),
    ("unknown head name", VALID + "    head: {type: clasify, dropout_prob: 0.1}\n",
     10, "tasks.intent.head.type", "unknown head 'clasify' (did you mean 'classify'?)"),
    ("num_classes vs label map", VALID.replace("intent.tsv", "letters.tsv")
     + "    head: {type: classify, num_classes: 5}\n    label_map: labels.json\n",
     10, "tasks.intent.head.num_classes", "head has 5 classes but the label map has 7 labels"),
    ("bad dotted path", VALID.replace("reader: classify", "reader: mypkg.nothere:MyReader"),
     7, "tasks.intent.reader", "cannot import 'mypkg.nothere:MyReader'"),
    ("dotted path to a non-reader", VALID.replace("reader: classify", "reader: paddlepalm.head:Classify"),
     7, "tasks.intent.reader", "'paddlepalm.head:Classify' is not a paddlepalm.reader.Reader subclass"),
    ("duplicate key", VALID + "optimizer:\n  lr: 0.1\n  lr: 0.2\n",
     12, "optimizer.lr", "duplicate key 'lr' (first at line 11)"),
    ("duplicate task", VALID + "  intent:\n    reader: classify\n    train: intent.tsv\n",
     10, "tasks.intent", "duplicate key 'intent' (first at line 6)"),
    ("missing required key", VALID.replace("    train: intent.tsv\n", ""),
     6, "tasks.intent", "missing required key 'train'"),
    ("unknown reader option", VALID.replace("reader: classify", "reader: {type: classify, token_sep: ' '}"),
     7, "tasks.intent.reader.token_sep", "ClassifyReader takes no option 'token_sep'"),
    ("reader option set elsewhere", VALID.replace("reader: classify", "reader: {type: classify, max_len: 9}"),
     7, "tasks.intent.reader.max_len", "is set by tasks.<name>.max_len, not here"),
    ("unknown head option", VALID + "    head: {type: classify, use_crf: true}\n",
     10, "tasks.intent.head.use_crf", "Classify takes no option 'use_crf'"),
    ("reuse_head_with unknown task", VALID + "    reuse_head_with: slot\n",
     10, "tasks.intent.reuse_head_with", "'slot' is not another task"),
    ("batch_size below minimum", VALID + "batch_size: 0\n", 10, "batch_size", "must be >= 1, got 0"),
    ("choice", VALID + "amp: fp8\n", 10, "amp", "'fp8' is not one of fp16, bf16"),
    ("objective without dev", VALID.replace("    dev: intent.tsv\n", "") + "objective: intent.accuracy\n",
     9, "objective", "task 'intent' has no 'dev' file to evaluate"),
    ("objective weights", VALID + "objective:\n  intent.accuracy: 0.5\n  slot.f1: 0.5\n",
     12, "objective.slot.f1", "'slot' is not a declared task"),
    ("pretrained and config", VALID.replace("  config: tiny.json\n", "  config: tiny.json\n  pretrained: .\n"),
     1, "backbone", "give exactly one of 'pretrained' (a checkpoint) or 'config'"),
    ("unknown optimizer", VALID + "optimizer: {type: adamm}\n",
     10, "optimizer.type", "unknown optimizer 'adamm' (did you mean 'adam'?)"),
    ("unknown optimizer option", VALID + "optimizer: {type: adamw, beta3: 0.9}\n",
     10, "optimizer.beta3", "AdamW takes no option 'beta3'"),
    ("encoder override",
     VALID.replace("  config: tiny.json\n", "  config: tiny.json\n  overrides: {hidden_dropout: 0}\n"),
     3, "backbone.overrides.hidden_dropout", "not an encoder config key (did you mean 'hidden_dropout_prob'?)"),
    ("tasks not a mapping", VALID[:VALID.index("tasks:")] + "tasks: [intent]\n",
     5, "tasks", "expected a mapping of task name -> task, got list"),
    ("task name with a dot", VALID.replace("  intent:", "  intent.v2:"),
     6, "tasks.intent.v2", "a task name must be a non-empty string without '.' or '/'"),
    ("warmup twice", VALID + "schedule: {warmup_steps: 10, warmup_ratio: 0.1}\n",
     10, "schedule", "give warmup_steps or warmup_ratio, not both"),
    ("label map file missing", VALID + "    label_map: nolabels.json\n",
     10, "tasks.intent.label_map", "file not found: "),
    ("fields value", VALID + "    fields:\n      text_a: [question]\n",
     11, "tasks.intent.fields.text_a", "expected the name of a column (or its number, from 1), got ['question']"),
    ("invalid YAML", VALID + "optimizer: {lr: 0.1\n", 11, "", "invalid YAML"),
]




def data_case(train: str, extra: str = "", dev="intent.tsv") -> str:
    """VALID with another train (and dev) file; ``dev=None`` drops the dev line (line 9)."""
    text = VALID.replace("train: intent.tsv", "train: " + train)
    text = text.replace("    dev: intent.tsv\n", "" if dev is None else "    dev: %s\n" % dev)
    return text + extra


JSON_LINES = '{"label": "0", "text_a": "play jazz"}\n{"label": "1", "text_a": "will it rain"}\n'
NO_HEADER = "0\tplay jazz music\n1\twhat is the weather\n2\tbook a table\n"

# Broken data and the newer config checks: (name, config text, line, key, message, {file: content}).
# A problem in a data file is reported at the config key naming the file, with the data file's
# line and field in the message.
BROKEN_DATA = [
    ("JSON lines read as tsv", data_case("data.txt"), 8, "tasks.intent.train",
     "line 1: the file looks like JSON lines (the line starts with '{'), not tsv; set file_format: jsonl",
     {"data.txt": JSON_LINES}),
    ("JSON lines declared tsv", data_case("data.txt", "    file_format: tsv\n"), 8, "tasks.intent.train",
     "looks like JSON lines (the line starts with '{'), not tsv", {"data.txt": JSON_LINES}),
    ("JSON array read as tsv", data_case("data.txt"), 8, "tasks.intent.train",
     "looks like a JSON array (the line starts with '['), not tsv; set file_format: json",
     {"data.txt": "[" + JSON_LINES.replace("}\n{", "}, {") + "]\n"}),
    ("tsv declared jsonl", data_case("intent.tsv", "    file_format: jsonl\n", dev=None), 8, "tasks.intent.train",
     "line 1: expected JSON lines (one object per line starting with '{'), found 'label\\ttext_a'", {}),
    ("tab-separated declared csv", data_case("intent.tsv", "    file_format: csv\n", dev=None), 8,
     "tasks.intent.train", "the header has tabs but no commas: the file looks tab-separated; set file_format: tsv",
     {}),
    ("comma-separated read as tsv", data_case("data.txt"), 8, "tasks.intent.train",
     "missing column(s) label, text_a; found label,text_a (map columns with fields: {label: <column>}); the "
     "header has commas but no tabs: the file looks comma-separated, set file_format: csv",
     {"data.txt": "label,text_a\n0,play jazz\n"}),
    ("column missing", data_case("data.tsv"), 8, "tasks.intent.train",
     "line 1, field 'text_a': missing column(s) text_a; found label, text (map columns with fields: "
     "{text_a: <column>})", {"data.tsv": "label\ttext\n0\tplay jazz\n"}),
    ("fields names an absent column", data_case("intent.tsv", "    fields: {text_a: sentence}\n", dev=None), 8,
     "tasks.intent.train",
     "line 1, field 'text_a': column 'sentence' (fields: {text_a: sentence}) is not in the file; found label, "
     "text_a", {}),
    ("column count", data_case("data.tsv"), 8, "tasks.intent.train",
     "data.tsv, line 3: expected 2 tab-separated columns (label, text_a), found 3",
     {"data.tsv": "label\ttext_a\n0\tplay jazz\n1\tthe weather\textra\n"}),
    ("csv column count", data_case("pairs.csv", "    fields: {text_a: question, label: is_duplicate}\n",
                                   dev=None), 8, "tasks.intent.train",
     "pairs.csv, line 3: expected 2 comma-separated columns (question, is_duplicate), found 3",
     {"pairs.csv": "question,is_duplicate\nplay jazz,1\nbook a table,0,extra\n"}),
    ("data not UTF-8", data_case("latin1.tsv"), 8, "tasks.intent.train",
     "latin1.tsv, line 2: not valid UTF-8 (byte 0xe9 at column 6); re-save the file as UTF-8",
     {"latin1.tsv": b"label\ttext_a\n0\tcaf\xe9 music\n"}),
    ("header only", data_case("empty.tsv"), 8, "tasks.intent.train", "empty.tsv: no examples (empty file or "
     "header only)", {"empty.tsv": "label\ttext_a\n"}),
    ("null text", data_case("data.jsonl"), 8, "tasks.intent.train",
     "data.jsonl, line 2, field 'text_a': is null; give a value (or drop the line)",
     {"data.jsonl": '{"label": "0", "text_a": "play"}\n{"label": "1", "text_a": null}\n'}),
    ("null label", data_case("data.jsonl"), 8, "tasks.intent.train", "line 1, field 'label': is null",
     {"data.jsonl": '{"label": null, "text_a": "play"}\n'}),
    ("null text_b", data_case("data.jsonl"), 8, "tasks.intent.train", "line 1, field 'text_b': is null",
     {"data.jsonl": '{"label": "0", "text_a": "play", "text_b": null}\n'}),
    ("JSON line without a field", data_case("data.jsonl"), 8, "tasks.intent.train",
     "data.jsonl, line 3, field 'text_a': missing field(s) text_a",
     {"data.jsonl": JSON_LINES + '{"label": "1"}\n'}),
    ("invalid JSON line", data_case("data.jsonl"), 8, "tasks.intent.train",
     "data.jsonl, line 2: invalid JSON: Expecting ',' delimiter",
     {"data.jsonl": '{"label": "0", "text_a": "play"}\n{"label": "1", "text_a": "x"\n'}),
    ("JSON array of numbers", data_case("data.json"), 8, "tasks.intent.train",
     "data.json, line 3: expected an array of JSON objects, got a number",
     {"data.json": '[\n  {"label": "0", "text_a": "play"},\n  3\n]\n'}),
    ("text after a JSON array", data_case("data.json"), 8, "tasks.intent.train",
     "data.json, line 2: unexpected text after the JSON array",
     {"data.json": '[{"label": "0", "text_a": "play"}]\ntrailing\n'}),
    ("label not in label map", data_case("intent.tsv", "    label_map: [a, b]\n", dev=None), 8, "tasks.intent.train",
     "intent.tsv, line 2, field 'label': unknown label '0' (known: a, b)", {}),
    ("dev label unseen in training", data_case("letters.tsv", dev="other.tsv"), 9, "tasks.intent.dev",
     "other.tsv, line 2, field 'label': unknown label 'd' (known: a, b, c)",
     {"other.tsv": "label\ttext_a\nd\tplay jazz\n"}),
    ("multi-label value not in map", data_case("multi.tsv", "    reader: {type: classify, multi_label: true}\n"
                                               "    label_map: [a, b]\n", dev=None).replace(
        "    reader: classify\n", ""), 7, "tasks.intent.train", "multi.tsv, line 2, field 'label': unknown label 'c'",
     {"multi.tsv": "label\ttext_a\na,c\tplay\n"}),
    ("labels differing in case", data_case("case.tsv", dev="case.tsv"), 8, "tasks.intent.train",
     "case.tsv, line 4, field 'label': label 'Pos' and label 'pos' (line 2) differ only in case or whitespace; "
     "fix the data, or set the reader option label_normalize: lower",
     {"case.tsv": "label\ttext_a\npos\tgood\nneg\tbad\nPos\tgreat\n"}),
    ("labels differing in whitespace", data_case("space.tsv", dev="space.tsv"), 8, "tasks.intent.train",
     "space.tsv, line 3, field 'label': label 'pos ' and label 'pos' (line 2) differ only in case or whitespace",
     {"space.tsv": "label\ttext_a\npos\tgood\npos \tgreat\n"}),
    ("label differing from the map in case", data_case("case.tsv", "    label_map: [pos, neg]\n", dev=None),
     8, "tasks.intent.train", "case.tsv, line 4, field 'label': label 'Pos' is not in the label map, but 'pos' "
     "is: they differ only in case or whitespace",
     {"case.tsv": "label\ttext_a\npos\tgood\nneg\tbad\nPos\tgreat\n"}),
    ("unknown label_normalize", VALID.replace("reader: classify", "reader: {type: classify, label_normalize: upper}"),
     7, "tasks.intent.reader.label_normalize", "'upper' is not one of strip, lower (or null)", {}),
    ("label map colliding after normalising",
     data_case("case.tsv", "    label_map: [pos, Pos]\n", dev="case.tsv").replace(
         "reader: classify", "reader: {type: classify, label_normalize: lower}"), 10, "tasks.intent.label_map",
     "label map has 'pos' and 'Pos', the same label after label_normalize: lower",
     {"case.tsv": "label\ttext_a\npos\tgood\n"}),
    ("label map with gaps", VALID + "    label_map: gaps.json\n", 10, "tasks.intent.label_map",
     "label ids must be 0..1 without gaps, got [0, 2]", {"gaps.json": '{"a": 0, "b": 2}'}),
    ("label map file not UTF-8", VALID + "    label_map: labels.txt\n", 10, "tasks.intent.label_map",
     "labels.txt: not valid UTF-8 (byte 0xe9 at position 6); re-save the file as UTF-8",
     {"labels.txt": b'["caf\xe9", "b"]'}),
    ("label map file not JSON", VALID + "    label_map: labels.txt\n", 10, "tasks.intent.label_map",
     "labels.txt, line 2: invalid JSON: Expecting value", {"labels.txt": '["a",\n ]'}),
    ("integer label over num_classes", VALID + "    head: {type: classify, num_classes: 2}\n", 10,
     "tasks.intent.head.num_classes", "head has 2 classes but ", {}),
    ("dev without the label column", data_case("intent.tsv", dev="nolabel.tsv"), 9, "tasks.intent.dev",
     "nolabel.tsv, line 1, field 'label': missing column(s) label; found text_a", {"nolabel.tsv": "text_a\nplay\n"}),
    ("sequence_label without a label column",
     data_case("tags.tsv", dev=None).replace("reader: classify", "reader: {type: sequence_label, token_sep: ' '}"),
     8, "tasks.intent.train", "tags.tsv, line 1, field 'label': missing column(s) label; found text_a, tags",
     {"tags.tsv": "text_a\ttags\nplay jazz\tO B-genre\n"}),
    ("sequence_label tag not in the label map",
     data_case("tags.tsv", "    label_map: [O, B-genre]\n", dev=None).replace(
         "reader: classify", "reader: {type: sequence_label, token_sep: ' '}"), 8, "tasks.intent.train",
     "tags.tsv, line 3, field 'label': tag 'B-artist' is not in the label map (2 tags: O, B-genre)",
     {"tags.tsv": "text_a\tlabel\nplay jazz\tO B-genre\nplay miles\tO B-artist\n"}),
    ("sequence_label words and tags differ in count",
     data_case("tags.tsv", dev=None).replace("reader: classify", "reader: {type: sequence_label, token_sep: ' '}"),
     8, "tasks.intent.train", "tags.tsv, line 2, field 'label': 3 words but 2 tags",
     {"tags.tsv": "text_a\tlabel\nplay some jazz\tO B-genre\n"}),
    ("headerless file without positions", data_case("noheader.tsv", dev=None).replace(
        "reader: classify", "reader: {type: classify, header: false}"), 8, "tasks.intent.train",
     "noheader.tsv, field 'label': a file without a header line needs its columns by position: give fields: "
     "{label: <column number>}", {"noheader.tsv": NO_HEADER}),
    ("header not a boolean", VALID.replace("reader: classify", "reader: {type: classify, header: 'no'}"),
     7, "tasks.intent.reader.header", "expected true or false, got 'no'", {}),
    ("column position past the last column", data_case("noheader.tsv", "    fields: {text_a: 5, label: 1}\n",
                                                      dev=None).replace(
        "reader: classify", "reader: {type: classify, header: false}"), 8, "tasks.intent.train",
     "noheader.tsv, line 1, field 'text_a': column 5 does not exist: the file has 2 columns (numbered from 1)",
     {"noheader.tsv": NO_HEADER}),
    ("column position 0", VALID + "    fields: {text_a: 0}\n", 10, "tasks.intent.fields.text_a",
     "expected the name of a column (or its number, from 1), got 0", {}),
    ("column positions in JSON lines", data_case("data.jsonl", "    fields: {text_a: 2, label: 1}\n", dev=None),
     8, "tasks.intent.train", "data.jsonl: fields label, text_a give column positions, but jsonl records have "
     "field names", {"data.jsonl": JSON_LINES}),
    ("objective metric unknown", VALID + "objective: intent.acc\n", 10, "objective",
     "task 'intent' reports accuracy, macro_f1, not 'acc'", {}),
    ("objective metric close to a known one", VALID + "objective: intent.accuracyy\n", 10, "objective",
     "task 'intent' reports accuracy, macro_f1, not 'accuracyy' (did you mean 'accuracy'?)", {}),
    ("objective weight metric unknown", VALID + "objective:\n  intent.f1: 1.0\n", 11, "objective.intent.f1",
     "task 'intent' reports accuracy, macro_f1, not 'f1'", {}),
    ("max_len over the positions", VALID + "max_len: 100000\n", 10, "max_len",
     "100000 is more than the encoder's 64 positions (max_position_embeddings); use at most 64", {}),
    ("task max_len over the positions", VALID + "    max_len: 512\n", 10, "tasks.intent.max_len",
     "512 is more than the encoder's 64 positions", {}),
    ("max_len over the positions after an override",
     VALID.replace("  config: tiny.json\n", "  config: tiny.json\n  overrides: {max_position_embeddings: 32}\n")
     + "max_len: 48\n", 11, "max_len", "48 is more than the encoder's 32 positions", {}),
    ("config not UTF-8", VALID.encode() + b"# caf\xe9 config\n", 10, "",
     "not valid UTF-8 (byte 0xe9 at column 6); re-save the file as UTF-8", {}),
    ("keep_last zero", VALID + "keep_last: 0\n", 10, "keep_last", "must be >= 1, got 0", {}),
    ("keep_last a word", VALID + "keep_last: all\n", 10, "keep_last", "expected integer, got 'all' (string)", {}),
    ("reader module file missing", VALID.replace("reader: classify", "reader: nowhere_readers.py:MyReader"), 7,
     "tasks.intent.reader", "nowhere_readers.py:MyReader': no such file: ", {}),
    ("reader module file without the class", VALID.replace("reader: classify", "reader: empty_readers.py:MyReader"),
     7, "tasks.intent.reader", "empty_readers.py' has no attribute 'MyReader'",
     {"empty_readers.py": "# no reader here\n"}),
]
CASES = [c + ({},) for c in BROKEN] + BROKEN_DATA


def write_case(workdir, text, files) -> str:
    for name, content in files.items():
        target = workdir / name
        target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
    if isinstance(text, bytes):
        (workdir / "config.yaml").write_bytes(text)
        return str(workdir / "config.yaml")
    return write(workdir, text)


def test_the_broken_table_is_large_and_its_names_unique():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, text, line, key, message, files", CASES, ids=[c[0] for c in CASES])
def test_broken_config_reports_file_line_key_and_message(workdir, name, text, line, key, message, files):
    path = write_case(workdir, text, files)
    problems, full = problems_of(path)
    assert len(problems) == 1, full
    p = problems[0]
    assert (p.origin, p.key) == ("%s:%d" % (path, line), key), full
    assert message in p.message, full
    assert "%s:%d: %s" % (path, line, key + ": " if key else "") in full


@pytest.mark.parametrize("name, text, line, key, message, files", CASES, ids=[c[0] for c in CASES])
def test_broken_config_through_check_and_train_commands(workdir, capsys, monkeypatch, name, text, line, key,
                                                        message, files):
    """`paddlepalm check` and `paddlepalm train` (in-process, through the CLI's main) print the same
    one-line problem, exit 1, and show no traceback."""
    from paddlepalm import cli

    monkeypatch.chdir(workdir)
    path = write_case(workdir, text, files)
    for command in ("check", "train"):
        assert cli.main([command, path]) == 1, command
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err + captured.out
        assert captured.err.startswith("paddlepalm %s: error: 1 problem in %s:\n" % (command, path)), captured.err
        assert "\n  %s:%d: %s" % (path, line, key + ": " if key else "") in captured.err, captured.err
        assert message in captured.err, captured.err
    assert not (workdir / "output").exists()  # train stopped before writing anything


def test_three_errors_are_reported_together_in_file_order(workdir):
    path = write(workdir, """\
        backbone:
          config: tiny.json
        tokenizer:
          vocab: vocab.txt
        tasks:
          intent:
            reader: clasify
            train: intent.tsv
            mix_ratio: -1
        optimizer:
          lr: fast
        """)
    problems, message = problems_of(path)
    assert [(p.origin.rsplit(":", 1)[1], p.key) for p in problems] == [
        ("7", "tasks.intent.reader"), ("9", "tasks.intent.mix_ratio"), ("11", "optimizer.lr")]
    assert message.startswith("3 problems in %s:\n" % path)


def test_missing_config_file_and_non_mapping(workdir):
    _, message = problems_of(str(workdir / "absent.yaml"))
    assert "absent.yaml: config file not found" in message
    _, message = problems_of(write(workdir, "- a\n- b\n"))
    assert "a config must be a mapping of keys, got a list" in message


# ----------------------------------------------------------------------------- building
def test_build_infers_head_sizes_and_uses_registries(workdir):
    config = load_config(write(workdir, VALID + """\
          slot:
            reader: {type: sequence_label, token_sep: " "}
            train: slot.tsv
            mix_ratio: 0.5
          again:
            reader: classify
            train: intent.tsv
            reuse_head_with: intent
            aux: true
        """.replace("        ", "")))
    run = build_run(config)
    intent, slot, again = run.trainers
    assert (intent.head.num_classes, slot.head.num_classes) == (3, 3)  # max label + 1; O, B-genre, B-party
    assert again.head is intent.head and again.is_aux and slot.mix_ratio == 0.5
    assert config.settings["tasks"]["slot"]["head"] == {"type": "sequence_label", "num_classes": 3, "input_dim": 32}
    assert run.objective == "intent.accuracy" and type(run.optimizer).__name__ == "AdamW"
    assert run.engine.main_task == "intent" and run.backbone.config.hidden_size == 32


def test_build_reports_label_count_mismatch_found_in_the_data(workdir):
    path = write(workdir, VALID + "    head: {type: classify, num_classes: 2}\nobjective: intent.acc\n")
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    assert "config.yaml:10: tasks.intent.head.num_classes: head has 2 classes but" in str(info.value)
    assert "has label 2" in str(info.value)


def test_build_checks_objective_metric_names(workdir):
    with pytest.raises(ConfigError, match=r"config.yaml:10: objective: task 'intent' reports accuracy, "
                                          r"macro_f1, not 'acc'"):
        build_run(load_config(write(workdir, VALID + "objective: intent.acc\n")))


class PairwiseWordsReader(ClassifyReader):
    """A user's own reader, referenced from a config by dotted path."""

    def __init__(self, vocab_path=None, max_len: int = 128, repeat: int = 2, **kwargs):
        super().__init__(vocab_path, max_len, **kwargs)
        self.repeat = repeat

    def to_features_batch(self, examples):
        return super().to_features_batch([dict(e, text_a=" ".join([e["text_a"]] * self.repeat)) for e in examples])


def test_custom_reader_and_head_by_dotted_path(workdir):
    config = load_config(write(workdir, VALID.replace("reader: classify", """reader:
      type: tests.test_config:PairwiseWordsReader
      repeat: 3
    head: paddlepalm.head.classify.Classify""")))
    run = build_run(config)
    reader = run.trainers[0].reader
    assert type(reader) is PairwiseWordsReader and reader.repeat == 3
    assert len(reader.features[0]["input_ids"]) == 2 + 3 * 3  # [CLS] play jazz music x3 [SEP]
    assert type(run.trainers[0].head).__name__ == "Classify" and run.trainers[0].head.num_classes == 3
    _, message = problems_of(write(workdir, VALID.replace("reader: classify", """reader:
      type: tests.test_config:PairwiseWordsReader
      repeats: 3
    head: paddlepalm.head.classify.Classify""")))
    assert "tasks.intent.reader.repeats: PairwiseWordsReader takes no option 'repeats' (did you mean 'repeat'?)" \
        in message


def test_fields_map_csv_columns_without_code(workdir):
    (workdir / "pairs.csv").write_text("question,is_duplicate\nplay jazz music,1\nbook a table,0\n")
    config = load_config(write(workdir, VALID.replace("intent.tsv", "pairs.csv") +
                               "    fields: {text_a: question, label: is_duplicate}\n"))
    run = build_run(config)
    assert run.trainers[0].reader.num_examples == 2 and run.trainers[0].head.num_classes == 2


def test_schema_expresses_conll_ner_mrc_and_an_aux_masked_lm(workdir, datasets_dir):
    """WNUT-17 (file_format: conll, a file name the format cannot be guessed from), XQuAD (MRC) and
    an auxiliary masked-LM task in one run, on excerpts of the real files."""
    with open(os.path.join(datasets_dir, "wnut17", "wnut17train.conll"), encoding="utf-8") as f:
        sentences = re.split(r"\n\s*\n", f.read())[:12]  # its blank lines hold a tab
    (workdir / "ner.train").write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    with open(os.path.join(datasets_dir, "xquad", "xquad.en.json"), encoding="utf-8") as f:
        squad = json.load(f)
    squad["data"] = [dict(squad["data"][0], paragraphs=squad["data"][0]["paragraphs"][:2])]
    (workdir / "qa.json").write_text(json.dumps(squad), encoding="utf-8")
    (workdir / "text.txt").write_text("play jazz music\nwhat is the weather in paris\n" * 4)
    config = load_config(write(workdir, """\
        backbone: {type: bert, config: tiny.json}
        tokenizer: {vocab: vocab.txt}
        max_len: 64
        batch_size: 4
        tasks:
          ner:
            reader: sequence_label
            head: {type: sequence_label, use_crf: true}
            train: ner.train
            dev: ner.train
            file_format: conll
          qa:
            reader: {type: mrc, max_query_len: 16, doc_stride: 24}
            train: qa.json
            mix_ratio: 0.5
          mlm:
            reader: {type: mask_lm, mask_prob: 0.2}
            train: text.txt
            file_format: txt
            mix_ratio: 0.2
            aux: true
        objective: ner.f1
        max_steps: 3
        print_steps: 0
        output_dir: out
        """), ["output_dir=%s" % (workdir / "out")])
    from paddlepalm.config import run_train

    results = run_train(config)
    heads = config.settings["tasks"]
    tags = {line.split("\t")[-1] for s in sentences for line in s.splitlines() if line.strip()}
    assert heads["ner"]["head"]["num_classes"] == len(tags | {"O"})
    assert heads["qa"]["head"]["max_query_len"] == 16 and heads["qa"]["head"]["input_dim"] == 32
    assert heads["mlm"]["head"]["vocab_size"] == tiny_config()["vocab_size"]
    assert set(results) == {"ner"} and "f1" in results["ner"]
    assert (workdir / "out" / "best").is_dir()
