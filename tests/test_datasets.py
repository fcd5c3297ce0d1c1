"""paddlepalm.datasets: SNIPS preparation and download, XQuAD split, CoNLL blocks, data discovery,
the deprecated reader.snips location; and that the examples import the package, not each other."""
import json
import os
import re

import pytest

import paddlepalm.reader.snips as old_snips
from paddlepalm.datasets import locate, snips, snips_download
from paddlepalm.datasets.conll import limit_conll, read_sentence_blocks
from paddlepalm.datasets.xquad import split_articles
from paddlepalm.downloader.errors import ChecksumError
from paddlepalm.errors import DataError
from paddlepalm.utils.script import default_eval_steps
from tests.conftest import ROOT


def _fake_snips(folder, per_file=101):
    """Two intents, ``per_file`` utterances in each train and validate file (100 go to test)."""
    folder.mkdir(parents=True, exist_ok=True)
    for intent in ("PlayMusic", "GetWeather"):
        utterances = [{"data": [{"text": "%s number %d " % (intent.lower(), i)}, {"text": "jazz", "entity": "genre"}]}
                      for i in range(per_file)]
        for name in ("train_%s_full.json" % intent, "validate_%s.json" % intent):
            (folder / name).write_text(json.dumps({intent: utterances}), encoding="utf-8")
    return folder


def test_reader_snips_reexports_the_same_objects():
    assert old_snips.__all__ and "deprecated" in old_snips.__doc__.lower()
    for name in old_snips.__all__:
        assert getattr(old_snips, name) is getattr(snips, name)


def test_prepare_snips_writes_tsv_and_label_files(tmp_path):
    raw = str(_fake_snips(tmp_path / "raw"))
    info = snips.prepare_snips(raw, str(tmp_path / "out"), seed=0)
    assert info["sizes"] == {"train": 2, "dev": 202, "test": 200}
    assert info["intent_labels"] == ["GetWeather", "PlayMusic"]
    lines = (tmp_path / "out" / "intent_dev.tsv").read_text(encoding="utf-8").split("\n")
    assert lines[:2] == ["label\ttext_a", "GetWeather\tgetweather number 0 jazz"] and lines[-1] == ""
    assert len(lines) == 1 + 202 + 1
    slot = (tmp_path / "out" / "slot_dev.tsv").read_text(encoding="utf-8").split("\n")
    assert slot[:2] == ["text_a\tlabel", "getweather\x02number\x020\x02jazz\tO\x02O\x02O\x02B-genre"]
    with open(info["slot_label_map_file"]) as f:
        assert json.load(f) == {"B-genre": 0, "O": 1}
    with open(info["intent_labels_file"]) as f:
        assert json.load(f) == ["GetWeather", "PlayMusic"]
    assert info["files"]["test"]["slot"] == str(tmp_path / "out" / "slot_test.tsv")
    limited = snips.prepare_snips(raw, str(tmp_path / "small"), seed=0, limit=3)
    assert limited["sizes"] == {"train": 2, "dev": 3, "test": 3}
    assert limited["intent_labels"] == info["intent_labels"]  # labels come from the full data


def test_find_snips_checks_for_both_kinds_of_file(tmp_path, monkeypatch):
    monkeypatch.delenv(locate.DATA_ENV, raising=False)
    monkeypatch.setattr(locate, "PROJECT_ROOT", str(tmp_path / "project"))
    raw = _fake_snips(tmp_path / "raw")
    assert snips.find_snips(None, str(raw)) == str(raw)
    for name in os.listdir(raw):
        if name.startswith("validate_"):
            os.remove(raw / name)
    with pytest.raises(locate.DataNotFound, match="snips data was not found"):
        snips.find_snips(None, str(raw))


def _local_snips_files(folder, tamper=None):
    """Files named like the 14 SNIPS files; their content is not the real one."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in snips_download.SNIPS_SHA256:
        (folder / name).write_text("not %s" % name if name == tamper else name)
    return folder


def test_download_snips_from_a_folder_refuses_wrong_digests(tmp_path, monkeypatch):
    src = _local_snips_files(tmp_path / "src")
    with pytest.raises(ChecksumError, match="sha256"):
        snips_download.download_snips(str(tmp_path / "dest"), source_dir=str(src))
    assert os.listdir(tmp_path / "dest") == []  # the mismatching copy was removed
    # with the digests of these files, every one is copied and reported
    import hashlib

    digests = {n: hashlib.sha256(n.encode()).hexdigest() for n in snips_download.SNIPS_SHA256}
    monkeypatch.setattr(snips_download, "SNIPS_SHA256", digests)
    seen = []
    snips_download.download_snips(str(tmp_path / "dest"), source_dir=str(src), on_file=seen.append)
    assert sorted(os.listdir(tmp_path / "dest")) == sorted(digests)
    assert seen == [str(tmp_path / "dest" / n) for n in sorted(digests)]
    os.remove(src / "validate_RateBook.json")
    with pytest.raises(locate.DataNotFound, match="validate_RateBook.json is missing"):
        snips_download.download_snips(str(tmp_path / "dest2"), source_dir=str(src))


def test_url_layout():
    assert snips_download.intent_of("validate_GetWeather.json") == "GetWeather"
    assert (snips_download.url_of("train_RateBook_full.json", "http://m/x/")
            == "http://m/x/RateBook/train_RateBook_full.json")


def _squad(path, articles=3, paragraphs=2, questions=2):
    data = [{"title": "a%d" % a, "paragraphs": [
        {"context": "text %d %d" % (a, p), "qas": [{"id": "%d-%d-%d" % (a, p, q), "question": "?",
                                                    "answers": [{"text": "text", "answer_start": 0}]}
                                                   for q in range(questions)]}
        for p in range(paragraphs)]} for a in range(articles)]
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return str(path)


def test_split_articles_holds_out_whole_articles(tmp_path):
    files, counts = split_articles(_squad(tmp_path / "x.json"), 1, str(tmp_path / "out"))
    assert counts == {"train": 8, "eval": 4}
    with open(files["eval"], encoding="utf-8") as f:
        held = json.load(f)
    assert [a["title"] for a in held["data"]] == ["a2"] and held["version"] == "1.1"
    _, limited = split_articles(str(tmp_path / "x.json"), 2, str(tmp_path / "small"), limit=3, seed=1)
    assert limited == {"train": 3, "eval": 3}
    for bad in (0, 3):
        with pytest.raises(ValueError, match=r"held_out must be between 1 and 2 .*x\.json has 3 articles"):
            split_articles(str(tmp_path / "x.json"), bad, str(tmp_path / "bad"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [\n  {"title": }\n]}', encoding="utf-8")
    with pytest.raises(DataError, match="malformed JSON") as caught:
        split_articles(str(broken), 1, str(tmp_path / "bad"))
    assert (caught.value.path, caught.value.line) == (str(broken), 2)
    broken.write_text('{"articles": []}', encoding="utf-8")
    with pytest.raises(DataError, match="SQuAD"):
        split_articles(str(broken), 1, str(tmp_path / "bad"))


def test_conll_blocks_drop_docstart_and_windows_newlines(tmp_path):
    path = tmp_path / "a.conll"
    path.write_bytes(b"-DOCSTART- O\r\n\r\nA\tO\r\nb\tB-x\r\n\r\n\r\nC\tO\r\n")
    assert read_sentence_blocks(str(path)) == ["A\tO\nb\tB-x", "C\tO"]


def test_conll_blocks_end_at_whitespace_only_lines(tmp_path):
    # WNUT-17's train file ends most sentences with a line holding one tab; the reader splits there too
    path = tmp_path / "a.conll"
    path.write_text("A\tO\nb\tB-x\n\t\nC\tO\n  \nD\tO\n\ne\tO\n", encoding="utf-8")
    assert read_sentence_blocks(str(path)) == ["A\tO\nb\tB-x", "C\tO", "D\tO", "e\tO"]
    dest = limit_conll(str(path), 3, str(tmp_path / "b.conll"), seed=0)
    assert len(read_sentence_blocks(dest)) == 3


def test_default_eval_steps():
    assert [default_eval_steps(n) for n in (1, 3, 10, 409)] == [1, 1, 4, 137]
    assert default_eval_steps(409, 4) == 103


def test_examples_import_the_package_without_path_edits():
    """The examples are plain scripts over ``paddlepalm``: no sys.path edits, no shared helper file."""
    examples = os.path.join(ROOT, "examples")
    scripts = [os.path.join(d, f) for d, _, files in os.walk(examples) for f in files if f.endswith(".py")]
    assert len(scripts) >= 7
    for path in scripts:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        assert "sys.path" not in text, path
        assert not re.search(r"^\s*(import|from)\s+_common\b", text, re.M), path


def test_results_command_is_relative_to_the_scripts_project(tmp_path, monkeypatch):
    from paddlepalm.utils.results import command_line

    (tmp_path / "proj" / "examples" / "a").mkdir(parents=True)
    (tmp_path / "proj" / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", [str(tmp_path / "proj" / "examples" / "a" / "run.py"), "--x", "a b"])
    assert command_line() == "python examples/a/run.py --x 'a b'"
    monkeypatch.setattr("sys.argv", [str(tmp_path / "run.py")])
    assert command_line(root=str(tmp_path / "proj")) == "python ../run.py"
